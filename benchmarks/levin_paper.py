"""The published method on Levin: one row per (image, width), a PSNR / kernel-NCC curve, resumable across sessions.

Usage (from the repository root)::

    .venv/bin/python benchmarks/levin_paper.py --width 32                 # the one-per-kernel subset
    .venv/bin/python benchmarks/levin_paper.py --width 64 --images all    # all 32 images
    .venv/bin/python benchmarks/levin_paper.py --report-only              # rewrite the tables from finished rows

Each image runs ``recipes/paper.toml`` (5000 iterations unless ``--steps``)
with the true kernel's size as the support (the paper's Levin protocol; no
margin), and is scored by the Levin protocol (15-px crop, best sub-pixel
shift): PSNR / SSIM / error ratio of the INR output ``x``, kernel NCC, and
the PSNR of the ∆-protocol image (hyper-Laplacian deconvolution of ``y``
with the estimated kernel, ``psnr_nonblind``).  The work folder (``--work``,
not committed) keeps, per image and width, a finished row (never redone), a
checkpoint every ``--checkpoint-every`` iterations (a stopped image resumes
from it) and its curve rows (PSNR of ``x`` and kernel NCC every
``--curve-every`` iterations).  After every image the committed tables are
rewritten from all finished rows: ``--out`` (+ ``.md``) and ``--curve``.
``seconds`` adds up the sessions an image ran in; ``peak_mib`` is the peak
resident memory of the process that finished it.  The rows and curves of the
committed tables count as finished too, so a fresh checkout never redoes
them; the default work folder lies outside the repository
(``~/.cache/cbid_meta/levin_paper``, or ``$CBID_RUNS/levin_paper``), so its
checkpoints outlive the working tree where the machine is kept.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, write_table  # noqa: E402

SUBSET = ("im1_kernel1", "im2_kernel2", "im3_kernel3", "im4_kernel4", "im1_kernel5", "im2_kernel6", "im3_kernel7", "im4_kernel8")


def _tag(name: str, width: int, steps: int | None) -> str:
    return f"{name}__w{width}" + (f"__{steps}it" if steps else "")


def run_image(item, a, work: Path, prov: dict) -> dict:
    """Run (or resume) one image; returns its row."""
    from cbid_meta.config import load_recipe
    from cbid_meta.evaluation import deconvolve, error_ratio, kernel_similarity, levin_scores
    from cbid_meta.evaluation.bench import peak_meter
    from cbid_meta.optim import Deblurrer
    from cbid_meta.optim.published import checkpoint_step

    tag = _tag(item.name, a.width, a.steps)
    cfg = load_recipe(a.recipe)
    ks = item.kernel.shape[0]
    cfg.kernel_size = ks + (1 - ks % 2) + a.kernel_margin
    cfg.image.width = a.width
    if a.seed is not None:
        cfg.seed = a.seed
    deb = Deblurrer(cfg, a.device)
    s0 = deb.coarsest_scale(*item.blurry.shape)
    if a.steps:
        cfg = cfg.with_total_steps(a.steps, s0 + 1)
        deb = Deblurrer(cfg, a.device)
    curve_path = work / "curve" / f"{tag}.csv"
    curve_path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = work / "ckpt" / f"{tag}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = checkpoint_step(ckpt)
    curve = pd.read_csv(curve_path) if curve_path.exists() else pd.DataFrame()
    curve = curve[curve["iteration"] <= start] if not curve.empty else curve  # rows past the checkpoint are redone
    rows = curve.to_dict("records")

    def monitor(step, img, ker):
        rows.append({"image": item.name, "width": a.width, "iteration": step, "psnr": levin_scores(img.astype(np.float64), item.sharp)["psnr"],
                     "kernel_ncc": kernel_similarity(ker, item.kernel)["ncc"]})
        pd.DataFrame(rows).to_csv(curve_path, index=False)

    last = [0.0]

    def progress(rec):
        if rec["time"] - last[0] > 60 or rec["step"] + 1 == rec["total_steps"]:
            last[0] = rec["time"]
            done = rec["step"] + 1
            eta = (rec["time"] / max(done - start, 1)) * (rec["total_steps"] - done) if done > start else float("nan")
            print(f"  {item.name} w{a.width}: {done}/{rec['total_steps']} it, {rec['stage']} s{rec['scale']}, fit {rec['fit']:.4f}, "
                  f"{rec['time']:.0f} s, ETA {eta / 60:.1f} min", flush=True)

    with peak_meter() as pm:
        res = deb.run(item.blurry.astype(np.float32), callback=progress, checkpoint=ckpt, checkpoint_every=a.checkpoint_every,
                      monitor=monitor, monitor_every=a.curve_every)
    est = res.image.astype(np.float64)
    sc = levin_scores(est, item.sharp)
    ref = deconvolve(item.blurry, item.kernel)
    nb = res.restored.astype(np.float64)
    steps = res.info["steps"]
    return {
        "image": item.name,
        "width": a.width,
        "iterations": steps,
        "psnr": sc["psnr"],
        "ssim": sc["ssim"],
        "shift_y": sc["shift"][0],  # the protocol's best translation (searched up to ±5 px)
        "shift_x": sc["shift"][1],
        "error_ratio": error_ratio(est, item.sharp, ref),
        "kernel_ncc": kernel_similarity(res.kernel, item.kernel)["ncc"],
        "psnr_nonblind": levin_scores(nb, item.sharp)["psnr"],
        "ssim_nonblind": levin_scores(nb, item.sharp)["ssim"],
        "error_ratio_nonblind": error_ratio(nb, item.sharp, ref),
        "psnr_blurry": levin_scores(item.blurry, item.sharp)["psnr"],
        "psnr_true_kernel": levin_scores(ref, item.sharp)["psnr"],
        "seconds": res.seconds,
        "s_per_iter": res.seconds / max(steps, 1),
        "peak_mib": pm.mib,
        "kernel_size": res.info["kernel_size"],
        "s0": res.info["coarsest_scale"],
        "parameters": res.info["parameters"],
        "seed": cfg.seed,
        "threads": res.info["threads"],
        "device": res.info["device"],
        "resumed_from": res.info["resumed_from"],
        "git_revision": prov["git_revision"],
        "date": prov["date"],
    }


def row_store(a, work: Path):
    """The finished rows of ``work`` (one JSON per image × width [× --steps]); refuses other settings."""
    from cbid_meta.evaluation.rows import RowStore

    return RowStore(work / "rows", key=("image", "width", "steps"), settings={"recipe": a.recipe, "kernel_margin": a.kernel_margin, "seed": a.seed},
                    stem=lambda k: _tag(k[0], int(k[1]), int(k[2]) if k[2] else None))


def seed_from_tables(a, store, work: Path) -> int:
    """Take the committed tables' finished rows and curves into ``work`` (those not there yet)."""
    if not a.out.exists():
        return 0
    done = pd.read_csv(a.out, comment="#")
    notes = done["note"] if "note" in done else pd.Series([None] * len(done))
    done["steps"] = [int(n.split()[-1]) if isinstance(n, str) and n.startswith("--steps") else None for n in notes]
    curve = pd.read_csv(a.curve, comment="#") if a.curve.exists() else pd.DataFrame()
    for row in done.to_dict("records"):
        tag = store.path(store.key_of(row)).stem
        if not curve.empty and not (work / "curve" / f"{tag}.csv").exists() and store.key_of(row) not in store:
            c = curve[(curve["image"] == row["image"]) & (curve["width"] == row["width"])]
            if not c.empty:
                (work / "curve").mkdir(parents=True, exist_ok=True)
                c.to_csv(work / "curve" / f"{tag}.csv", index=False)
    return store.seed(done)


def gather(a, store, work: Path, prov: dict) -> None:
    """Rewrite the committed tables from every finished row and curve in ``work``."""
    df = store.frame()
    if df.empty:
        return
    df = df.sort_values(["width", "image"]).dropna(axis=1, how="all").reset_index(drop=True)
    meta = prov | {"recipe": a.recipe, "kernel_margin": a.kernel_margin,
                   "note": "rows may come from several sessions: each row has its own git_revision and date"}
    write_table(df, a.out, meta)
    curves = [pd.read_csv(p) for p in sorted((work / "curve").glob("*.csv"))]
    finished = set(zip(df["image"], df["width"]))
    curves = [c for c in curves if not c.empty and (c["image"].iloc[0], c["width"].iloc[0]) in finished]
    if curves:
        write_table(pd.concat(curves).sort_values(["width", "image", "iteration"]), a.curve, meta)
    lines = ["# Levin, the published method (recipes/paper.toml)", ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    for w, d in df.groupby("width"):
        on_subset = d[d["image"].isin(SUBSET)]
        lines += ["", f"## width {w}: {len(d)} images ({len(on_subset)} of the 8-image subset)", ""]
        cols = ["image", "iterations", "psnr", "ssim", "error_ratio", "kernel_ncc", "psnr_nonblind", "psnr_blurry", "psnr_true_kernel", "seconds", "s_per_iter", "peak_mib"]
        lines.append(d[cols].to_markdown(index=False, floatfmt=".3f"))
        mean = d[["psnr", "ssim", "error_ratio", "kernel_ncc", "psnr_nonblind", "psnr_blurry", "psnr_true_kernel"]].mean()
        lines += ["", "Mean: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()) + f"; median seconds {d['seconds'].median():.0f}"]
        if curves:
            lines += ["", plateau_table(pd.concat(curves), w)]
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def plateau_table(curve: pd.DataFrame, width: int, tol: float = 0.01) -> str:
    """Per image: the first curve iteration whose kernel NCC is within ``tol`` of the run's best,
    the best NCC, and the PSNR of x at 2500 iterations and at the end (markdown)."""
    rows = []
    for name, c in curve[curve["width"] == width].groupby("image"):
        c = c.sort_values("iteration")
        best = c["kernel_ncc"].max()
        at = c[c["kernel_ncc"] >= best - tol]["iteration"].iloc[0]
        mid = c[c["iteration"] == 2500]["psnr"]
        rows.append({"image": name, f"NCC within {tol} of its best at": int(at), "best NCC": best,
                     "PSNR x at 2500": mid.iloc[0] if len(mid) else float("nan"), "PSNR x at end": c["psnr"].iloc[-1]})
    t = pd.DataFrame(rows)
    if t.empty:
        return ""
    med = int(t[f"NCC within {tol} of its best at"].median())
    return (f"Kernel plateau (from the curve, every 250 iterations): median iteration {med}; "
            f"mean PSNR of x {t['PSNR x at 2500'].mean():.2f} dB at 2500 iterations, {t['PSNR x at end'].mean():.2f} dB at the end\n\n"
            + t.to_markdown(index=False, floatfmt=".3f"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Levin folder (default: $CBID_LEVIN_DIR or ../shared/data/levin)")
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--width", type=int, default=32, help="U-Net width (128 published, 64, 32)")
    ap.add_argument("--images", default="subset", help="'subset' (one image per kernel), 'all', or comma-separated names")
    ap.add_argument("--steps", type=int, default=None, help="override the recipe's 5000 iterations (kept apart in the tables)")
    ap.add_argument("--seed", type=int, default=None, help="default: the recipe's (2024)")
    ap.add_argument("--kernel-margin", type=int, default=0, help="px added to the true kernel size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--curve-every", type=int, default=250)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("CBID_RUNS", Path.home() / ".cache" / "cbid_meta")) / "levin_paper",
                    help="rows, checkpoints and curves (not committed; default outside the repository)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/levin_paper.csv"))
    ap.add_argument("--curve", type=Path, default=Path("benchmarks/results/levin_paper_curve.csv"))
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    prov = provenance()
    store = row_store(a, a.work)
    seeded = seed_from_tables(a, store, a.work)
    if seeded:
        print(f"{seeded} finished row(s) taken from {a.out}", flush=True)
    if a.report_only:
        gather(a, store, a.work, prov)
        return 0
    from cbid_meta.evaluation import load_levin

    items = load_levin(a.data)
    if a.images == "subset":
        names = list(SUBSET)
    elif a.images == "all":
        names = [d.name for d in items]
    else:
        names = a.images.split(",")
    by_name = {d.name: d for d in items}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        ap.error(f"unknown Levin image(s): {', '.join(unknown)}")
    for i, name in enumerate(names):
        if (name, a.width, a.steps) in store:
            print(f"[{i + 1}/{len(names)}] {name} w{a.width}: done", flush=True)
            continue
        print(f"[{i + 1}/{len(names)}] {name} w{a.width}", flush=True)
        row = run_image(by_name[name], a, a.work, prov)
        row["steps"] = a.steps
        if a.steps:
            row["note"] = f"--steps {a.steps}"
        store.add(row)
        print(f"[{i + 1}/{len(names)}] {name} w{a.width}: PSNR x {row['psnr']:.2f} dB, nonblind {row['psnr_nonblind']:.2f} "
              f"(blurry {row['psnr_blurry']:.2f}, true kernel {row['psnr_true_kernel']:.2f}), kernel NCC {row['kernel_ncc']:.3f}, "
              f"{row['seconds']:.0f} s ({row['s_per_iter']:.3f} s/it), {row['peak_mib']:.0f} MiB", flush=True)
        gather(a, store, a.work, prov)
    gather(a, store, a.work, prov)  # also when every image was finished already
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
