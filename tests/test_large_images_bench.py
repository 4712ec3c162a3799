"""benchmarks/large_images.py: the photo path as users run it, one row per size, never redone."""
import importlib.util
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
_spec = importlib.util.spec_from_file_location("large_images", ROOT / "benchmarks" / "large_images.py")
li = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(li)


def test_a_row_per_size_kept_across_runs(tmp_path):
    out = tmp_path / "large.csv"
    args = ["--megapixels", "0.02", "--color", "--recipe", "fast", "--kernel-size", "25", "--steps", "6", "--out", str(out)]
    li.main(args)
    df = pd.read_csv(out, comment="#")
    row = df.iloc[0]
    assert len(df) == 1 and row.recipe == "fast" and row["mode"] == "scratch" and row.channels == 3 and row.kernel_size == 25
    assert row.seconds >= row.estimate_seconds > 0 and row.peak_mib > 0 and 0 < row.cpu_share
    li.main(args)  # the size is in the table: nothing runs again
    again = pd.read_csv(out, comment="#")
    assert len(again) == 1 and again.seconds.iloc[0] == row.seconds
