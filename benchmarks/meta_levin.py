"""Meta-initialised vs from-scratch: summary tables gathered from `cbid compare` reports.

The runs themselves are made by ``cbid compare`` (one run per image × mode ×
budget, same seed / support / threads, warm-up excluded).  The gathered
comparison is the one of the ``paper_grid`` recipe, whose 3000-step schedule is
the cost the extension is meant to remove (docs/meta.md, "The `paper_grid` initialiser")::

    .venv/bin/cbid compare levin --recipe paper_grid --init cbid_meta/meta/paper_grid_init.safetensors \
        --budgets 300,3000 --meta-budgets 75,150,300,600 -o benchmarks/results/paper_grid/compare_levin
    .venv/bin/cbid compare synthetic --limit 12 --recipe paper_grid --init cbid_meta/meta/paper_grid_init.safetensors \
        --budgets 300,3000 --meta-budgets 75,150,300,600 -o benchmarks/results/paper_grid/compare_synthetic
    .venv/bin/python benchmarks/meta_levin.py --train-dir runs/meta_paper

This script gathers them into ``benchmarks/results/paper_grid/meta_levin.csv`` (one row
per image × mode × budget, columns ``image,dataset,mode,budget,steps,seconds,psnr,ssim,kernel_ncc``)
and ``benchmarks/results/paper_grid/meta_summary.json`` (median speed-ups in steps and
seconds to reach the scratch run's final PSNR, PSNR at an equal small
budget, meta-training cost).  Speed-ups are given twice: to the scratch run's
final PSNR (the issue's criterion) and to its final kernel NCC (kernel
quality); the blurry input's mean PSNR is given beside them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, provenance, write_table  # noqa: E402

from cbid_meta.io import read_table_header  # noqa: E402
from cbid_meta.evaluation.budgets import speedups  # noqa: E402


def blurry_psnr(dataset: str, names: list[str]) -> float:
    """Mean PSNR of the blurry inputs themselves (Levin protocol), for context."""
    from cbid_meta.evaluation.datasets import load_dataset
    from cbid_meta.evaluation.metrics import levin_scores

    items = [it for it in load_dataset(dataset, None, None) if it.name in names]
    return float(sum(levin_scores(it.blurry, it.sharp)["psnr"] for it in items) / max(len(items), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", default="levin=benchmarks/results/paper_grid/compare_levin,synthetic=benchmarks/results/paper_grid/compare_synthetic")
    ap.add_argument("--small-budget", type=int, default=300, help="equal budget compared head to head (10%% of the paper recipe's 3000)")
    ap.add_argument("--train-dir", default=None, help="meta-train output folder (train_summary.json)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/paper_grid/meta_levin.csv"))
    ap.add_argument("--summary", default=str(ROOT / "benchmarks/results/paper_grid/meta_summary.json"))
    a = ap.parse_args()
    frames, sources = [], {}
    for spec in a.reports.split(","):
        ds, _, folder = spec.partition("=")
        csv = ROOT / folder / "results.csv"
        if not csv.exists():
            print(f"missing {csv}; skipped", file=sys.stderr)
            continue
        d = pd.read_csv(csv, comment="#")
        d.insert(1, "dataset", ds)
        frames.append(d)
        sources[ds] = read_table_header(csv)
    df = pd.concat(frames, ignore_index=True)
    cols = ["image", "dataset", "mode", "budget", "steps", "seconds", "psnr", "ssim", "kernel_ncc", "fit_loss"]
    df = df[cols]
    meta = provenance()
    write_table(df, Path(a.out), meta)
    summary: dict = {"provenance": meta, "compare_runs": sources}
    for ds, d in df.groupby("dataset", sort=False):
        sp = speedups(d)
        spk = speedups(d, "kernel_ncc")
        top = d[d["mode"] == "scratch"]["budget"].max()
        small = d[d["budget"] == a.small_budget]
        summary[ds] = {
            "recipe": sources[ds].get("recipe", "fast"),
            "images": int(d["image"].nunique()),
            "mean_psnr_blurry": blurry_psnr(ds, sorted(d["image"].unique())),
            "median_speedup_steps": float(sp["speedup_steps"].median()),
            "median_speedup_seconds": float(sp["speedup_seconds"].median()),
            "reached_fraction": float(sp["reached"].mean()),
            "note": "target = scratch PSNR at the largest budget; speed-up 0 = never reached within the meta budgets (counted pessimistically)",
            f"mean_psnr_scratch_{top}": float(d[(d["mode"] == "scratch") & (d["budget"] == top)]["psnr"].mean()),
            f"mean_psnr_scratch_{a.small_budget}": float(small[small["mode"] == "scratch"]["psnr"].mean()),
            f"mean_psnr_meta_{a.small_budget}": float(small[small["mode"] == "meta"]["psnr"].mean()),
            "mean_psnr_by_budget": {f"{m}@{b}": float(g["psnr"].mean()) for (m, b), g in d.groupby(["mode", "budget"])},
            "kernel_ncc": {
                "median_speedup_steps": float(spk["speedup_steps"].median()),
                "median_speedup_seconds": float(spk["speedup_seconds"].median()),
                "reached_fraction": float(spk["reached"].mean()),
                "per_image": spk.to_dict("records"),
            },
            "per_image": sp.to_dict("records"),
        }
    if "levin" in summary:
        summary["median_speedup_steps"] = summary["levin"]["median_speedup_steps"]
        summary["median_speedup_seconds"] = summary["levin"]["median_speedup_seconds"]
    if a.train_dir:
        t = json.loads((Path(a.train_dir) / "train_summary.json").read_text())
        summary["train_seconds"] = t["train_seconds"]
        summary["train_peak_mib"] = t["train_peak_mib"]
        summary["train_processes"] = t.get("processes")
        summary["train_command"] = t.get("command")
    Path(a.summary).write_text(json.dumps(summary, indent=2, default=float))
    for ds in ("levin", "synthetic"):
        if ds in summary:
            brief = {k: v for k, v in summary[ds].items() if k not in ("per_image", "kernel_ncc")}
            brief["kernel_ncc"] = {k: v for k, v in summary[ds]["kernel_ncc"].items() if k != "per_image"}
            print(ds, json.dumps(brief, indent=1))
    print({k: summary.get(k) for k in ("median_speedup_steps", "median_speedup_seconds", "train_seconds", "train_peak_mib")})


if __name__ == "__main__":
    main()
