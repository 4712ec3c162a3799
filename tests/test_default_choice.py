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


def _table(path: Path, recipe: str, psnr: list[float], seconds: float, images=("a", "b", "c")) -> Path:
    from cbid_meta.io import write_table

    n = len(psnr)
    df = pd.DataFrame({"image": list(images)[:n], "psnr": psnr, "psnr_shift5": psnr, "ssim": 0.9, "kernel_ncc": 0.8, "seconds": seconds,
                       "peak_mib": 900.0, "psnr_blurry": 22.0})
    write_table(df, path, {"recipe": recipe, "git_revision": "x"})
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
    assert "Best mean PSNR among the recipes within 120 s median and 2048 MiB peak: hybrid." in text  # slow is better but too slow
    assert "below blurry + 3 dB" in text


def test_one_table_is_one_error_line(tmp_path, capsys):
    assert dc.main([str(_table(tmp_path / "t.csv", "fast", [1.0], 1.0))]) == 2
    assert capsys.readouterr().err.count("\n") == 1
