"""benchmarks/meta_published.py: meta rows against scratch rows (no optimisation)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
_spec = importlib.util.spec_from_file_location("meta_published", ROOT / "benchmarks" / "meta_published.py")
mp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mp)


def _row(image, steps, psnr, ncc=0.8, seed=2024, **kw):
    return {"image": image, "width": 32, "seed": seed, "steps": steps, "psnr": psnr, "kernel_ncc": ncc, "seconds": 10.0, **kw}


def _folder(root: Path, rows: list[dict]) -> Path:
    (root / "rows").mkdir(parents=True)
    for i, r in enumerate(rows):
        (root / "rows" / f"r{i}.json").write_text(json.dumps(r))
    (root / "rows" / "settings.json").write_text("{}")
    return root


def test_reach_speedup_and_equal_budget(tmp_path):
    scratch = _folder(tmp_path / "s", [_row("a", None, 30.0), _row("a", 500, 22.0), _row("b", None, 33.0), _row("c", 500, 20.0)])
    meta = _folder(tmp_path / "m", [_row("a", 250, 29.0, init="i@1"), _row("a", 500, 31.0, init="i@1"), _row("b", 500, 32.0, init="i@1"),
                                    _row("c", 500, 25.0, init="i@1")])  # c has no 5000-iteration scratch row: left out
    assert mp.main(["--scratch", str(scratch), "--meta", str(meta), "--out", str(tmp_path / "out")]) == 0
    t = pd.read_csv(tmp_path / "out" / "meta_levin.csv", comment="#")
    assert sorted(t.image.unique()) == ["a", "b"]
    a = t[(t.image == "a") & (t.budget == 500)].iloc[0]
    assert a.reach_budget == 500 and a.speedup == 10.0 and a.psnr_scratch_same_budget == 22.0
    b = t[t.image == "b"].iloc[0]
    assert np.isnan(b.reach_budget) and b.speedup == 0.0 and np.isnan(b.psnr_scratch_same_budget)
    s = json.loads((tmp_path / "out" / "meta_summary.json").read_text())
    assert s["pairs"] == 2 and s["reached"] == 1 and s["mean_scratch_final_psnr"] == 31.5 and s["median_speedup"] == 5.0
    assert s["budget_500"]["mean_psnr_meta"] == 31.5 and s["budget_500"]["mean_psnr_scratch_same_budget"] is None


def test_missing_folders_give_one_error_line(tmp_path, capsys):
    assert mp.main(["--scratch", str(tmp_path / "none"), "--meta", str(tmp_path / "none2"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_delta_finish_reach(tmp_path):
    """The ∆ finish (the meta run's kernel + non-blind deconvolution) is scored against the same target, x at 5000."""
    scratch = _folder(tmp_path / "s", [_row("a", None, 30.0, psnr_nonblind=31.0)])
    meta = _folder(tmp_path / "m", [_row("a", 500, 28.0, psnr_nonblind=30.5), _row("a", 1000, 29.0, psnr_nonblind=31.0)])
    assert mp.main(["--scratch", str(scratch), "--meta", str(meta), "--out", str(tmp_path / "out")]) == 0
    s = json.loads((tmp_path / "out" / "meta_summary.json").read_text())
    assert s["reached"] == 0 and s["median_speedup"] == 0.0
    assert s["reached_delta_finish"] == 1 and s["median_speedup_delta_finish"] == 10.0
    assert not (tmp_path / "out" / "compare_levin").exists()  # no kept outputs: no report


def test_compare_report_from_kept_outputs(tmp_path):
    """The cbid compare report is made from the kept outputs of both modes (nothing re-run)."""
    import pytest

    from cbid_meta.evaluation.datasets import load_dataset
    from cbid_meta.errors import InputError

    try:
        item = load_dataset("levin")[0]
    except InputError:
        pytest.skip("Levin data not available")
    extra = dict(psnr_shift5=20.0, ssim=0.5, iterations=5000, final_fit=0.01, psnr_nonblind=21.0, psnr_nonblind_shift5=21.0, ssim_nonblind=0.6)
    scratch = _folder(tmp_path / "s", [_row(item.name, None, 20.0, **extra)])
    meta = _folder(tmp_path / "m", [_row(item.name, 500, 21.0, **{**extra, "iterations": 500, "psnr_nonblind": 22.5})])
    for work, tag in ((scratch, f"{item.name}__w32__s2024"), (meta, f"{item.name}__w32__s2024__500it")):
        (work / "outputs").mkdir()
        np.save(work / "outputs" / f"{tag}_x.npy", item.blurry.astype(np.float32))
        np.save(work / "outputs" / f"{tag}_kernel.npy", item.kernel)
    assert mp.main(["--scratch", str(scratch), "--meta", str(meta), "--out", str(tmp_path / "out")]) == 0
    rep = tmp_path / "out" / "compare_levin"
    df = pd.read_csv(rep / "results.csv", comment="#")
    assert sorted(df["mode"]) == ["meta", "meta + ∆", "scratch"]
    assert df[df["mode"] == "meta + ∆"].psnr.iloc[0] == 22.5 and df[df["mode"] == "meta"].psnr.iloc[0] == 21.0
    assert (rep / "report.html").is_file() and (rep / "outputs" / f"{item.name}__meta.png").is_file()
    assert "blurry input" in (rep / "summary.md").read_text()


def test_curve_table_pairs_meta_and_scratch_at_the_same_iterations():
    """Only the meta runs of the largest budget and the 5000-iteration scratch runs are compared; last row: scratch's end."""
    def c(budget, its, ncc, psnr, image="a"):
        return pd.DataFrame({"image": image, "width": 32, "seed": 2024, "iteration": its, "kernel_ncc": ncc, "psnr": psnr, "budget": budget})

    scratch = pd.concat([c(5000, [250, 500, 5000], [0.2, 0.4, 0.9], [10.0, 12.0, 30.0]), c(500, [250, 500], [0.9, 0.9], [1.0, 1.0])])
    meta = pd.concat([c(1000, [250, 500], [0.6, 0.7], [25.0, 27.0]), c(500, [250], [0.0], [0.0]), c(1000, [250], [0.1], [0.0], image="b")])
    pairs = pd.DataFrame({"image": ["a", "a"], "width": 32, "seed": 2024, "budget": [500, 1000]})
    t = mp.curve_table(scratch, meta, pairs)
    assert t.iteration.tolist() == [250, 500, 5000] and t.iteration.dtype.kind == t.runs.dtype.kind == "i"  # counts print as integers
    assert t.kernel_ncc_meta.tolist()[:2] == [0.6, 0.7] and t.kernel_ncc_scratch.tolist() == [0.2, 0.4, 0.9]
    assert np.isnan(t.psnr_meta.iloc[-1]) and t.psnr_scratch.iloc[-1] == 30.0
