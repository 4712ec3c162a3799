"""cbid compare: schema, both modes at every budget, HTML references every figure, resume."""
import re

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
    for f in figs:
        assert f'alt="{f}"' in page
    assert len(re.findall(r"data:image/png;base64,", page)) == len(figs)
    head = (out / "results.csv").read_text().splitlines()[:6]
    assert any(line.startswith("# git_revision") for line in head) and any("torch" in line for line in head)
    # resume: drop the last row; only that run is redone
    lines = (out / "results.csv").read_text().splitlines()
    (out / "results.csv").write_text("\n".join(lines[:-1]) + "\n")
    before = pd.read_csv(out / "results.csv", comment="#")
    main(args)
    after = pd.read_csv(out / "results.csv", comment="#")
    assert len(after) == 8
    merged = before.merge(after, on=["image", "mode", "budget"], suffixes=("_a", "_b"))
    assert (merged["seconds_a"] == merged["seconds_b"]).all()  # finished rows were not rerun


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
