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
        # the ∆ finish: the meta run's kernel, then non-blind deconvolution (computed on every run), against
        # the same target, the published method's own output (x after 5000 scratch iterations)
        reached_d = d[d.psnr_nonblind >= ref.psnr] if "psnr_nonblind" in d else d.iloc[:0]
        reach_d = int(reached_d.budget.iloc[0]) if len(reached_d) else None
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
                "reach_budget_delta": reach_d if reach_d is not None else math.nan,
                "speedup_delta": FULL / reach_d if reach_d else 0.0,
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
         "median_speedup": float(per.speedup.median()) if len(per) else math.nan,
         "reached_delta_finish": int(per.reach_budget_delta.notna().sum()),
         "median_speedup_delta_finish": float(per.speedup_delta.median()) if len(per) else math.nan}
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


def read_curve_table(path: Path) -> pd.DataFrame:
    """A committed ``levin_paper.py`` curve table (``steps`` empty: the recipe's 5000)."""
    if not Path(path).exists():
        return pd.DataFrame()
    c = pd.read_csv(path, comment="#")
    if "steps" not in c:  # a table from before curves carried their runs' steps: cannot be split safely
        return pd.DataFrame()
    return c.assign(budget=c["steps"].fillna(FULL).astype(int))


def curve_table(scratch_curve: pd.DataFrame, meta_curve: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean kernel NCC and PSNR of x per iteration: the meta runs of the largest budget against the
    5000-iteration scratch runs at the same iterations, over the (image, width, seed) of ``pairs``."""
    if scratch_curve.empty or meta_curve.empty or pairs.empty:
        return pd.DataFrame()
    key = ["image", "width", "seed"]
    keep = pairs[key].drop_duplicates()
    top = int(pairs.budget.max())
    m = meta_curve[meta_curve.budget == top].merge(keep, on=key)
    sc = scratch_curve[scratch_curve.budget == FULL].merge(keep, on=key)
    both = m.merge(sc, on=key + ["iteration"], suffixes=("_meta", "_scratch"))
    if both.empty:
        return pd.DataFrame()
    t = both.groupby("iteration").agg(runs=("image", "count"), kernel_ncc_meta=("kernel_ncc_meta", "mean"),
                                      kernel_ncc_scratch=("kernel_ncc_scratch", "mean"), psnr_meta=("psnr_meta", "mean"),
                                      psnr_scratch=("psnr_scratch", "mean")).reset_index()
    final = sc[sc.iteration == sc.groupby(key)["iteration"].transform("max")]
    final = final[final.set_index(key).index.isin(both.set_index(key).index.unique())]
    return pd.concat([t, pd.DataFrame([{"iteration": int(final.iteration.max()), "runs": len(final), "kernel_ncc_meta": math.nan,
                                         "kernel_ncc_scratch": final.kernel_ncc.mean(), "psnr_meta": math.nan,
                                         "psnr_scratch": final.psnr.mean()}])], ignore_index=True).astype({"iteration": int, "runs": int})


def _tag(row) -> str:
    """The run's tag in its ``levin_paper.py`` work folder (the names of its outputs)."""
    from levin_paper import _tag as run_tag

    steps = None if pd.isna(row.get("steps", math.nan)) else int(row["steps"])
    return run_tag(row["image"], int(row["width"]), int(row["seed"]), steps)


def compare_rows(scratch: pd.DataFrame, meta: pd.DataFrame, width: int, seed: int) -> pd.DataFrame:
    """The runs of (image, ``width``, ``seed``) pairs with both modes, as ``cbid compare`` rows.

    Modes ``scratch`` and ``meta`` score the INR output x (the published method's own); ``meta + ∆``
    scores the meta runs' ∆ image (non-blind deconvolution with their kernel).  ``fit_loss`` is the
    mean fit of the last 50 iterations."""
    out = []
    sel = lambda d: d[(d.width == width) & (d.seed == seed)].assign(budget=_steps(d[(d.width == width) & (d.seed == seed)]))
    scratch, meta = sel(scratch), sel(meta)
    both = set(meta.image) & set(scratch[scratch.budget == FULL].image)
    modes = (("scratch", scratch, ""), ("meta", meta, ""), ("meta + ∆", meta, "_nonblind"))
    for mode, d, sfx in modes:
        for _, r in d[d.image.isin(both)].iterrows():
            out.append({"image": r.image, "mode": mode, "budget": int(r.budget), "seed": int(r.seed),
                        "steps": int(r.get("iterations", r.budget)), "seconds": r.seconds, "fit_loss": r.get("final_fit", math.nan),
                        "psnr": r.get(f"psnr{sfx}", math.nan), "psnr_shift5": r.get(f"psnr{sfx}_shift5", math.nan),
                        "ssim": r.get(f"ssim{sfx}", math.nan), "kernel_ncc": r.kernel_ncc, "cpu_share": r.get("cpu_share", math.nan),
                        "_tag": _tag(r)})
    return pd.DataFrame(out)


def with_outputs(df: pd.DataFrame, scratch_work: Path, meta_work: Path) -> pd.DataFrame:
    """The images of ``df`` whose largest-budget runs kept their outputs (x, kernel) in both work folders."""
    keep = []
    for img, g in df.groupby("image"):
        ok = True
        for mode, work in (("scratch", scratch_work), ("meta", meta_work)):
            d = g[g["mode"] == mode].sort_values("budget")
            tag = d["_tag"].iloc[-1] if len(d) else None
            ok &= tag is not None and all((Path(work) / "outputs" / f"{tag}_{k}.npy").exists() for k in ("x", "kernel"))
        if ok:
            keep.append(img)
    return df[df.image.isin(keep)]


def write_compare_report(df: pd.DataFrame, scratch_work: Path, meta_work: Path, out: Path, prov: dict, data=None) -> dict:
    """``cbid compare``'s report (results.csv, summary.md, figures, report.html) from finished runs:
    each mode's output at its largest budget is taken from its work folder, nothing is re-run."""
    from cbid_meta.evaluation.compare import write_report
    from cbid_meta.evaluation.datasets import load_dataset
    from cbid_meta.io import save_image

    names = list(dict.fromkeys(df.image))
    items = [it for it in load_dataset("levin", data) if it.name in names]
    (out / "outputs").mkdir(parents=True, exist_ok=True)
    for mode, work in (("scratch", scratch_work), ("meta", meta_work)):
        d = df[df["mode"] == mode]
        for img, g in d.groupby("image"):
            tag = g.sort_values("budget")["_tag"].iloc[-1]
            save_image(out / "outputs" / f"{img}__{mode}.png", np.clip(np.load(work / "outputs" / f"{tag}_x.npy"), 0, 1))
            np.save(out / "outputs" / f"{img}__{mode}_kernel.npy", np.load(work / "outputs" / f"{tag}_kernel.npy"))
    rows = df.drop(columns="_tag")
    write_table(rows, out / "results.csv", prov)
    return write_report(rows, items, out, {**prov, "recipe": "paper_w32 (published generators, width 32)",
                                           "runs": "benchmarks/levin_paper.py rows (scratch and --init), re-used, not re-run"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs = Path(os.environ.get("CBID_RUNS", Path.home() / ".cache" / "cbid_meta"))
    ap.add_argument("--scratch", type=Path, default=runs / "levin_paper", help="levin_paper.py work folder of the scratch runs")
    ap.add_argument("--meta", type=Path, default=runs / "levin_meta", help="levin_paper.py --init work folder of the meta runs")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "meta_published")
    ap.add_argument("--report", type=Path, default=None, help="also write a cbid compare report from the runs (default: OUT/compare_levin)")
    ap.add_argument("--width", type=int, default=32, help="the report's U-Net width")
    ap.add_argument("--seed", type=int, default=2024, help="the report's seed")
    ap.add_argument("--data", default=None, help="Levin folder (default: $CBID_LEVIN_DIR or ../shared/data/levin)")
    ap.add_argument("--scratch-curve", type=Path, default=ROOT / "benchmarks" / "results" / "levin_paper_curve.csv")
    ap.add_argument("--meta-curve", type=Path, default=ROOT / "benchmarks" / "results" / "meta_published" / "levin_meta_curve.csv")
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
             f"{s['median_speedup']:.1f}× (0 where not reached). Finished with the ∆ image (non-blind deconvolution with the "
             f"meta run's kernel) against the same target: reached on {s['reached_delta_finish']}, median speed-up "
             f"{s['median_speedup_delta_finish']:.1f}×. PSNR at ±10 px as the paper scores.", "",
             t.drop(columns=["init"]).to_markdown(index=False, floatfmt=".3f"), ""]
    cv = curve_table(read_curve_table(a.scratch_curve), read_curve_table(a.meta_curve), t)
    if not cv.empty:
        write_table(cv, a.out / "meta_curve.csv", prov)
        lines += ["## Kernel NCC and PSNR of x along the run", "",
                  f"Means over the runs with both curves: the meta runs of the largest budget ({int(t.budget.max())} iterations, "
                  "their schedule shortened in proportion) against the 5000-iteration scratch runs at the same iterations; "
                  "last row: the scratch runs' end.", "",
                  cv.to_markdown(index=False, floatfmt=[".0f" if c in ("iteration", "runs") else ".3f" for c in cv.columns]), ""]
    (a.out / "meta_levin.md").write_text("\n".join(lines))
    print("\n".join(lines[len(prov) + 3 :]))
    c = compare_rows(_rows(a.scratch), _rows(a.meta), a.width, a.seed)
    c = with_outputs(c, a.scratch, a.meta) if not c.empty else c
    if not c.empty:
        rep = a.report or a.out / "compare_levin"
        write_compare_report(c, a.scratch, a.meta, rep, prov, a.data)
        print(f"report: {rep / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
