"""Meta-learned start against scratch for the published method on Levin: the tables of ``meta_levin``.

Both modes run with ``benchmarks/levin_paper.py`` (resumable, outputs kept, scored
as the paper scores), each in its own work folder:

    # scratch: the published 5000 iterations, and the same schedule shortened to the meta budget
    python benchmarks/levin_paper.py --width 32
    python benchmarks/levin_paper.py --width 32 --steps 500
    # meta: from the initialiser, at one or more budgets
    python benchmarks/levin_paper.py --width 32 --steps 500 --init INIT --work ~/.cache/cbid_meta/levin_meta \\
        --out benchmarks/results/meta_published/levin_meta_runs.csv --curve benchmarks/results/meta_published/levin_meta_curve.csv
    # this table
    python benchmarks/meta_published.py --scratch ~/.cache/cbid_meta/levin_paper --meta ~/.cache/cbid_meta/levin_meta

For every (image, seed) with a meta row and a 5000-iteration scratch row of the same
width: the scratch run's final PSNR (the published method's own), the meta PSNR and
kernel NCC at each budget, the smallest budget at which the meta run reaches the
scratch final PSNR (its speed-up ``5000 / budget``; 0 when no budget reaches it), and
the scratch run at the same shortened budget where it exists (equal budgets).
Writes ``meta_levin.csv`` (one row per image, seed and budget), ``meta_summary.json``
and ``meta_levin.md`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, provenance, write_table  # noqa: E402

FULL = 5000  # the published iterations


def _rows(folder: Path) -> pd.DataFrame:
    rows = [json.loads(p.read_text()) for p in sorted((Path(folder) / "rows").glob("*.json")) if p.name != "settings.json"]
    return pd.DataFrame(rows)


def _steps(d: pd.DataFrame) -> pd.Series:
    """The iterations a row's schedule had (``steps`` None/NaN: the published 5000)."""
    s = d["steps"] if "steps" in d else pd.Series(np.nan, index=d.index)
    return s.fillna(FULL).astype(int)


def compare(scratch: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """One row per (image, width, seed, meta budget): meta and scratch at that budget, scratch at 5000, reach."""
    scratch = scratch.assign(budget=_steps(scratch))
    meta = meta.assign(budget=_steps(meta))
    key = ["image", "width", "seed"]
    full = scratch[scratch.budget == FULL].set_index(key)
    out = []
    for (img, w, sd), d in meta.groupby(key):
        if (img, w, sd) not in full.index:
            continue
        ref = full.loc[(img, w, sd)]
        d = d.sort_values("budget")
        reached = d[d.psnr >= ref.psnr]
        reach = int(reached.budget.iloc[0]) if len(reached) else None
        for _, r in d.iterrows():
            eq = scratch[(scratch.image == img) & (scratch.width == w) & (scratch.seed == sd) & (scratch.budget == r.budget)]
            out.append({
                "image": img, "width": int(w), "seed": int(sd), "budget": int(r.budget),
                "psnr_meta": r.psnr, "psnr_shift5_meta": r.get("psnr_shift5", math.nan), "kernel_ncc_meta": r.kernel_ncc,
                "psnr_nonblind_meta": r.get("psnr_nonblind", math.nan), "seconds_meta": r.seconds,
                "psnr_scratch_same_budget": float(eq.psnr.iloc[0]) if len(eq) else math.nan,
                "psnr_nonblind_scratch_same_budget": float(eq.psnr_nonblind.iloc[0]) if len(eq) and "psnr_nonblind" in eq else math.nan,
                "kernel_ncc_scratch_same_budget": float(eq.kernel_ncc.iloc[0]) if len(eq) else math.nan,
                "psnr_scratch_final": ref.psnr, "psnr_nonblind_scratch_final": ref.get("psnr_nonblind", math.nan),
                "kernel_ncc_scratch_final": ref.kernel_ncc, "seconds_scratch_final": ref.seconds,
                "psnr_blurry": ref.get("psnr_blurry", math.nan),
                "reach_budget": reach if reach is not None else math.nan,
                "speedup": FULL / reach if reach else 0.0,
                "init": r.get("init", None),
            })
    return pd.DataFrame(out)


def summarise(t: pd.DataFrame) -> dict:
    """The headline numbers (images: one (image, seed) pair each)."""
    per = t.groupby(["image", "seed"]).first()
    s = {"pairs": int(len(per)), "budgets": sorted(int(b) for b in t.budget.unique()),
         "mean_scratch_final_psnr": float(per.psnr_scratch_final.mean()),
         "mean_scratch_final_psnr_nonblind": float(per.psnr_nonblind_scratch_final.mean()),
         "reached": int(per.reach_budget.notna().sum()),
         "median_speedup": float(per.speedup.median()) if len(per) else math.nan}
    for b, d in t.groupby("budget"):
        s[f"budget_{int(b)}"] = {
            "mean_psnr_meta": float(d.psnr_meta.mean()),
            "mean_psnr_nonblind_meta": float(d.psnr_nonblind_meta.mean()),
            "mean_psnr_scratch_same_budget": float(d.psnr_scratch_same_budget.mean()) if d.psnr_scratch_same_budget.notna().all() else None,
            "mean_kernel_ncc_meta": float(d.kernel_ncc_meta.mean()),
            "mean_kernel_ncc_scratch_final": float(d.kernel_ncc_scratch_final.mean()),
            "median_seconds_meta": float(d.seconds_meta.median()),
        }
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs = Path(os.environ.get("CBID_RUNS", Path.home() / ".cache" / "cbid_meta"))
    ap.add_argument("--scratch", type=Path, default=runs / "levin_paper", help="levin_paper.py work folder of the scratch runs")
    ap.add_argument("--meta", type=Path, default=runs / "levin_meta", help="levin_paper.py --init work folder of the meta runs")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "meta_published")
    a = ap.parse_args(argv)
    for f in (a.scratch, a.meta):
        if not (f / "rows").is_dir():
            print(f"error: no rows in {f} (run benchmarks/levin_paper.py first)", file=sys.stderr)
            return 2
    t = compare(_rows(a.scratch), _rows(a.meta))
    if t.empty:
        print("error: no image has both a meta row and a 5000-iteration scratch row of the same width and seed", file=sys.stderr)
        return 2
    prov = provenance()
    a.out.mkdir(parents=True, exist_ok=True)
    write_table(t, a.out / "meta_levin.csv", prov)
    s = {**summarise(t), "provenance": prov, "scratch_folder": str(a.scratch), "meta_folder": str(a.meta),
         "init": sorted({str(v) for v in t.init.dropna()})}
    (a.out / "meta_summary.json").write_text(json.dumps(s, indent=2))
    lines = ["# Meta-learned start vs scratch, published method, Levin", "", *[f"- {k}: {v}" for k, v in prov.items()],
             f"- initialiser: {', '.join(s['init'])}", "",
             f"{s['pairs']} (image, seed) pairs; scratch 5000 iterations: mean PSNR {s['mean_scratch_final_psnr']:.2f} dB; "
             f"the meta start reaches it within the budgets {s['budgets']} on {s['reached']} of them; median speed-up "
             f"{s['median_speedup']:.1f}× (0 where not reached). PSNR at ±10 px as the paper scores.", "",
             t.drop(columns=["init"]).to_markdown(index=False, floatfmt=".3f"), ""]
    (a.out / "meta_levin.md").write_text("\n".join(lines))
    print("\n".join(lines[len(prov) + 3 :]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
