"""Time and peak memory of `deblur_photo` on large photos (kernel from a crop, tiled restoration).

    .venv/bin/python benchmarks/large_images.py --megapixels 1,4,12

The input is a synthetic photo of the requested size: scikit-image's
*astronaut* (colour) upscaled, blurred by a 23-px deepinv motion kernel plus
noise σ=0.005.  Peak memory is the process's resident high-water mark
during the call (``/proc/self/clear_refs`` reset before each size).  Writes
``benchmarks/results/large_images.csv``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, provenance, write_table  # noqa: E402


def make_photo(mp: float, kernel: np.ndarray, color: bool, seed: int = 0) -> np.ndarray:
    import skimage.data
    from scipy.signal import fftconvolve
    from skimage.transform import resize

    base = skimage.data.astronaut().astype(np.float32) / 255.0
    h = int(round(np.sqrt(mp * 1e6 * 3 / 4)))
    w = int(round(h * 4 / 3))
    big = resize(base, (h, w), order=1, anti_aliasing=False).astype(np.float32)
    rng = np.random.default_rng(seed)
    chans = [fftconvolve(big[:, :, c], kernel.astype(np.float32), mode="same") for c in range(3)]
    out = np.stack(chans, -1) + rng.normal(0, 0.005, (h, w, 3)).astype(np.float32)
    out = np.clip(out, 0, 1)
    return out if color else out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megapixels", default="1,4,12")
    ap.add_argument("--color", action="store_true", help="colour photos (3 channels restored)")
    ap.add_argument("--steps", type=int, default=None, help="INR steps for the kernel estimate (default: recipe)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/large_images.csv"))
    a = ap.parse_args()
    from cbid_meta.config import load_recipe
    from cbid_meta.data import motion_kernel
    from cbid_meta.evaluation.bench import peak_meter
    from cbid_meta.optim.photo import deblur_photo

    k = motion_kernel(23, seed=4)
    rows = []
    for mp in [float(x) for x in a.megapixels.split(",")]:
        img = make_photo(mp, k, a.color)
        cfg = load_recipe("fast")
        cfg.kernel_size = 33
        if a.steps:
            cfg = cfg.with_total_steps(a.steps, 3)
        with peak_meter() as pm:
            t = time.perf_counter()
            res = deblur_photo(img, cfg)
            sec = time.perf_counter() - t
        from cbid_meta.evaluation import kernel_similarity

        row = {"megapixels": round(img.shape[0] * img.shape[1] / 1e6, 2), "height": img.shape[0], "width": img.shape[1],
               "channels": 1 if img.ndim == 2 else 3, "seconds": sec, "estimate_seconds": res.estimate.seconds,
               "peak_mib": pm.mib, "kernel_ncc": kernel_similarity(res.kernel, k)["ncc"], "restoration": res.info["restoration"]}
        rows.append(row)
        print(row, flush=True)
        del img, res
    write_table(pd.DataFrame(rows), Path(a.out), provenance())


if __name__ == "__main__":
    main()
