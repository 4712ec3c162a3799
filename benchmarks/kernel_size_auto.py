"""How well ``--kernel-size auto`` sizes the kernel support, on images whose kernel is known.

For every image of the Levin set (32) and of a synthetic set (scikit-image crops ×
deepinv motion kernels of 13–41 px, σ = 0.01; the held-out photos of
:func:`cbid_meta.evaluation.datasets.synthetic_set`), each method of
:data:`cbid_meta.optim.photo.KERNEL_SIZE_METHODS` chooses a support from the
blurry image alone; the row keeps the chosen size, the true kernel's size (its
array) and its *extent* (twice the largest distance of a tap holding ≥ 1 % of the
peak from the kernel's centroid, plus one: the support a centred estimate needs),
the ratio chosen / true and the seconds.  Rows are appended as they finish
(a stopped run resumes).  The summary (``.md``) gives, per method and set, the
share within a factor 1.5 of the true size, the under-estimates and the median ratio.
The real camera-shake photos (``../shared/data/real/``) have no known kernel: their
rows keep the size each method chooses, listed side by side.

    python benchmarks/kernel_size_auto.py                      # every set, every method
    python benchmarks/kernel_size_auto.py --methods mass --sets synthetic
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

OUT = ROOT / "benchmarks" / "results" / "kernel_size_auto"


def kernel_extent(k: np.ndarray, rel: float = 0.01) -> int:
    """Odd support a centroid-centred kernel needs: 2 · max distance (per axis) of taps ≥ ``rel`` · peak from the centroid + 1."""
    k = np.asarray(k, dtype=np.float64)
    k = k / k.sum()
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
    cy, cx = float((k * yy).sum()), float((k * xx).sum())
    m = k >= rel * k.max()
    r = max(np.abs(yy[m] - cy).max(), np.abs(xx[m] - cx).max())
    return int(2 * np.ceil(r) + 1)


def real_photos(root: Path | None = None) -> list:
    """The real camera-shake photos (``../shared/data/real/``, or ``$CBID_REAL_DIR``) as luminance items with no known kernel."""
    import os
    from types import SimpleNamespace

    from cbid_meta.io import load_image
    from cbid_meta.optim.photo import luminance

    root = Path(root or os.environ.get("CBID_REAL_DIR", ROOT.parent / "shared" / "data" / "real"))
    return [SimpleNamespace(name=p.stem, blurry=luminance(load_image(p, gray=False)), kernel=None) for p in sorted(root.glob("*.jpg"))]


def items(sets: list[str], n_syn: int, size: int):
    from cbid_meta.evaluation.datasets import load_dataset

    out = []
    if "levin" in sets:
        out += [("levin", it) for it in load_dataset("levin")]
    if "synthetic" in sets:
        out += [("synthetic", it) for it in load_dataset("synthetic", n=n_syn, size=size, kernel_sizes=(13, 17, 21, 25, 29, 33, 37, 41), noise=0.01)]
    if "real" in sets:
        out += [("real", it) for it in real_photos()]
    return out


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per method and set with known kernels (the real photos have none: they are listed per image only)."""
    df = df[df.set != "real"]
    rows = []
    for (m, s), d in df.groupby(["method", "set"], sort=False):
        re = d.chosen / d.extent
        rows.append({"method": m, "set": s, "images": len(d), "within_1.5x": float(d.within.mean()),
                     "within_1.5x_extent": float(((re >= 1 / 1.5) & (re <= 1.5)).mean()),
                     "under": int((d.ratio < 1).sum()), "under_extent": int((d.chosen < d.extent).sum()),
                     "median_ratio": float(d.ratio.median()), "min_ratio": float(d.ratio.min()), "max_ratio": float(d.ratio.max()),
                     "median_ratio_extent": float(re.median()), "median_s": float(d.seconds.median())})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from cbid_meta.optim.photo import KERNEL_SIZE_METHODS, auto_kernel_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(KERNEL_SIZE_METHODS), help="comma-separated (default: all)")
    ap.add_argument("--sets", default="levin,synthetic,real", help="levin, synthetic (known kernels), real (../shared/data/real: chosen sizes only)")
    ap.add_argument("--synthetic-n", type=int, default=16, help="synthetic images (two per kernel size at 16)")
    ap.add_argument("--synthetic-size", type=int, default=255, help="side of the synthetic images (Levin's is 255)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in KERNEL_SIZE_METHODS]
    if bad:
        ap.error(f"unknown method(s) {', '.join(bad)} (choose from {', '.join(KERNEL_SIZE_METHODS)})")
    sets = [s.strip() for s in a.sets.split(",") if s.strip()]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    csv = a.out.with_suffix(".csv")
    done = pd.read_csv(csv, comment="#") if csv.exists() else pd.DataFrame(columns=["method", "set", "image"])
    rows = done.to_dict("records")
    keys = {(r["method"], r["set"], r["image"]) for r in rows}
    prov = provenance()
    for set_name, it in items(sets, a.synthetic_n, a.synthetic_size):
        for m in methods:
            if (m, set_name, it.name) in keys:
                continue
            t = time.perf_counter()
            chosen = auto_kernel_size(np.asarray(it.blurry, dtype=np.float64), method=m)
            sec = time.perf_counter() - t
            if it.kernel is None:  # a real photo: the chosen size only
                rows.append({"method": m, "set": set_name, "image": it.name, "chosen": chosen, "seconds": sec})
                print(f"{m:>6} {set_name:>9} {it.name:<28} → {chosen:>2}  {sec:.1f} s", flush=True)
                write_table(pd.DataFrame(rows), csv, prov)
                continue
            true = int(it.kernel.shape[0])
            r = chosen / true
            rows.append({"method": m, "set": set_name, "image": it.name, "true": true, "extent": kernel_extent(it.kernel), "chosen": chosen,
                         "ratio": r, "within": bool(1 / 1.5 <= r <= 1.5), "seconds": sec})
            print(f"{m:>6} {set_name:>9} {it.name:<28} true {true:>2} (extent {rows[-1]['extent']:>2}) → {chosen:>2}  ratio {r:.2f}  {sec:.1f} s", flush=True)
            write_table(pd.DataFrame(rows), csv, prov)
    df = pd.DataFrame(rows)
    s = summarise(df)
    md = a.out.with_suffix(".md")
    lines = ["# `--kernel-size auto` against known kernels", "", *[f"- {k}: {v}" for k, v in prov.items()], "",
             "Per method and set: share of images whose chosen support is within a factor 1.5 of the true kernel's size "
             "(its array) and of its centred extent (the support a centroid-centred estimate needs: 2 · the largest distance "
             "of a tap ≥ 1 % of the peak from the centroid, + 1; deepinv's motion kernels fill a fraction of their array), "
             "under-estimates (chosen < true size; chosen < extent), ratios chosen / true and chosen / extent. "
             "Seconds: per row as it ran (rows accumulate over runs, some of which shared the machine: not a timing).", "",
             s.to_markdown(index=False, floatfmt=".2f"), ""]
    real = df[df.set == "real"]
    if len(real):
        lines += ["## Real photos (no known kernel): the size each method chooses", "",
                  real.pivot_table(index="image", columns="method", values="chosen").astype(int).reset_index().to_markdown(index=False), ""]
    lines += ["## Per image", "", df[df.set != "real"].to_markdown(index=False, floatfmt=".2f"), ""]
    md.write_text("\n".join(lines))
    print(s.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
