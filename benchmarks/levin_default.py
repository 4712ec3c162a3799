"""The default pipeline on Levin exactly as users run it: ``cbid deblur IMAGE -o OUT``, no option.

Usage (from the repository root)::

    python benchmarks/levin_default.py                      # all 32 images
    python benchmarks/levin_default.py --images subset      # the one-image-per-kernel subset
    python benchmarks/levin_default.py --recipe paper_w32   # another recipe, as users would name it
    python benchmarks/levin_default.py --recipe fast --mode scratch --work ~/.cache/cbid_meta/levin_default_fast_scratch \
        --out benchmarks/results/levin_default_fast_scratch.csv  # a recipe and mode, as users would name them
    python benchmarks/levin_default.py --seed 1 --work ~/.cache/cbid_meta/levin_default_s1 \
        --out benchmarks/results/levin_default_s1.csv            # another seed (cbid deblur --seed 1)

Each image is deblurred by :func:`cbid_meta.api.deblur` — the function behind ``cbid deblur`` —
from its file, with the CLI's defaults (recipe :data:`cbid_meta.config.DEFAULT_RECIPE` and its kernel
size, its default mode and initialiser, ``--noise auto``, the recipe's seed): no true kernel size, no margin.  Scored
as the paper scores (±10 px, ``psnr_shift5`` beside it; SSIM and error ratio at ±10, the
error ratio's reference being the true kernel's non-blind result), with the blurry input and
the true kernel as bounds.  Each finished image keeps its output (``outputs/<image>_x.npy``,
``_kernel.npy``) and its row in the work folder (``--work``, outside the repository), so a
stopped run resumes with the next image and a table can be re-scored (``--rescore``).
``cpu_share`` (CPU seconds over wall seconds × threads), compared between runs of one recipe, tells
whether a run had the cores (the fast pipeline's L0 steps use one core: about 0.5 alone).
Writes ``--out`` (``benchmarks/results/levin_default.csv``) and its ``.md``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, write_table  # noqa: E402

SUBSET = ("im1_kernel1", "im2_kernel2", "im3_kernel3", "im4_kernel4", "im1_kernel5", "im2_kernel6", "im3_kernel7", "im4_kernel8")


def _levin_root(data) -> Path:
    from cbid_meta.evaluation.levin import default_levin_root

    return Path(data) if data else default_levin_root()


def score(item, x: np.ndarray, kernel: np.ndarray) -> dict:
    """The row's numbers from an output (the same function scores a fresh run and a re-score)."""
    from cbid_meta.evaluation import deconvolve, kernel_similarity, levin_row_scores, levin_scores
    from cbid_meta.optim.photo import kernel_edge_mass

    x = np.asarray(x, dtype=np.float64)
    ref = deconvolve(item.blurry, item.kernel)
    s = levin_row_scores(x, item.sharp, ref)
    b = levin_scores(item.blurry, item.sharp)
    t = levin_scores(ref, item.sharp)
    return {"psnr": s["psnr"], "psnr_shift5": s["psnr_shift5"], "ssim": s["ssim"], "error_ratio": s["error_ratio"],
            "kernel_ncc": kernel_similarity(kernel, item.kernel)["ncc"], "kernel_edge_mass": kernel_edge_mass(kernel),
            "psnr_blurry": b["psnr"], "psnr_blurry_shift5": b["psnr_shift5"],
            "psnr_true_kernel": t["psnr"], "psnr_true_kernel_shift5": t["psnr_shift5"]}


def run_one(item, path: Path, a) -> tuple[dict, np.ndarray, np.ndarray]:
    """Deblur ``path`` as ``cbid deblur`` does (``--steps`` only when given), with time, memory and CPU share."""
    import torch

    from cbid_meta.api import deblur
    from cbid_meta.evaluation.bench import peak_meter

    settings = {"recipe": a.recipe, **({"steps": a.steps} if a.steps else {}), **({"mode": a.mode} if a.mode else {}),
                **({"seed": a.seed} if a.seed is not None else {})}
    t, c = time.perf_counter(), time.process_time()
    with peak_meter() as pm:
        res = deblur(path, **settings)
    wall = time.perf_counter() - t
    threads = torch.get_num_threads()
    info = {"image": item.name, "kernel_size_true": int(max(item.kernel.shape)), "kernel_size_used": int(res.kernel.shape[0]),
            "mode": res.info.get("mode"), "seed": res.info.get("seed"), "seconds": wall, "peak_mib": pm.mib, "threads": threads,
            "cpu_share": (time.process_time() - c) / max(wall * threads, 1e-9),
            "chosen": (res.estimate.info.get("chosen") if res.estimate is not None else None) or "",  # the selected kernel candidate
            "inr_steps": res.estimate.info.get("steps") if res.estimate is not None else None}
    x = res.image if res.image.ndim == 2 else res.image.mean(axis=2)
    return info, np.asarray(x, dtype=np.float32), np.asarray(res.kernel, dtype=np.float64)


def report(df: pd.DataFrame, meta: dict, out: Path) -> str:
    """The ``.md``: the mean over all images and over the subset, time and memory, images below blurry + 3 dB."""
    from cbid_meta.optim.photo import EDGE_MASS_WARN

    lines = ["# The default pipeline on Levin, as users run it", ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    sub = df[df.image.isin(SUBSET)]
    rows = []
    for name, d in (("all images", df), ("8-image subset", sub)):
        if len(d):
            rows.append({"images": name, "n": len(d), "PSNR ±10": d.psnr.mean(), "PSNR ±5": d.psnr_shift5.mean(), "SSIM": d.ssim.mean(),
                         "error ratio": d.error_ratio.mean(), "kernel NCC": d.kernel_ncc.mean(), "blurry": d.psnr_blurry.mean(),
                         "true kernel": d.psnr_true_kernel.mean(), "median s": d.seconds.median(), "peak MiB": d.peak_mib.max()})
    below = df[df.psnr < df.psnr_blurry + 3.0]
    worse = df[df.psnr < df.psnr_blurry]
    lines += ["", pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"), "",
              f"Below blurry + 3 dB: {len(below)} of {len(df)} images" + (f" ({', '.join(below.image)})" if len(below) else "")
              + f"; below the blurry input: {len(worse)}" + (f" ({', '.join(worse.image)})" if len(worse) else "") + ".",
              (f"Kernel mass within 2 px of the support's edge (`kernel_edge_mass`; `cbid deblur` notes a kernel above "
               f"{EDGE_MASS_WARN:.0%}): largest {df.kernel_edge_mass.max():.1%} ({df.loc[df.kernel_edge_mass.idxmax(), 'image']}).")
              if "kernel_edge_mass" in df and df.kernel_edge_mass.notna().any() else "",
              f"`cpu_share` (CPU seconds over wall seconds × threads) from {df.cpu_share.min():.2f} to {df.cpu_share.max():.2f}: "
              "compare it between runs of one recipe (a pipeline whose L0 steps use one core has about 0.5 alone); "
              "a run well below its recipe's usual share had company, and its seconds are not a timing.", "",
              df.drop(columns=[c for c in ("git_revision", "date") if c in df]).to_markdown(index=False, floatfmt=".3f"), ""]
    text = "\n".join(lines)
    out.with_suffix(".md").write_text(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Levin folder (default: $CBID_LEVIN_DIR or ../shared/data/levin)")
    ap.add_argument("--recipe", default=None, help="the recipe a user names (default: the CLI's, cbid_meta.config.DEFAULT_RECIPE)")
    ap.add_argument("--mode", choices=("meta", "scratch"), default=None, help="the mode a user names (default: the CLI's)")
    ap.add_argument("--seed", type=int, default=None, help="the seed a user names (default: the recipe's); another seed needs its own --work and --out")
    ap.add_argument("--images", default="all", help="'all', 'subset' or comma-separated names")
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)  # tests only: users run the recipe's budget
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("CBID_RUNS", Path.home() / ".cache" / "cbid_meta")) / "levin_default")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/levin_default.csv"))
    ap.add_argument("--rescore", action="store_true", help="re-score the kept outputs of the finished rows (no deblurring)")
    a = ap.parse_args(argv)

    from cbid_meta.config import DEFAULT_RECIPE
    from cbid_meta.errors import InputError

    a.recipe = a.recipe or DEFAULT_RECIPE
    from cbid_meta.evaluation import load_levin
    from cbid_meta.evaluation.rows import RowStore
    from cbid_meta.io import save_npy

    try:
        root = _levin_root(a.data)
        items = {d.name: d for d in load_levin(root)}
    except (FileNotFoundError, ValueError, InputError) as e:
        print(f"error: cannot load the Levin set: {e}", file=sys.stderr)
        return 2
    if a.images == "all":  # the subset first: a stopped run has the subset complete soonest
        names = [n for n in SUBSET if n in items] + [n for n in items if n not in SUBSET]
    else:
        names = list(SUBSET) if a.images == "subset" else a.images.split(",")
    unknown = [n for n in names if n not in items]
    if unknown:
        print(f"error: unknown Levin image(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        store = RowStore(a.work / "rows", key=("image",), settings={"recipe": a.recipe, "steps": a.steps, **({"mode": a.mode} if a.mode else {}),
                                                                    **({"seed": a.seed} if a.seed is not None else {})})
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    prov = provenance()
    outputs = a.work / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    if a.rescore:
        for row in store.rows():
            x, k = outputs / f"{row['image']}_x.npy", outputs / f"{row['image']}_kernel.npy"
            if x.exists() and k.exists():
                store.add({**row, **score(items[row["image"]], np.load(x), np.load(k))})
    todo = [n for n in names if (n,) not in store]
    for i, name in enumerate(todo, start=len(names) - len(todo) + 1):
        item = items[name]
        path = next(root.glob(f"{name}_img.*"))
        info, x, k = run_one(item, path, a)
        save_npy(outputs / f"{name}_x.npy", x)  # outputs before the row: a finished row always has them
        save_npy(outputs / f"{name}_kernel.npy", k)
        row = {**info, **score(item, x, k), "git_revision": prov["git_revision"], "date": prov["date"]}
        store.add(row)
        print(f"[{i}/{len(names)}] {name}: PSNR {row['psnr']:.2f} dB (±5: {row['psnr_shift5']:.2f}; blurry {row['psnr_blurry']:.2f}), "
              f"kernel {row['kernel_size_used']} px (true {row['kernel_size_true']}), NCC {row['kernel_ncc']:.3f}, "
              f"{row['seconds']:.1f} s, {row['peak_mib']:.0f} MiB, cpu share {row['cpu_share']:.2f}", flush=True)
        tables(store, names, a, prov)  # the table so far, after every image
    text = tables(store, names, a, prov)
    if text:
        print(text.split("\n\n")[2])
    return 0


def tables(store, names: list[str], a, prov: dict) -> str | None:
    """Rewrite ``--out`` and its ``.md`` from the finished rows of ``names``; returns the markdown."""
    df = pd.DataFrame([r for r in store.rows() if r["image"] in names])
    if df.empty:
        return None
    df = df.sort_values("image").reset_index(drop=True)
    meta = prov | {"recipe": a.recipe, "as run": "cbid_meta.api.deblur(file) with the CLI's defaults (cbid deblur IMAGE -o OUT)",
                   "images": f"{len(df)} of {len(names)} finished",
                   "scoring": "psnr, ssim, error_ratio: ±10 px shift search (the paper's evaluation); psnr_shift5: ±5 px",
                   "note": "rows may come from several sessions: each row has its own git_revision and date"}
    if a.mode:
        meta["mode"] = a.mode
    if a.seed is not None:
        meta["seed"] = a.seed
    if a.steps:
        meta["steps"] = a.steps
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(df, a.out, meta)
    return report(df, meta, a.out)


if __name__ == "__main__":
    raise SystemExit(main())
