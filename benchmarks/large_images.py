"""Time and peak memory of `deblur_photo` on large photos (kernel from a crop, tiled restoration).

    .venv/bin/python benchmarks/large_images.py --megapixels 1,4,12 --color \
        --out benchmarks/results/large_images_default.csv       # the default, as users run it

Each photo is deblurred by :func:`cbid_meta.api.deblur` — what ``cbid deblur`` runs — with
``--recipe`` (default: :data:`cbid_meta.config.DEFAULT_RECIPE`), its default mode and
initialiser, ``--noise auto`` and the recipe's kernel size unless ``--kernel-size`` is given.
A size already in ``--out`` for the same recipe is not run again (rows accumulate).

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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megapixels", default="1,4,12")
    ap.add_argument("--color", action="store_true", help="colour photos (3 channels restored)")
    ap.add_argument("--steps", type=int, default=None, help="INR steps for the kernel estimate (default: the recipe's or its initialiser's)")
    ap.add_argument("--recipe", default=None, help="default: the CLI's (cbid_meta.config.DEFAULT_RECIPE)")
    ap.add_argument("--kernel-size", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/large_images.csv"))
    a = ap.parse_args(argv)
    import torch

    from cbid_meta.api import deblur
    from cbid_meta.config import DEFAULT_RECIPE
    from cbid_meta.data import motion_kernel
    from cbid_meta.evaluation import kernel_similarity
    from cbid_meta.evaluation.bench import peak_meter

    recipe = a.recipe or DEFAULT_RECIPE
    out = Path(a.out)
    old = pd.read_csv(out, comment="#") if out.exists() else pd.DataFrame()
    rows = old.to_dict("records") if "recipe" in old else []  # a table of the former layout (no recipe column) is replaced
    done = {(r["recipe"], float(r["megapixels_asked"])) for r in rows}
    k = motion_kernel(23, seed=4)
    prov = provenance()
    for mp in [float(x) for x in a.megapixels.split(",")]:
        if (recipe, mp) in done:
            continue
        img = make_photo(mp, k, a.color)
        settings = {"recipe": recipe, **({"kernel_size": a.kernel_size} if a.kernel_size else {}), **({"steps": a.steps} if a.steps else {})}
        with peak_meter() as pm:
            t, c = time.perf_counter(), time.process_time()
            res = deblur(img, **settings)
            sec = time.perf_counter() - t
        row = {"recipe": recipe, "mode": res.info.get("mode"), "megapixels_asked": mp, "megapixels": round(img.shape[0] * img.shape[1] / 1e6, 2),
               "height": img.shape[0], "width": img.shape[1], "channels": 1 if img.ndim == 2 else 3, "kernel_size": int(res.kernel.shape[0]),
               "seconds": sec, "estimate_seconds": res.estimate.seconds, "peak_mib": pm.mib,
               "cpu_share": (time.process_time() - c) / max(sec * torch.get_num_threads(), 1e-9),
               "kernel_ncc": kernel_similarity(res.kernel, k)["ncc"], "restoration": res.info["restoration"],
               "git_revision": prov["git_revision"], "date": prov["date"]}
        rows.append(row)
        print(row, flush=True)
        del img, res
        write_table(pd.DataFrame(rows), out, prov)  # after every size: a stopped run keeps what it finished


if __name__ == "__main__":
    main()
