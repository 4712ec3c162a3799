"""Levin benchmark of the per-image core: PSNR/SSIM, time and peak memory per image.

Usage (from the repository root)::

    .venv/bin/python benchmarks/levin_core.py --recipe fast --out benchmarks/results/levin_core.csv

Every image runs in a fresh worker process (one at a time), so ``peak_mib``
is the peak resident memory of deblurring that image alone (torch runtime
included) and timings are not disturbed by earlier runs.  The kernel size
given to the method is the true kernel's size plus ``--kernel-margin``
(10 px by default: Levin's kernels are not centred in their arrays, so a
support of exactly the true size centred on 0 cannot hold them).  Each finished image is a row in ``<out>.rows/``
(:class:`cbid_meta.evaluation.rows.RowStore`), so an interrupted run resumes where it stopped; the folder goes once
the table is written.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib, provenance, write_table  # noqa: E402

from cbid_meta.io import read_table_header  # noqa: E402


def _one(args):
    name, root, recipe, steps, seed, margin, kernel_dir, jitter = args
    import torch

    from cbid_meta.config import load_recipe
    from cbid_meta.evaluation import deconvolve, kernel_similarity, levin_row_scores, levin_scores, load_levin
    from cbid_meta.optim import Deblurrer

    item = next(d for d in load_levin(root) if d.name == name)
    cfg = load_recipe(recipe)
    ks = item.kernel.shape[0]
    cfg.kernel_size = ks + (1 - ks % 2) + margin
    cfg.seed = seed
    deb = Deblurrer(cfg)
    if steps:
        cfg = cfg.with_total_steps(steps, deb.coarsest_scale(*item.blurry.shape) + 1)
        deb = Deblurrer(cfg)
    blurry_in = item.blurry
    if jitter > 0:  # sensitivity check: a perturbation far below 8-bit quantisation (1/255)
        blurry_in = item.blurry + np.random.default_rng(seed).normal(0.0, jitter, item.blurry.shape)
    res = deb.run(blurry_in)
    if kernel_dir is not None:  # the estimated kernel, for offline sweeps of the final step
        kernel_dir = Path(kernel_dir)
        kernel_dir.mkdir(parents=True, exist_ok=True)
        np.save(kernel_dir / f"{name}.npy", res.kernel)
        (kernel_dir / f"{name}.json").write_text(json.dumps({"selection": res.info.get("selection"), "kernel_size": cfg.kernel_size}, indent=1))
    est = res.image.astype(np.float64)
    ref = deconvolve(item.blurry, item.kernel)
    sc = levin_row_scores(est, item.sharp, ref)
    blurry = levin_scores(item.blurry, item.sharp)
    ks_sim = kernel_similarity(res.kernel, item.kernel)
    return {
        "image": name,
        "kernel_size": ks,
        "psnr": sc["psnr"],
        "psnr_shift5": sc["psnr_shift5"],
        "ssim": sc["ssim"],
        "psnr_blurry": blurry["psnr"],
        "error_ratio": sc["error_ratio"],
        "kernel_ncc": ks_sim["ncc"],
        "seconds": res.seconds,
        "peak_mib": peak_rss_mib(),
        "steps": res.info["steps"],
        "threads": torch.get_num_threads(),
        "refine_seconds": res.info.get("estimate_seconds", 0.0),  # kernel candidates and their selection
        "refine_choice": res.info.get("chosen", "") if len(res.info.get("candidates", [])) > 1 else "",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Levin folder (default: ../shared/data/levin)")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--steps", type=int, default=None, help="override the recipe's total steps")
    ap.add_argument("--seed", type=int, default=None, help="default: the recipe's seed")
    ap.add_argument("--kernel-margin", type=int, default=10,
                    help="px added to the true kernel size (Levin's kernels are not centred in their arrays)")
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--input-jitter", type=float, default=0.0,
                    help="add Gaussian noise of this sigma to each blurry input (e.g. 1e-6, a few float32 steps: how far rounding-level changes move the results)")
    ap.add_argument("--images", default=None, help="comma-separated names, e.g. im1_kernel1,im2_kernel2")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/levin_core.csv"))
    ap.add_argument("--summary", type=Path, default=None, help="markdown summary (default: <out>.md)")
    ap.add_argument("--readme", type=Path, default=Path(__file__).resolve().parent / "README.md",
                    help="markdown file whose levin_core section is rewritten with the summary")
    ap.add_argument("--save-kernels", type=Path, default=None,
                    help="folder for each image's estimated kernel (<image>.npy) and hypothesis scores (<image>.json)")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the summaries from an existing --out table")
    a = ap.parse_args(argv)
    if a.report_only:
        meta = read_table_header(a.out)
        report(pd.read_csv(a.out, comment="#"), meta, a)
        return 0

    from cbid_meta.evaluation import load_levin

    names = [d.name for d in load_levin(a.data)]
    if a.images:
        names = [n for n in names if n in a.images.split(",")]
    if a.limit:
        names = names[: a.limit]
    from cbid_meta.evaluation.rows import RowStore

    if a.seed is None:
        from cbid_meta.config import load_recipe

        a.seed = int(load_recipe(a.recipe).seed)  # as the CLI resolves it (cbid_meta.config.resolve_seed)
    settings = {"recipe": a.recipe, "steps": a.steps, "seed": a.seed, "kernel_margin": a.kernel_margin, "input_jitter": a.input_jitter}
    store = RowStore(a.out.with_suffix(a.out.suffix + ".rows"), key=("image",), settings=settings)
    todo = [n for n in names if (n,) not in store]
    prov = provenance()  # the revision that runs (the tree may change while it runs)
    ctx = mp.get_context("spawn")
    for i, name in enumerate(todo, start=len(names) - len(todo) + 1):
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            row = ex.submit(_one, (name, a.data, a.recipe, a.steps, a.seed, a.kernel_margin, a.save_kernels, a.input_jitter)).result()
        store.add(row)
        print(f"[{i}/{len(names)}] {name}: PSNR {row['psnr']:.2f} dB (blurry {row['psnr_blurry']:.2f}), "
              f"kernel NCC {row['kernel_ncc']:.3f}, {row['seconds']:.1f} s, {row['peak_mib']:.0f} MiB", flush=True)
    rows = store.rows()
    df = pd.DataFrame(rows)
    df = df[df["image"].isin(names)].sort_values("image").reset_index(drop=True)
    meta = prov | {"recipe": a.recipe, "seed": a.seed, "steps": a.steps or "recipe", "kernel_margin": a.kernel_margin, "input_jitter": a.input_jitter}
    write_table(df, a.out, meta)
    store.clear()
    report(df, meta, a)
    return 0


def _halves(df: pd.DataFrame) -> dict:
    """Mean PSNR on the two halves of Levin: images imI_kernelJ with I+J even
    (the half the exploratory sweeps of the kernel polish were tuned on, see
    docs/results_log.md) and with I+J odd (never used for tuning)."""
    ij = df["image"].str.extract(r"im(\d+)_kernel(\d+)").astype(float)
    if ij.isna().any().any():
        return {}
    even = ((ij[0] + ij[1]) % 2 == 0).to_numpy()
    out = {}
    if even.any():
        out["mean PSNR, I+J even (tuning half) (dB)"] = df["psnr"][even].mean()
    if (~even).any():
        out["mean PSNR, I+J odd (held-out half) (dB)"] = df["psnr"][~even].mean()
    return out


def report(df: pd.DataFrame, meta: dict, a) -> None:
    """Write the markdown summary (``<out>.md``) and the section of ``benchmarks/README.md``."""
    summary = {
        "images": len(df),
        "mean PSNR (dB)": df["psnr"].mean(),
        **({"mean PSNR, 5-px shift search (dB)": df["psnr_shift5"].mean()} if "psnr_shift5" in df else {}),
        "mean PSNR blurry (dB)": df["psnr_blurry"].mean(),
        "mean SSIM": df["ssim"].mean(),
        "mean error ratio": df["error_ratio"].mean(),
        "error ratio <= 3 (%)": 100 * (df["error_ratio"] <= 3).mean(),
        "mean kernel NCC": df["kernel_ncc"].mean(),
        **_halves(df),
        "median seconds": df["seconds"].median(),
        "max peak MiB": df["peak_mib"].max(),
    }
    md = ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items()]
    kern = df["image"].str.extract(r"_(kernel\d+)$")[0]
    if kern.notna().all() and kern.nunique() > 1:
        per = df.groupby(kern)["psnr"].agg(["count", "mean"]).reset_index()
        md += ["", "Mean PSNR per kernel:", "", "| kernel | images | mean PSNR (dB) |", "|---|---|---|"]
        md += [f"| {r[0]} | {r['count']} | {r['mean']:.2f} |" for _, r in per.iterrows()]
    if "refine_choice" in df and df["refine_choice"].fillna("").astype(str).str.len().gt(0).any():
        counts = df["refine_choice"].fillna("").astype(str).value_counts()
        md += ["", "Chosen kernel candidate (images):", "", "| candidate | images | mean PSNR (dB) |", "|---|---|---|"]
        md += [f"| {c or '(one candidate)'} | {n} | {df.loc[df['refine_choice'].fillna('').astype(str) == c, 'psnr'].mean():.2f} |" for c, n in counts.items()]
    prov = [f"- {k}: `{v}`" for k, v in meta.items()]
    text = "\n".join(md + ["", "Provenance:", ""] + prov) + "\n"
    (a.summary or a.out.with_suffix(".md")).write_text(text)
    if a.readme and a.readme.exists():
        start, end = f"<!-- {a.out.stem}:start -->", f"<!-- {a.out.stem}:end -->"
        body = a.readme.read_text()
        if start in body and end in body:
            head, _, rest = body.partition(start)
            _, _, tail = rest.partition(end)
            a.readme.write_text(f"{head}{start}\n{text}{end}{tail}")
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
