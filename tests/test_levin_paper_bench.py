"""benchmarks/levin_paper.py without optimisation: outputs kept, scored by one function, re-scored from the work folder."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cbid_meta.errors import InputError
from cbid_meta.evaluation import load_levin
from cbid_meta.evaluation.rows import RowStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # levin_paper imports _common
_spec = importlib.util.spec_from_file_location("levin_paper", ROOT / "benchmarks" / "levin_paper.py")
lp = importlib.util.module_from_spec(_spec)
sys.modules["levin_paper"] = lp  # dataclasses look their module up
_spec.loader.exec_module(lp)

def _ablation_module():
    spec = importlib.util.spec_from_file_location("ablation_paper", ROOT / "benchmarks" / "ablation_paper.py")
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    return ab


PROV = {"git_revision": "test", "date": "2000-01-01T00:00:00+00:00"}


def _args(tmp_path, **kw):
    ns = lp.argparse.Namespace(recipe="paper", kernel_margin=0, out=tmp_path / "lp.csv", curve=tmp_path / "lp_curve.csv", seeds=None)
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def _fake_output(item, seed: int) -> lp.RunOutput:
    rng = np.random.default_rng(seed)
    x = ndimage.shift(item.sharp, (1.5, -6.25), order=1, mode="nearest") + 0.01 * rng.standard_normal(item.sharp.shape)
    delta = ndimage.gaussian_filter(item.sharp, 0.6)
    kernel = np.pad(item.kernel, 1) + 1e-3 * rng.random((item.kernel.shape[0] + 2,) * 2)
    info = {"iterations": 20, "seconds": 1.5, "s_per_iter": 0.075, "peak_mib": 100.0, "kernel_size": 5, "s0": 0,
            "parameters": 10, "threads": 1, "device": "cpu", "resumed_from": 0}
    return lp.RunOutput(lp.Run(item, 8, seed, 20), x, delta, kernel, info)


def test_outputs_are_saved_and_rescoring_gives_the_same_row(fake_levin, tmp_path):
    (item,) = load_levin(fake_levin)
    work = tmp_path / "work"
    store = lp.row_store(work)
    out = _fake_output(item, 2024)
    row = lp.finish(out, work, store, PROV)
    tag = "im1_kernel4__w8__s2024__20it"
    paths = lp.output_paths(work, tag)
    assert out.run.tag == tag and all(p.exists() for p in paths.values())
    x, delta, kernel = lp.load_outputs(work, tag)
    assert x.dtype == np.float32 and delta.dtype == np.float32 and kernel.dtype == np.float64
    assert not list((work / "outputs").glob(".*part"))  # no temporary file left behind
    assert set(lp.SCORE_COLUMNS) <= set(row) and row["scored_at"] == 10 and row["seed"] == 2024
    assert row["psnr_shift5"] <= row["psnr"] and row["psnr_nonblind_shift5"] <= row["psnr_nonblind"]
    assert (row["shift_y"], row["shift_x"]) == (1.5, -6.25)  # found by the 10-px search only
    assert row["psnr"] > row["psnr_shift5"] + 3.0
    # the one scoring function on the saved files gives the stored numbers
    assert lp.score_outputs(item, x, kernel, delta) == {k: row[k] for k in lp.SCORE_COLUMNS}
    # tables, then --rescore (no optimisation) rewrites rows and tables with identical numbers
    a = _args(tmp_path)
    lp.gather(a, store, work, PROV)
    before = pd.read_csv(a.out, comment="#")
    stored = json.loads(store.path(store.key_of(row)).read_text())
    rc = lp.main(["--rescore", "--data", str(fake_levin), "--work", str(work), "--out", str(a.out), "--curve", str(a.curve)])
    assert rc == 0
    again = json.loads(store.path(store.key_of(row)).read_text())
    assert {k: again[k] for k in lp.SCORE_COLUMNS} == {k: stored[k] for k in lp.SCORE_COLUMNS}
    assert again["scored_at"] == 10
    after = pd.read_csv(a.out, comment="#")
    cols = ["image", "width", "seed", "iterations", "psnr", "psnr_shift5", "ssim", "error_ratio", "kernel_ncc", "psnr_nonblind", "psnr_blurry", "seconds"]
    pd.testing.assert_frame_equal(before[cols], after[cols])


def test_row_without_outputs_keeps_its_numbers_and_is_marked_scored_at_5(fake_levin, tmp_path):
    (item,) = load_levin(fake_levin)
    work = tmp_path / "work"
    store = lp.row_store(work)
    lp.finish(_fake_output(item, 1), work, store, PROV)
    old = {"image": item.name, "width": 8, "seed": 2, "steps": 20, "iterations": 20, "psnr": 25.5, "psnr_nonblind": 26.0, "ssim": 0.8,
           "error_ratio": 3.0, "kernel_ncc": 0.7, "psnr_blurry": 22.0, "seconds": 10.0}
    store.add(old)
    done, kept = lp.rescore(store, work, {item.name: item}, PROV)
    assert (done, kept) == (1, 1)
    row = json.loads(store.path(store.key_of(old)).read_text())
    assert row["scored_at"] == 5 and {k: row[k] for k in old} == old
    # both seeds are separate rows; the table reports seed means, spread and the ±5 column
    a = _args(tmp_path)
    df = lp.gather(a, store, work, PROV)
    assert sorted(df["seed"]) == [1, 2] and "psnr_shift5" in df
    md = a.out.with_suffix(".md").read_text()
    assert "PSNR ±5" in md and "over seeds" in md and "Below blurry + 3 dB" in md and "scored at ±5" in md
    head = a.out.read_text()
    assert "# method: published-v2" in head
    cols = pd.read_csv(a.out, comment="#").columns.tolist()
    assert cols[:6] == ["image", "width", "seed", "iterations", "psnr", "psnr_shift5"]


def test_seeds_key_the_rows_and_tags():
    assert lp._tag("im1_kernel1", 32, 2024, None) == "im1_kernel1__w32__s2024"
    assert lp._tag("im1_kernel1", 32, 1, 500) == "im1_kernel1__w32__s1__500it"
    assert lp._seeds(lp.argparse.Namespace(seeds="2024,1,2", recipe="paper")) == [2024, 1, 2]
    assert lp._seeds(lp.argparse.Namespace(seeds=None, recipe="paper")) == [2024]


def test_a_work_folder_of_another_method_revision_is_refused(tmp_path, capsys):
    work = tmp_path / "old"
    RowStore(work / "rows", key=("image", "width", "steps"), settings={"recipe": "paper", "kernel_margin": 0, "seed": None}).add(
        {"image": "im1_kernel1", "width": 32, "steps": None, "psnr": 29.0})
    with pytest.raises(InputError):
        lp.row_store(work)
    rc = lp.main(["--report-only", "--work", str(work), "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "method" in err[0]


def test_a_table_of_another_method_revision_is_not_taken(tmp_path):
    legacy = ROOT / "benchmarks" / "results" / "levin_paper_legacy.csv"
    if not legacy.exists():
        pytest.skip("no legacy table")
    a = _args(tmp_path, out=legacy, curve=tmp_path / "none.csv")
    store = lp.row_store(tmp_path / "w")
    assert lp.seed_from_tables(a, store, tmp_path / "w") == 0 and len(store) == 0
    df = pd.read_csv(legacy, comment="#")
    assert (df["scored_at"] == 5).all() and df["psnr"].isna().all() and df["psnr_shift5"].notna().all()
    assert math.isclose(df["psnr_shift5"].iloc[0], 29.4229)


def test_gpu_plan_fits_the_passes_into_the_budget(tmp_path):
    """The GPU session's planner: all images when they fit, else the subset one image per process; packing splits by size."""
    import gpu_plan

    df = pd.DataFrame({"width": [128, 128, 32], "batch": [1, 8, 8], "s_per_iter": [0.03, 0.048, 0.048], "autocast": ["none"] * 3})
    # 6 ms per problem-iteration at width 128: 32 runs x 5000 x 6.6 ms = 1056 s
    assert gpu_plan.plan(df, 5000, 128, 32)[:4] == ("all", "1,2", 32, 1)
    assert gpu_plan.plan(df, 1100, 128, 32)[:3] == ("all", "-", 32)
    images, extra, batch, dob, ta, _ = gpu_plan.plan(df, 400, 128, 32)
    assert (images, extra, batch, dob) == ("subset", "-", 1, 0) and ta < 400
    for i in range(5):
        np.save(tmp_path / f"r{i}.npy", np.zeros(300_000, dtype=np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    assert gpu_plan.pack(tmp_path, out, limit=700_000) == 3  # two files per archive of at most 700 kB


def test_batched_runs_store_rows_and_import_into_another_work_folder(fake_levin, tmp_path):
    """--batch: two seeds of one image optimised together (vmap); --import-from takes their rows and outputs."""
    common = ["--data", str(fake_levin), "--images", "im1_kernel4", "--width", "8", "--steps", "4", "--curve-every", "2"]
    w1, w2 = tmp_path / "w1", tmp_path / "w2"
    assert lp.main(common + ["--seeds", "2024,7", "--batch", "2", "--work", str(w1), "--out", str(tmp_path / "a.csv"),
                             "--curve", str(tmp_path / "a_curve.csv")]) == 0
    rows = {r["seed"]: r for r in lp.row_store(w1).rows()}
    assert set(rows) == {2024, 7} and all(r["batch"] == 2 and r["iterations"] == rows[2024]["iterations"] > 0 for r in rows.values())
    assert rows[2024]["psnr"] != rows[7]["psnr"]  # each problem its own seed
    curve = pd.read_csv(tmp_path / "a_curve.csv", comment="#")  # the fit trajectory (no ground truth) beside the scores
    assert curve["reblur_fit"].notna().all() and (curve["reblur_fit"] > 0).all() and set(curve["seed"]) == {2024, 7}
    assert lp.main(common + ["--work", str(w2), "--out", str(tmp_path / "b.csv"), "--curve", str(tmp_path / "b_curve.csv"),
                             "--import-from", str(w1), "--device-name", "a GPU"]) == 0
    moved = {r["seed"]: r for r in lp.row_store(w2).rows()}
    assert set(moved) == {2024, 7} and all(r["device"] == "a GPU" for r in moved.values())
    for s in (2024, 7):
        assert moved[s]["psnr"] == pytest.approx(rows[s]["psnr"], abs=1e-9)  # re-scored here from the copied outputs


def test_runs_from_a_meta_learned_initialiser_keep_a_folder_of_their_own(fake_levin, tmp_path, capsys):
    """--init: every run starts from the initialiser; its rows say so, and a folder holds one kind of start."""
    from cbid_meta.meta.train import MetaConfig, meta_train

    init = meta_train(MetaConfig(recipe="paper", width=4, crop=72, kernel_min=5, kernel_max=7, kernel_margin=0, inner_steps=4,
                                 meta_batch=1, outer_steps=1, n_leaves=2, checkpoint_every=1, test_steps=4), tmp_path / "m")
    path = init.save(tmp_path / "init.safetensors")
    work = tmp_path / "w"
    common = ["--data", str(fake_levin), "--width", "4", "--images", "im1_kernel4", "--steps", "4", "--work", str(work),
              "--out", str(tmp_path / "meta.csv"), "--curve", str(tmp_path / "meta_curve.csv")]
    assert lp.main([*common, "--init", str(path)]) == 0
    row = pd.read_csv(tmp_path / "meta.csv", comment="#").iloc[0]
    assert row["mode"] == "meta" and str(row["init"]).startswith("init.safetensors@")
    assert (work / "outputs" / "im1_kernel4__w4__s2024__4it_x.npy").exists()
    capsys.readouterr()
    assert lp.main(common) == 2  # a scratch run into the meta folder
    assert "other settings" in capsys.readouterr().err
    other = meta_train(MetaConfig(recipe="paper", width=4, crop=72, kernel_min=5, kernel_max=7, kernel_margin=0, inner_steps=4,
                                  meta_batch=1, outer_steps=1, n_leaves=2, checkpoint_every=1, test_steps=4, seed=1), tmp_path / "m2")
    assert lp.main([*common, "--init", str(other.save(tmp_path / "other.safetensors"))]) == 2
    wide = ["--data", str(fake_levin), "--width", "8", "--images", "im1_kernel4", "--steps", "4", "--work", str(tmp_path / "w8"),
            "--out", str(tmp_path / "w8.csv"), "--curve", str(tmp_path / "w8_curve.csv"), "--init", str(path)]
    capsys.readouterr()
    assert lp.main(wide) == 2  # a width-8 U-Net cannot start from a width-4 initialiser
    assert "width=4" in capsys.readouterr().err


def test_ablation_table_joins_recipes_peers_and_bounds(fake_levin, tmp_path, monkeypatch):
    """benchmarks/ablation_paper.py: the recipe methods through levin_paper.py, L0 MAP here, bounds from the
    published rows; a second call resumes (nothing re-run) and the table keeps one row per method and image."""
    ab = _ablation_module()
    args = ["--methods", "full,no_cross,l0_map,blurry,true_kernel", "--width", "4", "--images", "im1_kernel4", "--steps", "4",
            "--data", str(fake_levin), "--work", str(tmp_path / "ab"), "--full-work", str(tmp_path / "full"), "--out", str(tmp_path / "res" / "ab.csv")]
    assert ab.main(args) == 0
    t = pd.read_csv(tmp_path / "res" / "ab.csv", comment="#")
    assert sorted(t.method) == ["blurry", "full", "l0_map", "no_cross", "true_kernel"]
    assert t.set_index("method").loc["true_kernel", "psnr"] > t.set_index("method").loc["blurry", "psnr"]
    files = sorted(p.stat().st_mtime_ns for p in (tmp_path / "ab" / "l0_map" / "rows").glob("im1*.json"))
    assert ab.main(args) == 0  # resumed: no run repeated
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "ab" / "l0_map" / "rows").glob("im1*.json")) == files
    md = (tmp_path / "res" / "ab.md").read_text()
    assert "One seed: no noise floor" in md and "full_minus" in md
    # each method's rows sit in a table beside --out (full's: levin_paper.csv); another machine, with no work folder,
    # takes them back from there and runs nothing again
    assert {"ab.csv", "levin_paper.csv"} <= {p.name for p in (tmp_path / "res").glob("*.csv")}
    assert {"l0_map.csv", "no_cross.csv"} <= {p.name for p in (tmp_path / "res" / "ab").glob("*.csv")}
    assert (tmp_path / "res" / "ab" / "no_cross.md").read_text().startswith("# Levin, the recipe paper_no_cross (recipes/paper_no_cross.toml)")
    assert (tmp_path / "res" / "levin_paper.md").read_text().startswith("# Levin, the published method (recipes/paper.toml)")
    import shutil

    from cbid_meta.evaluation import bench

    shutil.rmtree(tmp_path / "ab")
    shutil.rmtree(tmp_path / "full")

    def no_runs(runs, *_a, **_k):
        assert not list(runs), "a finished run was run again"
        return iter(())

    def refuse(*_a, **_k):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(lp, "run_runs", no_runs)
    monkeypatch.setattr(bench, "run_method", refuse)
    assert ab.main(args) == 0
    again = pd.read_csv(tmp_path / "res" / "ab.csv", comment="#")
    key = ["method", "image", "psnr", "psnr_shift5"]
    pd.testing.assert_frame_equal(again[key].sort_values("method").reset_index(drop=True), t[key].sort_values("method").reset_index(drop=True),
                                  rtol=1e-4)


def test_curves_of_a_steps_run_and_a_recipe_run_stay_apart(fake_levin, tmp_path):
    """The curve table carries each run's --steps; the plateau of a --steps section uses only its own curves."""
    (item,) = load_levin(fake_levin)
    work = tmp_path / "work"
    store = lp.row_store(work)
    short = _fake_output(item, 2024)  # --steps 20
    full = lp.RunOutput(lp.Run(item, 8, 2024, None), short.x, short.delta, short.kernel, dict(short.info, iterations=40))
    (work / "curve").mkdir(parents=True)
    for out, last, psnr in ((short, 20, 11.0), (full, 40, 22.0)):
        lp.finish(out, work, store, PROV)
        its = list(range(10, last + 1, 10))
        pd.DataFrame({"image": item.name, "width": 8, "seed": 2024, "iteration": its, "psnr": psnr, "psnr_shift5": psnr,
                      "kernel_ncc": 0.5}).to_csv(work / "curve" / f"{out.run.tag}.csv", index=False)
    a = _args(tmp_path)
    lp.gather(a, store, work, PROV)
    c = pd.read_csv(a.curve, comment="#")
    assert sorted(c.groupby(c["steps"].fillna(0).astype(int)).size().items()) == [(0, 4), (20, 2)]
    md = a.out.with_suffix(".md").read_text()
    recipe_part, steps_part = md.split("--steps 20")[0], md.split("--steps 20")[1]
    assert "22.00 dB at the end" in recipe_part and "11.00 dB at the end" in steps_part and "22.00 dB at the end" not in steps_part


def test_fits_keep_six_digits_and_a_rounded_tie_is_reported_not_hidden(fake_levin, tmp_path):
    (item,) = load_levin(fake_levin)
    work = tmp_path / "work"
    store = lp.row_store(work)
    base = {"image": item.name, "width": 8, "steps": 20, "iterations": 20, "psnr_nonblind": 26.0, "ssim": 0.8, "error_ratio": 3.0,
            "kernel_ncc": 0.7, "psnr_blurry": 22.0, "seconds": 10.0}
    # two runs whose fits differ in the fifth significant digit: the table keeps them apart
    store.add(base | {"seed": 1, "psnr": 28.0, "reblur_fit": 0.0023934})
    store.add(base | {"seed": 2, "psnr": 23.0, "reblur_fit": 0.0023571})
    a = _args(tmp_path)
    lp.gather(a, store, work, PROV)
    back = pd.read_csv(a.out, comment="#").set_index("seed")["reblur_fit"]
    assert back[1] == pytest.approx(0.0023934, rel=1e-6) and back[2] == pytest.approx(0.0023571, rel=1e-6)
    md = a.out.with_suffix(".md").read_text()
    assert "Restarts safeguard" in md and "tied" not in md
    # the same runs read back from a table that rounded fits to 4 decimals: the report says the fit could not choose
    work2 = tmp_path / "work2"
    store2 = lp.row_store(work2)
    store2.add(base | {"seed": 1, "psnr": 28.0, "reblur_fit": 0.0024})
    store2.add(base | {"seed": 2, "psnr": 23.0, "reblur_fit": 0.0024})
    lp.gather(_args(tmp_path, out=tmp_path / "lp2.csv"), store2, work2, PROV)
    md2 = (tmp_path / "lp2.md").read_text()
    assert "tied" in md2 and item.name in md2 and "broken either way, the safeguard's mean is 23.000–28.000 dB" in md2
    assert lp.safeguard_ties(pd.DataFrame({"image": ["a", "a"], "reblur_fit": [0.00235712, 0.00235712]})) == []  # not rounded


def test_self_checks_read_the_run_without_ground_truth():
    rng = np.random.default_rng(0)
    x = rng.random((64, 64))
    kernel = np.zeros((9, 9))
    kernel[4, 2:7] = 0.2  # a line well inside its support
    calm = lp.self_checks(x, kernel, x + 0.01)
    assert calm["x_delta_gap"] == pytest.approx(0.01) and calm["kernel_edge_mass"] == 0.0
    far = x.copy()
    far[:15] += 1.0  # a disagreement inside the border is not read ...
    assert lp.self_checks(x, kernel, far)["x_delta_gap"] == pytest.approx(0.0)
    far[30:34] += 1.0  # ... one inside the interior is
    assert lp.self_checks(x, kernel, far)["x_delta_gap"] > 0.2
    edge = kernel.copy()
    edge[0, 0] = 0.25  # a fifth of the mass in the corner
    assert lp.self_checks(x, edge, None)["kernel_edge_mass"] == pytest.approx(0.2)
    assert math.isnan(lp.self_checks(x, edge, None)["x_delta_gap"])


def test_self_checks_are_score_columns_and_can_lead_the_safeguard(fake_levin, tmp_path):
    (item,) = load_levin(fake_levin)
    out = _fake_output(item, 1)
    row = lp.score_outputs(item, out.x, out.kernel, out.delta)
    assert {"x_delta_gap", "kernel_edge_mass"} <= set(row) and row["x_delta_gap"] > 0
    work = tmp_path / "work"
    store = lp.row_store(work)
    base = {"image": item.name, "width": 8, "steps": 20, "iterations": 20, "psnr_nonblind": 26.0, "ssim": 0.8, "error_ratio": 3.0,
            "kernel_ncc": 0.7, "psnr_blurry": 22.0, "seconds": 10.0, "reblur_fit": 0.002, "kernel_edge_mass": 0.01}
    store.add(base | {"seed": 1, "psnr": 28.0, "x_delta_gap": 0.05})
    store.add(base | {"seed": 2, "psnr": 23.0, "x_delta_gap": 0.02})
    a = _args(tmp_path)
    lp.gather(a, store, work, PROV)
    md = a.out.with_suffix(".md").read_text()
    line = next(s for s in md.splitlines() if s.startswith("Restarts safeguard by `x_delta_gap`"))
    assert "mean PSNR of x of 23.000 dB" in line  # the lower gap kept: seed 2


def test_report_title_names_the_recipe_by_name_or_path():
    assert lp.report_title("paper") == "# Levin, the published method (recipes/paper.toml)"
    assert lp.report_title("paper_no_cross") == "# Levin, the recipe paper_no_cross (recipes/paper_no_cross.toml)"
    assert lp.report_title("runs/x/my.toml") == "# Levin, the recipe my (runs/x/my.toml)"


def test_kernel_taps_counts_the_taps_holding_the_mass():
    point = np.zeros((9, 9))
    point[4, 4] = 1.0
    flat = np.ones((9, 9)) / 81
    assert lp.kernel_taps(point) == 1 and lp.kernel_taps(flat) == 73  # ⌈0.9 · 81⌉
    line = np.zeros((9, 9))
    line[4, :] = 1 / 9
    assert lp.kernel_taps(line) == 9 and lp.kernel_taps(line, 0.5) == 5


def test_ablation_summary_counts_images_and_pairs_seeds():
    ab = _ablation_module()
    rows = [("full", "a", 1, 30.0), ("full", "a", 2, 28.0), ("full", "b", 1, 25.0), ("full", "b", 2, 27.0),
            ("no_cross", "a", 1, 28.0), ("no_cross", "b", 1, 27.0), ("l0_map", "a", 0, 20.0), ("l0_map", "b", 0, 20.0)]
    t = pd.DataFrame([{"method": m, "image": i, "seed": s, "psnr": p, "psnr_shift5": p, "kernel_ncc": 0.5, "seconds": 1.0}
                      for m, i, s, p in rows])
    s, floor = ab.summary(t, ["full", "no_cross", "l0_map"])
    s = s.set_index("method")
    assert floor == pytest.approx(2 ** 0.5)  # std of (30, 28) and of (25, 27)
    assert s.loc["no_cross", "full_above_on"] == "1/2"  # full's seed means 29 and 26 against 28 and 27
    assert s.loc["no_cross", "same_seed_minus"] == pytest.approx(((30 - 28) + (25 - 27)) / 2)  # seed 1 only
    assert s.loc["l0_map", "full_above_on"] == "2/2" and math.isnan(s.loc["l0_map", "same_seed_minus"])  # no shared seed
    assert s.loc["no_cross", "verdict"] == "tie" and s.loc["l0_map", "verdict"] == "full above"
    assert s.loc["no_cross", "floor"] == pytest.approx(2 ** 0.5)
    # compared only on image a, a method is held to full's spread there, not to b's
    t2 = pd.concat([t, pd.DataFrame([{"method": "no_progressive", "image": "a", "seed": 1, "psnr": 27.5, "psnr_shift5": 27.5,
                                      "kernel_ncc": 0.5, "seconds": 1.0}])], ignore_index=True)
    t2.loc[(t2.method == "full") & (t2.image == "b"), "psnr"] = [20.0, 32.0]  # b: std 8.5
    s2, floor2 = ab.summary(t2, ["full", "no_progressive"])
    s2 = s2.set_index("method")
    assert floor2 > 4 and s2.loc["no_progressive", "floor"] == pytest.approx(2 ** 0.5)
    assert s2.loc["no_progressive", "verdict"] == "full above"  # 29 − 27.5 = 1.5 > 1.41
    assert s.loc["no_cross", "paper_t5_full_minus"] == pytest.approx(25.16 - 24.44) and s.loc["full", "paper_t11_levin"] == 33.74
    assert math.isnan(s.loc["l0_map", "paper_t5_lai"])


def test_ablation_rescore_reads_kept_outputs_and_runs_nothing(fake_levin, tmp_path, monkeypatch):
    ab = _ablation_module()
    args = ["--methods", "no_cross,l0_map", "--width", "4", "--images", "im1_kernel4", "--steps", "4",
            "--data", str(fake_levin), "--work", str(tmp_path / "ab"), "--full-work", str(tmp_path / "full"), "--out", str(tmp_path / "res" / "ab.csv")]
    assert ab.main(args) == 0
    first = pd.read_csv(tmp_path / "res" / "ab.csv", comment="#").set_index("method")
    for m in ("no_cross", "l0_map"):  # spoil the stored scores: only a re-score from the outputs brings them back
        for f in (tmp_path / "ab" / m / "rows").glob("im1*.json"):
            row = json.loads(f.read_text())
            row["psnr"] = -1.0
            f.write_text(json.dumps(row))
    from cbid_meta.evaluation import bench

    monkeypatch.setattr(lp, "run_runs", lambda runs, *_a, **_k: (_ for _ in ()).throw(AssertionError("ran")) if list(runs) else iter(()))
    monkeypatch.setattr(bench, "run_method", lambda *_a, **_k: (_ for _ in ()).throw(AssertionError("ran")))
    assert ab.main(args) == 0  # a plain call runs nothing and reports the stored (spoiled) rows
    assert (pd.read_csv(tmp_path / "res" / "ab.csv", comment="#").set_index("method").loc[["no_cross", "l0_map"], "psnr"] == -1.0).all()
    assert ab.main(args + ["--rescore"]) == 0
    again = pd.read_csv(tmp_path / "res" / "ab.csv", comment="#").set_index("method")
    for m in ("no_cross", "l0_map"):
        assert again.loc[m, "psnr"] == pytest.approx(first.loc[m, "psnr"], abs=1e-4)
        assert "kernel_edge_mass" in again.columns and not math.isnan(again.loc[m, "kernel_edge_mass"])


def test_history_info_reads_the_fit_and_the_cross_terms_share():
    hist = [{"fit": 0.2, "cross": 0.0}] * 10 + [{"fit": 0.1, "cross": 20.0}] * 10 + [{"fit": 0.05, "cross": 0.0}] * 60
    info = lp.history_info(hist, 0.001)
    assert info["final_fit"] == pytest.approx(0.05)  # the last 50 records
    assert info["cross_share"] == pytest.approx(0.001 * 20.0 / 0.1)  # only where the cross term acts
    assert math.isnan(lp.history_info(hist[:10], 0.001)["cross_share"]) and math.isnan(lp.history_info([], 0.001)["final_fit"])


def test_ablation_summary_compares_a_partial_method_on_its_own_images():
    ab = _ablation_module()
    rows = [("full", "a", 1, 30.0), ("full", "b", 1, 20.0), ("no_cross", "a", 1, 29.0), ("no_cross", "b", 1, 21.0),
            ("no_progressive", "a", 1, 27.0)]
    t = pd.DataFrame([{"method": m, "image": i, "seed": s, "psnr": p, "psnr_shift5": p, "kernel_ncc": 0.5, "seconds": 1.0}
                      for m, i, s, p in rows])
    s = ab.summary(t, ["full", "no_cross", "no_progressive"])[0].set_index("method")
    assert s.loc["full", "images"] == 2 and s.loc["full", "psnr"] == pytest.approx(25.0)  # not cut to image a
    assert s.loc["no_cross", "full_minus"] == pytest.approx(0.0) and s.loc["no_cross", "full_above_on"] == "1/2"
    assert s.loc["no_progressive", "images"] == 1 and s.loc["no_progressive", "full_same_images"] == pytest.approx(30.0)
    assert s.loc["no_progressive", "full_minus"] == pytest.approx(3.0) and s.loc["no_progressive", "verdict"] == "full above"


def test_the_deadline_skips_single_runs_too(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(lp, "run_one", lambda run, a, work: ran.append(run) or run)
    runs = [lp.Run(lp.argparse.Namespace(name="im1_kernel1"), 8, s, 20) for s in (1, 2)]
    a = _args(tmp_path, batch=1, deadline=lp.time.time() + 60, batch_seconds=3600)
    assert list(lp.run_runs(runs, a, tmp_path)) == [] and ran == []  # an hour would end after the deadline
    a = _args(tmp_path, batch=1, deadline=lp.time.time() + 3600, batch_seconds=1)
    assert list(lp.run_runs(runs, a, tmp_path)) == runs
