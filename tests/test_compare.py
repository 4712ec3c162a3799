"""cbid compare: schema, both modes at every budget, HTML references every figure, resume."""
import re
import shutil

import pandas as pd
import pytest

from cbid_meta.cli.main import main
from cbid_meta.evaluation.datasets import synthetic_set, write_folder
from cbid_meta.meta.train import MetaConfig, meta_train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    folder = write_folder(synthetic_set(n=2, size=64, kernel_sizes=(9,), noise=0.0, seed=5), root / "set")
    init = meta_train(MetaConfig(outer_steps=1, inner_steps=4, meta_batch=1, n_leaves=3, crop=64, kernel_min=5, kernel_max=9, kernel_margin=2), root / "mt")
    path = init.save(root / "init.safetensors")
    return folder, path


def test_compare_report_and_resume(setup, tmp_path):
    folder, init = setup
    out = tmp_path / "rep"
    args = ["compare", str(folder), "--init", str(init), "--budgets", "4,8", "-o", str(out)]
    main(args)
    df = pd.read_csv(out / "results.csv", comment="#")
    assert {"image", "mode", "budget", "psnr", "ssim", "seconds", "fit_loss", "steps"} <= set(df.columns)
    assert len(df) == 2 * 2 * 2
    for b in (4, 8):
        assert set(df[df.budget == b]["mode"]) == {"scratch", "meta"}
    page = (out / "report.html").read_text()
    figs = sorted(p.name for p in out.glob("*.png"))
    assert {"psnr_vs_steps.png", "psnr_vs_seconds.png", "kernels.png", "panels.png"} <= set(figs)
    for f in figs:  # one copy of each figure: the page links the PNG, with a caption
        assert f'src="{f}"' in page
    assert "data:image/png;base64," not in page
    assert len(re.findall(r"<figcaption>[^<]{40,}</figcaption>", page)) == len(figs)
    assert "at 8 steps" in page  # which budget the panels show
    assert "blurry input" in page and "true kernel (non-blind)" in page  # reference rows
    summary = (out / "summary.md").read_text()
    row = next(ln for ln in summary.splitlines() if ln.startswith("| scratch") and "| 8 " in ln)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "8" and re.fullmatch(r"\d+\.\d\de[-+]\d\d", cells[-2]), cells  # budget an integer, L_fit not 0.000
    head = (out / "results.csv").read_text().splitlines()[:6]
    assert any(line.startswith("# git_revision") for line in head) and any("torch" in line for line in head)
    # resume: drop one finished row; only that run is redone
    before = pd.read_csv(out / "results.csv", comment="#")
    dropped = sorted((out / "rows").glob("*__*__*.json"))[-1]
    dropped.unlink()
    main(args)
    after = pd.read_csv(out / "results.csv", comment="#")
    assert len(after) == 8 and dropped.exists()
    merged = before.merge(after, on=["image", "mode", "budget"], suffixes=("_a", "_b"))
    redone = merged["seconds_a"] != merged["seconds_b"]
    assert redone.sum() == 1 and dropped.name.startswith(merged[redone]["image"].iloc[0])  # the others were not rerun
    # a folder with only its table (rows folder gone) takes its rows from the table and runs nothing
    shutil.rmtree(out / "rows")
    main(args)
    again = pd.read_csv(out / "results.csv", comment="#")
    assert (again["seconds"].to_numpy() == after["seconds"].to_numpy()).all()


def test_compare_plain_photos_need_kernel_size(setup, tmp_path):
    folder, init = setup
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted(folder.glob("*_blurry.png")):
        (photos / p.name.replace("_blurry", "")).write_bytes(p.read_bytes())
    with pytest.raises(SystemExit) as e:
        main(["compare", str(photos), "--init", str(init), "--budgets", "4", "-o", str(tmp_path / "x")])
    assert e.value.code == 2
    main(["compare", str(photos), "--init", str(init), "--budgets", "4", "-k", "11", "-o", str(tmp_path / "y")])
    df = pd.read_csv(tmp_path / "y" / "results.csv", comment="#")
    assert df["psnr"].isna().all() and df["fit_loss"].notna().all()
    assert (tmp_path / "y" / "report.html").exists()


def test_report_renders_in_headless_chromium(setup, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("check_report", Path(__file__).resolve().parents[1] / "benchmarks" / "check_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.find_browser() is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium-headless-shell)")
    folder, init = setup
    out = tmp_path / "rep"
    main(["compare", str(folder), "--init", str(init), "--budgets", "4", "-o", str(out)])
    shot = mod.screenshot(out / "report.html", tmp_path / "shot.png", height=1500)
    from PIL import Image

    assert Image.open(shot).size[0] >= 1000


def test_compare_meta_budgets_and_recipe(setup, tmp_path):
    """--meta-budgets gives the meta mode its own budgets; --recipe is recorded and a resume with another one is refused."""
    folder, init = setup
    out = tmp_path / "paper"
    main(["compare", str(folder), "--init", str(init), "--recipe", "paper_grid", "--budgets", "12", "--meta-budgets", "4,6", "--limit", "1", "-o", str(out)])
    df = pd.read_csv(out / "results.csv", comment="#")
    assert sorted(df[df["mode"] == "scratch"]["budget"]) == [12]
    assert sorted(df[df["mode"] == "meta"]["budget"]) == [4, 6]
    from cbid_meta.io import read_table_header

    assert read_table_header(out / "results.csv")["recipe"] == "paper_grid"
    assert (out / "outputs" / f"{df.image[0]}__meta.png").is_file()  # the meta mode's own largest budget is kept
    with pytest.raises(SystemExit) as e:
        main(["compare", str(folder), "--init", str(init), "--recipe", "fast", "--budgets", "12", "--limit", "1", "-o", str(out)])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["compare", str(folder), "--init", str(init), "--meta-budgets", "2", "-o", str(tmp_path / "bad")])
    assert e.value.code == 2


def test_speedups_per_metric():
    from cbid_meta.evaluation.budgets import speedups

    rows = [
        # image a: meta reaches scratch's final PSNR at 100 steps (10x) and its kernel NCC at 200 (5x)
        ("a", "scratch", 1000, 10.0, 25.0, 0.8), ("a", "meta", 100, 1.0, 25.5, 0.7), ("a", "meta", 200, 2.0, 24.0, 0.85),
        # image b: never reaches the PSNR; reaches the NCC at once
        ("b", "scratch", 1000, 10.0, 30.0, 0.5), ("b", "meta", 100, 1.0, 29.0, 0.9), ("b", "meta", 200, 2.0, 29.9, 0.9),
    ]
    df = pd.DataFrame(rows, columns=["image", "mode", "budget", "seconds", "psnr", "kernel_ncc"])
    df["steps"] = df["budget"]
    sp = speedups(df).set_index("image")
    assert sp.loc["a", "speedup_steps"] == 10 and sp.loc["a", "meta_psnr"] == 25.5 and sp.loc["a", "reached"]
    assert sp.loc["b", "speedup_steps"] == 0 and not sp.loc["b", "reached"] and sp.loc["b", "meta_psnr"] == 29.9
    sk = speedups(df, "kernel_ncc").set_index("image")
    assert sk.loc["a", "speedup_steps"] == 5 and sk.loc["a", "speedup_seconds"] == 5
    assert sk.loc["b", "speedup_steps"] == 10 and sk.loc["b", "target_kernel_ncc"] == 0.5


def test_published_budget_run_keeps_a_checkpoint_and_resumes_from_it(tmp_path):
    """A published-recipe run of cbid compare saves its loop state; a rerun resumes from it (same output)."""
    import numpy as np

    from cbid_meta.evaluation.budgets import run_budget

    item = synthetic_set(n=1, size=96, kernel_sizes=(7,), noise=0.0, seed=3)[0]
    plain = run_budget(item, "scratch", 8, None, recipe="paper_w32", margin=0)
    ckpt = tmp_path / "run.pt"
    first = run_budget(item, "scratch", 8, None, recipe="paper_w32", margin=0, checkpoint=ckpt)
    assert ckpt.is_file() and first["resumed_from"] == 0 and np.array_equal(first["_image"], plain["_image"])
    again = run_budget(item, "scratch", 8, None, recipe="paper_w32", margin=0, checkpoint=ckpt)
    assert again["resumed_from"] == first["steps"] and np.array_equal(again["_image"], first["_image"])
