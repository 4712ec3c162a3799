"""The paper's ablations and peers beside the published method on Levin, scored as the paper scores.

Methods (``--methods``, default all): ``full`` (``recipes/paper.toml``), the ablations
``no_cross``, ``single_scale``, ``no_progressive``, ``mlp_kernel``, ``cnn_image``,
``direct_down`` (``recipes/paper_<name>.toml``: each a named recipe, docs/evaluation.md), the
diagnostics ``pooled_kernel`` and ``kernel_lr10`` (run only when named: the published SIREN with its coarse
kernels pooled from the full one, as ``mlp_kernel`` makes them; the published method with the kernel
generator's learning rate ×10),
the peers ``selfdeblur`` (:mod:`cbid_meta.baselines.selfdeblur`) and ``l0_map``, and
the bounds ``blurry`` and ``true_kernel`` (taken from the published rows' reference
columns).  The recipe methods run with ``benchmarks/levin_paper.py`` — resumable, outputs
kept, scored at ±10 px with ±5 beside — in a work folder per recipe (``full`` shares
levin_paper's own folder, so its rows are the ones of ``levin_paper.md``); the peers run
here, their outputs kept and their rows stored one file each (a stopped run resumes).
Each method's finished rows are also kept in a committed table (``full``: ``levin_paper.csv``;
the others: ``ablation_paper/<method>.csv``), from which a fresh work folder — another
machine, another session — takes them back, so finished runs are never repeated.

    python benchmarks/ablation_paper.py --width 32                     # the 8-image subset, seed 2024
    python benchmarks/ablation_paper.py --width 32 --seeds 2024,1,2 --methods full,no_cross
    python benchmarks/ablation_paper.py --report-only                   # the tables from the finished rows
    python benchmarks/ablation_paper.py --rescore                       # re-score the kept outputs, rewrite the tables

``ablation_paper.csv`` has one row per method, image (of ``--images``) and seed; ``ablation_paper.md``
each method's mean over the images it has finished, ``full``'s mean on those same images and
the difference, and whether that difference exceeds the noise floor of that comparison
(``floor``: the mean over those same images of ``full``'s standard deviation across seeds;
with one seed there is none and every difference is reported as it is), so a method still
running is compared on what it has finished, held to ``full``'s spread there.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import levin_paper as lp  # noqa: E402
from _common import ROOT, provenance, write_table  # noqa: E402

RECIPES = {"full": "paper", "no_cross": "paper_no_cross", "single_scale": "paper_single_scale", "no_progressive": "paper_no_progressive",
           "mlp_kernel": "paper_mlp_kernel", "cnn_image": "paper_cnn_image", "direct_down": "paper_direct_down",
           "pooled_kernel": "paper_pooled_kernel", "kernel_lr10": "paper_kernel_lr10"}
#: recipe methods that are diagnostics, not the paper's ablations (not run unless named in ``--methods``)
DIAGNOSTICS = ("pooled_kernel", "kernel_lr10")
PEERS = ("selfdeblur", "l0_map")
BOUNDS = ("blurry", "true_kernel")
METHODS = (*RECIPES, *PEERS, *BOUNDS)
#: The paper's own numbers beside ours (``../shared/paper/method_details.md``): its Table 5, mean PSNR of the ablations
#: on Lai et al. (another data set: read the direction, not the level), and its Table 11 on all 32 Levin images (width
#: 128, 5000 iterations, ±10 px); Table 11 does not list L0 MAP.
PAPER_T5_LAI = {"full": 25.16, "no_cross": 24.44, "single_scale": 24.14, "no_progressive": 22.14, "cnn_image": 23.01,
                "mlp_kernel": 19.17, "direct_down": 20.89}
PAPER_T11_LEVIN = {"full": 33.74, "selfdeblur": 33.07, "true_kernel": 34.53}
COLUMNS = ("method", "image", "width", "seed", "psnr", "psnr_shift5", "ssim", "error_ratio", "kernel_ncc", "psnr_nonblind",
           "kernel_spread", "seconds", "iterations")


def _work(a, method: str) -> Path:
    return a.full_work if method == "full" else a.work / method


def _table(a, method: str) -> Path:
    """The committed table of one method's finished rows: ``full``'s is levin_paper's own (``--full-out``), the others
    ``<--out without .csv>/<method>.csv``.  A work folder does not survive a change of machine; these tables do, and a
    fresh work folder takes its finished rows back from them."""
    return a.full_out if method == "full" else a.out.with_suffix("") / f"{method}.csv"


def _take_table(store, table: Path, work: Path | None = None) -> int:
    """Take the finished rows of a committed table that the work folder lacks; a recipe's (``work`` given) as
    levin_paper.py takes them, with their curves and only when its method revision wrote the table."""
    from types import SimpleNamespace

    if work is not None:
        return lp.seed_from_tables(SimpleNamespace(out=table, curve=table.with_name(table.stem + "_curve.csv")), store, work)
    return store.seed(pd.read_csv(table, comment="#")) if table.exists() else 0


def _peer_tag(image: str, seed: int, steps) -> str:
    """The name a peer run's outputs are kept under."""
    return f"{image}__s{int(seed)}" + (f"__{int(steps)}it" if not lp._missing(steps) and steps else "")


def _image_names(a) -> list[str] | None:
    """The Levin images ``--images`` names (None: all)."""
    return None if a.images == "all" else list(lp.SUBSET) if a.images == "subset" else a.images.split(",")


def rescore_peer(method: str, items: list, a, prov: dict) -> int:
    """Re-score every finished row of a peer whose outputs are in its work folder (no optimisation); returns how many."""
    store = _peer_store(a, method)
    _take_table(store, _table(a, method))
    by_name = {d.name: d for d in items}
    n = 0
    for row in store.rows():
        tag = _peer_tag(row["image"], row["seed"], row.get("steps"))
        saved = lp.load_outputs(_work(a, method), tag)
        if saved is None or row["image"] not in by_name:
            continue
        x, _, k = saved
        row.update(lp.score_outputs(by_name[row["image"]], x, k, None), scored_revision=prov["git_revision"])
        store.add(row)
        n += 1
    if n:
        write_table(store.frame(), _table(a, method), prov)
    return n


def run_recipe(method: str, a) -> int:
    """The recipe method's runs through levin_paper.py (its work folder; its tables: :func:`_table`)."""
    w, out = _work(a, method), _table(a, method)
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ["--recipe", RECIPES[method], "--width", str(a.width), "--images", a.images, "--seeds", a.seeds, "--device", a.device,
            "--work", str(w), "--out", str(out), "--curve", str(out.with_name(out.stem + "_curve.csv"))]
    if a.steps:
        argv += ["--steps", str(a.steps)]
    if a.data:
        argv += ["--data", str(a.data)]
    if a.deadline:
        argv += ["--deadline", str(a.deadline)] + (["--batch-seconds", str(a.batch_seconds)] if a.batch_seconds else [])
    if getattr(a, "rescore", False):
        argv += ["--rescore"]
    return lp.main(argv)


def _peer_store(a, method: str):
    from cbid_meta.evaluation.rows import RowStore

    return RowStore(_work(a, method) / "rows", key=("image", "seed", "steps"),
                    settings={"method": method, "scorer": lp.METHOD, "kernel_margin": 0})


def run_peer(method: str, items: list, seeds: list[int], a, prov: dict) -> None:
    """SelfDeblur or L0 MAP on each image (and seed: L0 MAP has none), outputs kept, one row file each."""
    from cbid_meta.evaluation.bench import BenchSettings, run_method

    store = _peer_store(a, method)
    work = _work(a, method)
    table = _table(a, method)
    _take_table(store, table)
    for item in items:
        for seed in (seeds if method == "selfdeblur" else [0]):
            key = (item.name, seed, a.steps)
            if key in store:
                continue
            if a.deadline and time.time() > a.deadline:
                print(f"{method}: deadline reached, {item.name} seed {seed} left for the next run", flush=True)
                return
            st = BenchSettings(recipe="paper", steps=a.steps, seed=seed, kernel_margin=0, device=a.device)
            t = time.perf_counter()
            x, k, info = run_method(method, item, st)
            sec = time.perf_counter() - t
            tag = _peer_tag(item.name, seed, a.steps)
            xs, _, ks = lp._as_saved(x, None, k)
            lp.save_outputs(work, tag, xs, None, ks)
            row = {"method": method, "image": item.name, "seed": seed, "steps": a.steps, **lp.score_outputs(item, xs, ks, None),
                   "seconds": sec, "iterations": info.get("steps", math.nan), "git_revision": prov["git_revision"], "date": prov["date"]}
            store.add(row)
            table.parent.mkdir(parents=True, exist_ok=True)
            write_table(store.frame(), table, prov)
            print(f"{method} {tag}: PSNR {row['psnr']:.2f} dB (±5 {row['psnr_shift5']:.2f}), kernel NCC {row['kernel_ncc']:.3f}, {sec:.0f} s", flush=True)


def gather(a, methods: list[str]) -> pd.DataFrame:
    """Every finished row of the listed methods (bounds from the published rows' reference columns)."""
    frames = []
    for m in methods:
        if m in RECIPES:
            store = lp.row_store(_work(a, m), RECIPES[m], 0)
            _take_table(store, _table(a, m), _work(a, m))
            d = pd.DataFrame(store.rows())
            if d.empty:
                continue
            d["steps"] = d.get("steps")  # absent when no row has --steps
            d = d[(d.width == a.width) & (d["steps"].isna() if not a.steps else d["steps"] == a.steps)]
            frames.append(d.assign(method=m))
        elif m in PEERS:
            store = _peer_store(a, m)
            _take_table(store, _table(a, m))
            d = pd.DataFrame(store.rows())
            if not d.empty:
                d["steps"] = d.get("steps")
                d = d[d["steps"].isna()] if not a.steps else d[d["steps"] == a.steps]
                frames.append(d.assign(width=math.nan))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    bounds = [m for m in methods if m in BOUNDS]
    if bounds and not out.empty:
        ref = out.drop_duplicates("image")[["image", "psnr_blurry", "psnr_blurry_shift5", "psnr_true_kernel", "psnr_true_kernel_shift5"]]
        for m in bounds:
            col = "psnr_blurry" if m == "blurry" else "psnr_true_kernel"
            out = pd.concat([out, pd.DataFrame({"method": m, "image": ref.image, "psnr": ref[col], "psnr_shift5": ref[col + "_shift5"]})],
                            ignore_index=True)
    lead = [c for c in COLUMNS if c in out]
    return out[lead + [c for c in out.columns if c not in lead]]


def summary(t: pd.DataFrame, methods: list[str]) -> tuple[pd.DataFrame, float]:
    """Per method its mean over the images it has finished (seed means first), and against ``full`` on the images both
    have finished: ``full``'s mean there, ``full`` minus the method, the images on which ``full`` is above, the paired
    same-seed difference; the noise floor of that comparison (``floor``: the mean of ``full``'s seed std over those same
    images, where it has several seeds) and the overall floor (the same mean over all of ``full``'s images).  A method
    compared on the images where ``full`` is stable is held to that stability, not to the spread of images it has not
    run, where ``full`` collapses on some seeds."""
    present = [m for m in methods if m in set(t.method)]
    per = t.groupby(["method", "image"]).psnr.mean().unstack("image")
    full = t[t.method == "full"]
    std = full.groupby("image").psnr.std().dropna()
    floor = float(std.mean()) if len(std) else math.nan
    full_imgs = set(full.image)
    rows = []
    for m in present:
        dm = t[t.method == m]
        imgs = sorted(set(dm.image))
        mean = float(per.loc[m, imgs].mean())
        both = sorted(set(imgs) & full_imgs)
        diff, there, above, same, fl = math.nan, math.nan, "", math.nan, math.nan
        if "full" in present and m != "full" and both:
            there = float(per.loc["full", both].mean())
            diff = there - float(per.loc[m, both].mean())
            above = f"{int((per.loc['full', both] > per.loc[m, both]).sum())}/{len(both)}"
            same = _same_seed_diff(full, dm)
            on = std.reindex(both).dropna()
            fl = float(on.mean()) if len(on) else math.nan
        verdict = "" if math.isnan(diff) else ("full above" if diff > (fl if not math.isnan(fl) else 0) else
                                               "tie" if not math.isnan(fl) and abs(diff) <= fl else "full below")
        rows.append({"method": m, "images": len(imgs), "seeds": int(dm.seed.nunique()) if "seed" in dm and dm.seed.notna().any() else 0,
                     "psnr": mean, "psnr_shift5": float(dm.groupby("image").psnr_shift5.mean().mean()),
                     "kernel_ncc": float(dm.groupby("image").kernel_ncc.mean().mean()) if "kernel_ncc" in dm else math.nan,
                     "kernel_spread": float(dm.groupby("image").kernel_spread.mean().mean()) if "kernel_spread" in dm else math.nan,
                     "full_same_images": there, "full_minus": diff, "floor": fl, "verdict": verdict, "full_above_on": above, "same_seed_minus": same,
                     "median_s": float(dm.seconds.median()) if "seconds" in dm else math.nan,
                     "paper_t5_lai": PAPER_T5_LAI.get(m, math.nan),
                     "paper_t5_full_minus": PAPER_T5_LAI["full"] - PAPER_T5_LAI[m] if m in PAPER_T5_LAI and m != "full" else math.nan,
                     "paper_t11_levin": PAPER_T11_LEVIN.get(m, math.nan)})
    return pd.DataFrame(rows), floor


def _same_seed_diff(full: pd.DataFrame, dm: pd.DataFrame) -> float:
    """Mean over the (image, seed) runs both have of ``full``'s PSNR minus the method's: the paired reading, free of the
    seed-to-seed spread between images (NaN when no seed is shared; the peers and bounds have their own seeds or none)."""
    if "seed" not in dm or dm.seed.isna().all():
        return math.nan
    j = full.merge(dm, on=["image", "seed"], suffixes=("_f", "_m"))
    return float((j.psnr_f - j.psnr_m).mean()) if len(j) else math.nan


def main(argv=None) -> int:
    from cbid_meta.errors import InputError

    runs = Path(os.environ.get("CBID_RUNS", Path.home() / ".cache" / "cbid_meta"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=",".join(m for m in METHODS if m not in DIAGNOSTICS))
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--images", default="subset", help="as levin_paper.py: subset, all or names")
    ap.add_argument("--seeds", default="2024")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=runs / "ablation_paper", help="work folders of the ablations and peers")
    ap.add_argument("--full-work", type=Path, default=runs / "levin_paper", help="the published method's levin_paper.py work folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablation_paper.csv",
                    help="the joined table (+ .md); each method's own rows go to <out without .csv>/<method>.csv")
    ap.add_argument("--full-out", type=Path, default=None, help="full's table (default: levin_paper.csv beside --out)")
    ap.add_argument("--deadline", type=float, default=None, help="seconds since the epoch: as levin_paper.py's; a peer run "
                    "starts only before it")
    ap.add_argument("--batch-seconds", type=float, default=None, help="with --deadline: as levin_paper.py's")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--rescore", action="store_true", help="re-score every finished run whose outputs are in its work folder "
                    "(no optimisation; rows without outputs kept), then rewrite the tables")
    a = ap.parse_args(argv)
    a.full_out = a.full_out or a.out.parent / "levin_paper.csv"
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {', '.join(bad)} (choose from {', '.join(METHODS)})")
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds: comma-separated integers expected, got {a.seeds!r}")
    prov = provenance()
    if not a.report_only:
        from cbid_meta.evaluation import load_levin

        items = load_levin(a.data)
        names = _image_names(a)
        chosen = [d for d in items if names is None or d.name in names]
        for m in methods:
            try:
                if m in RECIPES:
                    if run_recipe(m, a):
                        return 2
                elif m in PEERS and a.rescore:
                    print(f"{m}: {rescore_peer(m, chosen, a, prov)} row(s) re-scored from their outputs", flush=True)
                elif m in PEERS:
                    run_peer(m, chosen, seeds, a, prov)
            except InputError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
    t = gather(a, methods)
    if _image_names(a) is not None and not t.empty:  # the summary and the joined table are over the images asked for
        t = t[t.image.isin(_image_names(a))].reset_index(drop=True)
    if t.empty:
        print("error: no finished rows for these methods", file=sys.stderr)
        return 2
    s, floor = summary(t, methods)
    write_table(t, a.out, prov)
    lines = ["# The published method, its ablations and peers on Levin", "", *[f"- {k}: {v}" for k, v in prov.items()],
             f"- width {a.width}, {'the published 5000 iterations' if not a.steps else f'{a.steps} iterations'}; seeds run by this "
             f"command: {a.seeds}; a method's mean takes every seed it has finished (column `seeds`)", "",
             "Each method's mean over the images it has finished (seed means first), and against full on the images both have "
             "finished (`full_same_images`, `full_minus`); PSNR at ±10 px as the paper scores. "
             + (f"Noise floor (`floor`): the mean seed std of full over the images compared ({floor:.2f} dB over all of full's "
                f"images); differences within it are ties." if not math.isnan(floor)
                else "One seed: no noise floor; differences are reported as they are, not as effects.")
             + " `full_above_on`: the images on which full's seed mean is above the method's; `same_seed_minus`: full minus the "
               "method over the runs of the same image and seed (the paired reading). `paper_t5_lai` / `paper_t5_full_minus`: the "
               "paper's Table 5 (its ablations, mean PSNR on Lai et al., another data set: compare the direction); `paper_t11_levin`: "
               "its Table 11 (all 32 Levin images at width 128, ±10 px).", "",
             s.to_markdown(index=False, floatfmt=".2f"), "", "## Per run", "", t[[c for c in COLUMNS if c in t]].to_markdown(index=False, floatfmt=".2f"), ""]
    a.out.with_suffix(".md").write_text("\n".join(lines))
    print(s.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
