"""Helpers of ``benchmarks/gpu_session.sh``: plan the Levin passes from the speed table, pack the outputs.

``gpu_plan.py SPEED_CSV END WA WB [STEPS]`` prints ``IMAGES EXTRA BATCH DOB ESTA ESTB``: the images of
the width-WA pass (``all`` or ``subset``), the extra seeds of the subset (``1,2`` or ``-``), the batch size,
whether the width-WB pass fits (1/0) and the estimated seconds of each pass.  A pass of ``n`` runs costs
about ``n × 5000 × t`` with ``t`` the seconds per problem-iteration of one process at batch 8 (the workers
share the card), plus 10 %.  When all 32 images do not fit, the subset runs, one image per process
(batch 1; on an H200 eight such processes ran at about the batched rate).

``gpu_plan.py --pack FOLDER OUT`` packs ``FOLDER/*.npy`` into ``OUT/levin_out<i>.tgz`` archives of at most
15 MiB of files each (the device tool returns files of up to 16 MiB).
"""
from __future__ import annotations

import sys
import tarfile
import time
from pathlib import Path

import pandas as pd


def per_problem_iteration(df: pd.DataFrame, width: int, guess: float = 0.002) -> float:
    """Seconds per problem-iteration at ``width``: batch 8, else the largest measured batch, else ``guess``."""
    r = df[(df["width"] == width) & (df.get("autocast", "none") == "none")].sort_values("batch")
    r8 = r[r["batch"] == 8]
    r = r8 if len(r8) else r.tail(1)
    return float(r["s_per_iter"].iloc[0]) / int(r["batch"].iloc[0]) if len(r) else guess


def plan(df: pd.DataFrame, left: float, wa: int, wb: int, steps: int = 5000) -> tuple[str, str, int, int, float, float]:
    """``(images, extra seeds, batch, width-WB pass?, seconds of pass A, seconds of pass B)`` for ``left`` seconds."""
    ta = per_problem_iteration(df, wa) * steps * 1.1
    tb = per_problem_iteration(df, wb) * steps * 1.1
    t24 = 24 * tb
    for images, n, batch in (("all", 32, 32), ("subset", 8, 1)):
        with_extra, without = (n + 16) * ta, n * ta
        if with_extra + t24 < left or with_extra < 0.8 * left:
            return images, "1,2", batch, int(with_extra + t24 < left), with_extra, t24
        if without < left:
            return images, "-", batch, int(without + t24 < left), without, t24
    return "subset", "-", 1, 0, 8 * ta, t24


def pack(folder: Path, out: Path, limit: int = 15 * 2**20) -> int:
    files = sorted(Path(folder).glob("*.npy"))
    part, size, tf = 0, 0, None
    for f in files:
        if tf is None or size + f.stat().st_size > limit:
            if tf is not None:
                tf.close()
            part, size = part + 1, 0
            tf = tarfile.open(Path(out) / f"levin_out{part}.tgz", "w:gz")
        tf.add(f, arcname=f"outputs/{f.name}")
        size += f.stat().st_size
    if tf is not None:
        tf.close()
    print(f"packed {len(files)} output files into {part} archive(s)")
    return part


def main(argv: list[str]) -> int:
    if argv[:1] == ["--pack"]:
        pack(Path(argv[1]), Path(argv[2]))
        return 0
    try:
        df = pd.read_csv(argv[0], comment="#")
    except (OSError, pd.errors.EmptyDataError):
        df = pd.DataFrame(columns=["width", "batch", "s_per_iter", "autocast"])
    left = float(argv[1]) - time.time() - 30
    images, extra, batch, dob, ta, tb = plan(df, left, int(argv[2]), int(argv[3]), int(argv[4]) if len(argv) > 4 else 5000)
    print(images, extra, batch, dob, round(ta), round(tb))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
