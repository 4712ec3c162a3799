"""benchmarks/default_choice.py: candidates for the default, side by side on the images all tables have."""
import importlib.util
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
_spec = importlib.util.spec_from_file_location("default_choice", ROOT / "benchmarks" / "default_choice.py")
dc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dc)


def _table(path: Path, recipe: str, psnr: list[float], seconds: float, images=("a", "b", "c"), mode=None) -> Path:
    from cbid_meta.io import write_table

    n = len(psnr)
    df = pd.DataFrame({"image": list(images)[:n], "psnr": psnr, "psnr_shift5": psnr, "ssim": 0.9, "kernel_ncc": 0.8, "seconds": seconds,
                       "peak_mib": 900.0, "psnr_blurry": 22.0})
    write_table(df, path, {"recipe": recipe, "git_revision": "x", **({"mode": mode} if mode else {})})
    return path


def test_paired_differences_floor_and_verdict(tmp_path, capsys):
    old = _table(tmp_path / "old.csv", "fast", [30.0, 20.0, 33.0], 40.0)
    new = _table(tmp_path / "new.csv", "hybrid", [30.5, 27.0, 31.0, 99.0], 110.0, images=("a", "b", "c", "d"))  # d: not in both
    slow = _table(tmp_path / "slow.csv", "slow", [40.0, 40.0, 40.0], 500.0)
    assert dc.main([str(old), str(new), str(slow), "--out", str(tmp_path / "choice.md")]) == 0
    text = (tmp_path / "choice.md").read_text()
    per = pd.read_csv(tmp_path / "choice.csv", comment="#")
    assert per.image.tolist() == ["a", "b", "c"] and per["hybrid − fast"].round(2).tolist() == [0.5, 7.0, -2.0]
    assert "above the 1.05 dB noise floor on 1, below it on 1, within it on 1" in text
    assert "against the runner-up" not in text  # the runner-up within time is the baseline itself
    assert "Best mean PSNR among the recipes within 120 s median and 2048 MiB peak: hybrid." in text  # slow is better but too slow
    assert "below blurry + 3 dB" in text


def test_one_table_is_one_error_line(tmp_path, capsys):
    assert dc.main([str(_table(tmp_path / "t.csv", "fast", [1.0], 1.0))]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_table_run_with_a_mode_is_named_by_recipe_and_mode(tmp_path, capsys):
    meta = _table(tmp_path / "meta.csv", "fast", [30.0, 20.0, 33.0], 40.0)  # no mode anywhere: the recipe's name alone
    scratch = _table(tmp_path / "scratch.csv", "fast", [31.0, 21.0, 33.0], 45.0, mode="scratch")
    assert dc.main([str(meta), str(scratch), "--out", str(tmp_path / "choice.md")]) == 0
    per = pd.read_csv(tmp_path / "choice.csv", comment="#")
    assert per["fast (scratch) − fast"].round(2).tolist() == [1.0, 1.0, 0.0]
    assert "within 120 s median and 2048 MiB peak: fast (scratch)." in (tmp_path / "choice.md").read_text()
    hybrid = _table(tmp_path / "hybrid.csv", "hybrid", [31.5, 21.0, 33.0], 100.0)
    assert dc.main([str(meta), str(scratch), str(hybrid), "--out", str(tmp_path / "three.md")]) == 0
    assert ("hybrid against the runner-up fast (scratch): mean difference +0.17 dB (std 0.29); above the 1.05 dB noise floor on 0, "
            "below it on 0, within it on 3.") in (tmp_path / "three.md").read_text()


def test_a_table_whose_rows_share_one_mode_is_named_by_it(tmp_path, capsys):
    from cbid_meta.io import write_table

    old = tmp_path / "old.csv"
    write_table(pd.DataFrame({"image": ["a", "b"], "psnr": [30.0, 31.0], "psnr_shift5": [30.0, 31.0], "ssim": 0.9, "kernel_ncc": 0.8,
                              "seconds": 40.0, "peak_mib": 900.0, "psnr_blurry": 22.0, "mode": "meta"}), old, {"recipe": "fast"})
    assert dc.load(old)[0] == "fast (meta)"


def test_tables_of_one_recipe_are_pooled_as_seeds(tmp_path, capsys):
    from cbid_meta.io import write_table

    def seeded(path, recipe, psnr, seed, images=("a", "b", "c")):
        n = len(psnr)
        df = pd.DataFrame({"image": list(images)[:n], "psnr": psnr, "psnr_shift5": psnr, "ssim": 0.9, "kernel_ncc": 0.8, "seconds": 50.0,
                           "peak_mib": 900.0, "psnr_blurry": 22.0, "seed": seed})
        write_table(df, path, {"recipe": recipe, "git_revision": "x"})
        return path

    fast = seeded(tmp_path / "f0.csv", "fast", [30.0, 30.0, 30.0], 0)
    h1 = seeded(tmp_path / "h1.csv", "hybrid", [31.0, 28.0, 30.0], 2024)
    h2 = seeded(tmp_path / "h2.csv", "hybrid", [33.0, 28.0, 30.0, 50.0], 1, images=("a", "b", "c", "d"))  # d: one seed only
    assert dc.main([str(fast), str(h1), str(h2), "--out", str(tmp_path / "c.md")]) == 0
    per = pd.read_csv(tmp_path / "c.csv", comment="#")
    assert per.image.tolist() == ["a", "b", "c"] and per["hybrid − fast"].round(2).tolist() == [2.0, -2.0, 0.0]  # seed means
    text = (tmp_path / "c.md").read_text()
    assert "hybrid: 2 runs (seeds 2024, 1), mean PSNR 29.67, 30.33 dB" in text
    assert "largest 1.41 (a)" in text and "more than the 1.05 dB noise floor between runs: 1." in text
    summary = text.split("| recipe")[1]
    assert "|      2 |" in summary  # the runs column
