"""``cbid compare``: the from-scratch and meta-initialised modes side by side.

For every image, mode (``scratch``, ``meta``) and step budget, one run of the
progressive schedule shortened to that budget (same seed, kernel support,
device and thread count; a warm-up run first, not timed).  Rows go to
``results.csv`` as they finish (the whole file is rewritten to a temporary
file and renamed, so an interrupted run never leaves a truncated CSV); a
rerun skips the rows already there.  At the end: ``summary.md``, figures and
a self-contained ``report.html``.
"""
from __future__ import annotations

import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .datasets import BenchItem
from .rows import RowStore

__all__ = ["load_items", "run_compare", "write_report"]

KEY = ["image", "mode", "budget"]


def load_items(dataset: str, data=None, limit=None, kernel_size=None) -> list[BenchItem]:
    """Levin / synthetic / folder of triples, or a plain folder of blurry photos (no ground truth)."""
    from .datasets import load_dataset

    p = Path(data) if data is not None else Path(dataset)
    if dataset not in ("levin", "synthetic", "folder") and p.is_dir() and not any(p.glob("*_blurry.*")):
        from ..io import load_image

        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"))
        if not files:
            raise InputError(f"no images in {p}")
        if kernel_size is None:
            raise InputError("a folder of photos without ground truth needs --kernel-size")
        items = [BenchItem(f.stem, load_image(f).astype(np.float64), None, None) for f in files]
        return items[:limit] if limit else items
    return load_dataset(dataset, data, limit)


def _write_rows(rows: list[dict], path: Path, meta: dict) -> None:
    from ..io import write_table

    write_table(pd.DataFrame(rows), path, meta, float_format="%.5f")


def run_compare(items, init, budgets, out: Path, recipe="fast", margin=10, seed=None, device="cpu", kernel_size=None, meta: dict | None = None, progress=None, meta_budgets=None) -> pd.DataFrame:
    """One run per image × mode × budget; ``meta_budgets`` (default: ``budgets``) are the meta mode's own.

    Each finished run is a row in ``OUT/rows/`` (:class:`~cbid_meta.evaluation.rows.RowStore`); a folder
    is resumed, never redoing a finished run, but only with the same recipe, margin, seed and support;
    ``seed`` None: the recipe's.  Every row records its seed."""
    from ..config import resolve_seed
    from ..io import read_table_header, save_image
    from .budgets import run_budget

    seed = resolve_seed(recipe, seed)

    out = Path(out)
    (out / "outputs").mkdir(parents=True, exist_ok=True)
    csv = out / "results.csv"
    if csv.exists() and (old := read_table_header(csv).get("recipe", "fast")) != recipe:
        raise InputError(f"{csv} was made with recipe '{old}', not '{recipe}'; use another --output folder")
    store = RowStore(out / "rows", key=("image", "mode", "budget"),
                     settings={"recipe": recipe, "margin": margin, "seed": seed, "kernel_size": kernel_size})
    if csv.exists() and not len(store):  # a folder whose rows are gone (or older than them): its table has them
        store.seed(pd.read_csv(csv, comment="#"))
    plan = {"scratch": sorted(budgets), "meta": sorted(meta_budgets or budgets)}
    todo = [(it, m, b) for it in items for m in ("scratch", "meta") for b in plan[m] if (it.name, m, int(b)) not in store]
    if todo:
        run_budget(items[0], "meta", 6, init, recipe, margin, seed, device, kernel_size)  # warm-up, not recorded
    top = {m: max(b) for m, b in plan.items()}
    for n, (it, mode, b) in enumerate(todo):
        if progress:
            progress(n, len(todo), f"{it.name} {mode}@{b}")
        ckpt = out / "checkpoints" / f"{it.name}__{mode}__{int(b)}.pt"
        ckpt.parent.mkdir(exist_ok=True)
        r = run_budget(it, mode, b, init, recipe, margin, seed, device, kernel_size, checkpoint=ckpt)
        if b == top[mode]:
            save_image(out / "outputs" / f"{it.name}__{mode}.png", np.clip(r["_image"], 0, 1))
            np.save(out / "outputs" / f"{it.name}__{mode}_kernel.npy", r["_kernel"])
        store.add({k: v for k, v in r.items() if not k.startswith("_")})
        ckpt.unlink(missing_ok=True)  # the row is written: the run is finished
        _table(store, items, csv, meta)  # the table so far, after every run
    if progress:
        progress(len(todo), len(todo), "done")
    return _table(store, items, csv, meta)


def _table(store: RowStore, items, csv: Path, meta: dict | None) -> pd.DataFrame:
    """``results.csv`` from the finished rows of ``items``: by image, scratch before meta, by budget."""
    df = store.frame()
    order = {it.name: i for i, it in enumerate(items)}
    df = df[df["image"].isin(order)].copy()
    df["_o"] = df["image"].map(order)
    df = df.sort_values(["_o", "mode", "budget"], ascending=[True, False, True]).drop(columns="_o").reset_index(drop=True)
    _write_rows(df.to_dict("records"), csv, meta or {})
    return df


# -- report -----------------------------------------------------------------
def references(items) -> pd.DataFrame:
    """Per image with ground truth: PSNR / SSIM of the blurry input and of hyper-Laplacian
    deconvolution with the true kernel (what a perfect kernel estimate would give)."""
    from .metrics import levin_scores
    from ..pipeline.nonblind import deconvolve

    rows = []
    for it in items:
        if it.sharp is None:
            continue
        b = levin_scores(np.asarray(it.blurry, dtype=np.float64), it.sharp)
        row = {"image": it.name, "blurry_psnr": b["psnr"], "blurry_psnr_shift5": b["psnr_shift5"], "blurry_ssim": b["ssim"]}
        if it.kernel is not None:
            t = levin_scores(deconvolve(np.asarray(it.blurry, dtype=np.float64), it.kernel), it.sharp)
            row.update(true_kernel_psnr=t["psnr"], true_kernel_psnr_shift5=t["psnr_shift5"], true_kernel_ssim=t["ssim"])
        rows.append(row)
    return pd.DataFrame(rows)


#: number format per column of the report tables
FORMATS = {"images": "{:.0f}", "budget": "{:.0f}", "steps": "{:.0f}", "scratch_steps": "{:.0f}", "meta_steps": "{:.0f}",
           "mean_fit_loss": "{:.2e}", "target_psnr": "{:.2f}", "meta_psnr": "{:.2f}", "reached_fraction": "{:.2f}"}


def _fmt(col: str, v) -> str:
    if isinstance(v, str) or v is None:
        return "" if v is None else v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if pd.isna(v):
        return "–"
    if col in FORMATS:
        return FORMATS[col].format(v)
    if "psnr" in col:
        return f"{v:.2f}"
    if "ssim" in col or "ncc" in col:
        return f"{v:.3f}"
    if "seconds" in col or "speedup" in col:
        return f"{v:.1f}"
    return f"{v:.3g}"


def formatted(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every number formatted for its column (PSNR .2f, SSIM .3f, losses .2e, …)."""
    return pd.DataFrame({c: [_fmt(c, v) for v in df[c]] for c in df.columns})


def _tables(df: pd.DataFrame, refs: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    from .budgets import speedups

    agg = df.groupby(["mode", "budget"], sort=False).agg(
        images=("image", "count"),
        mean_psnr=("psnr", "mean"),
        **({"mean_psnr_shift5": ("psnr_shift5", "mean")} if "psnr_shift5" in df else {}),
        median_psnr=("psnr", "median"),
        std_psnr=("psnr", "std"),
        mean_ssim=("ssim", "mean"),
        mean_fit_loss=("fit_loss", "mean"),
        median_seconds=("seconds", "median"),
    ).reset_index()
    if refs is not None and len(refs):  # reference rows: the input, and the true kernel
        ref_rows = [{"mode": "blurry input", "budget": np.nan, "images": len(refs), "mean_psnr": refs.blurry_psnr.mean(), "median_psnr": refs.blurry_psnr.median(),
                     "std_psnr": refs.blurry_psnr.std(), "mean_ssim": refs.blurry_ssim.mean()}]
        if "true_kernel_psnr" in refs:
            ref_rows.append({"mode": "true kernel (non-blind)", "budget": np.nan, "images": int(refs.true_kernel_psnr.notna().sum()), "mean_psnr": refs.true_kernel_psnr.mean(),
                             "median_psnr": refs.true_kernel_psnr.median(), "std_psnr": refs.true_kernel_psnr.std(), "mean_ssim": refs.true_kernel_ssim.mean()})
        if "mean_psnr_shift5" in agg:
            for r, col in zip(ref_rows, ("blurry_psnr_shift5", "true_kernel_psnr_shift5")):
                r["mean_psnr_shift5"] = refs[col].mean() if col in refs else np.nan
        agg = pd.concat([agg, pd.DataFrame(ref_rows)], ignore_index=True)
    out = {"per_budget": agg}
    if df["psnr"].notna().any():
        sp = speedups(df)
        out["speedup"] = pd.DataFrame(
            {
                "images": [len(sp)],
                "reached_fraction": [sp["reached"].mean()],
                "median_speedup_steps": [sp["speedup_steps"].median()],
                "median_speedup_seconds": [sp["speedup_seconds"].median()],
                "median_meta_steps_to_target": [sp["meta_steps"].median()],
            }
        )
        out["per_image_speedup"] = sp
    return out


def _fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _curves(df: pd.DataFrame, x: str, y: str, ylabel: str, title: str, refs: dict | None = None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {"scratch": "tab:blue", "meta": "tab:orange"}
    for mode, d in df.groupby("mode"):
        for _, g in d.groupby("image"):
            g = g.sort_values("budget")
            ax.plot(g[x], g[y], color=colors.get(mode, "gray"), alpha=0.15, lw=0.8)
        m = d.groupby("budget").agg(xm=(x, "mean"), ym=(y, "mean"), ys=(y, "std")).reset_index()
        ax.plot(m["xm"], m["ym"], "-o", color=colors.get(mode, "gray"), lw=2, label=f"{mode} (mean ± std)")
        ax.fill_between(m["xm"], m["ym"] - m["ys"].fillna(0), m["ym"] + m["ys"].fillna(0), color=colors.get(mode, "gray"), alpha=0.15)
    for (label, value), style in zip((refs or {}).items(), (":", "--")):
        ax.axhline(value, color="black", ls=style, lw=1.2, label=f"{label} ({value:.2f})")
    ax.set_xscale("log")
    ax.set_xlabel("optimisation steps" if x == "steps" else "wall time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    png = _fig_png(fig)
    plt.close(fig)
    return png


def _kernel_grid(items, out: Path, n: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = items[:n]
    cols = ["scratch", "meta"] + (["truth"] if any(i.kernel is not None for i in items) else [])
    fig, axes = plt.subplots(len(items), len(cols), figsize=(1.6 * len(cols), 1.6 * len(items)), squeeze=False)
    for r, it in enumerate(items):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            ax.axis("off")
            k = it.kernel if col == "truth" else (np.load(out / "outputs" / f"{it.name}__{col}_kernel.npy") if (out / "outputs" / f"{it.name}__{col}_kernel.npy").exists() else None)
            if k is not None:
                ax.imshow(k, cmap="gray", interpolation="nearest")
            if r == 0:
                ax.set_title(col, fontsize=9)
        axes[r, 0].text(-0.1, 0.5, it.name, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=7)
    png = _fig_png(fig)
    plt.close(fig)
    return png


def _panels(items, out: Path, n: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    items = items[:n]
    cols = ["blurry", "scratch", "meta"] + (["truth"] if any(i.sharp is not None for i in items) else [])
    fig, axes = plt.subplots(len(items), len(cols), figsize=(2.6 * len(cols), 2.6 * len(items)), squeeze=False)
    for r, it in enumerate(items):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            ax.axis("off")
            if col == "blurry":
                im = it.blurry
            elif col == "truth":
                im = it.sharp
            else:
                p = out / "outputs" / f"{it.name}__{col}.png"
                im = np.asarray(Image.open(p), dtype=np.float64) / 255.0 if p.exists() else None
            if im is not None:
                ax.imshow(im, cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(col, fontsize=10)
        axes[r, 0].text(-0.03, 0.5, it.name, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8, rotation=90)
    png = _fig_png(fig)
    plt.close(fig)
    return png


def write_report(df: pd.DataFrame, items, out: Path, meta: dict, n_visual: int = 6) -> dict[str, Path]:
    """summary.md, figures (PNG, one copy: the HTML links them) and report.html."""
    out = Path(out)
    refs = references(items)
    refs = refs[refs["image"].isin(set(df["image"]))] if len(refs) else refs
    tables = _tables(df, refs)
    has_gt = df["psnr"].notna().any()
    lines = {}
    if len(refs):
        lines["blurry input"] = refs.blurry_psnr.mean()
        if "true_kernel_psnr" in refs:
            lines["true kernel"] = refs.true_kernel_psnr.mean()
    top = {m: int(d["budget"].max()) for m, d in df.groupby("mode")}
    shown = ", ".join(f"{m} at {b} steps" for m, b in top.items())
    figs: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    if has_gt:
        figs["psnr_vs_steps.png"] = _curves(df, "steps", "psnr", "PSNR (dB, Levin protocol)", "PSNR vs steps", lines)
        captions["psnr_vs_steps.png"] = "PSNR against the step budget: thin lines one image, thick the mean ± std per mode; dotted: the blurry input, dashed: non-blind deconvolution with the true kernel (means)."
        figs["psnr_vs_seconds.png"] = _curves(df, "seconds", "psnr", "PSNR (dB, Levin protocol)", "PSNR vs wall time", lines)
        captions["psnr_vs_seconds.png"] = "The same runs against wall time (seconds per run on this machine); reference lines as above."
    figs["fit_loss_vs_steps.png"] = _curves(df, "steps", "fit_loss", "final L_fit (self-supervised)", "Self-supervised loss vs steps")
    captions["fit_loss_vs_steps.png"] = "The self-supervised fitting loss at the end of each run (no ground truth needed): thin lines one image, thick the mean per mode."
    figs["kernels.png"] = _kernel_grid(items, out, n_visual)
    captions["kernels.png"] = f"Estimated kernels of the first {min(n_visual, len(items))} images ({shown}), each scaled to its maximum" + (", and the true kernel." if any(i.kernel is not None for i in items) else ".")
    figs["panels.png"] = _panels(items, out, n_visual)
    captions["panels.png"] = f"Blurry input, the two modes' outputs ({shown})" + (" and the sharp image." if any(i.sharp is not None for i in items) else ".")
    paths = {}
    for name, png in figs.items():
        p = out / name
        p.with_name(name + ".tmp").write_bytes(png)
        p.with_name(name + ".tmp").replace(p)
        paths[name] = p
    prov = "\n".join(f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items())
    md = ["# Scratch vs meta-initialised: comparison report", "", prov, ""]
    md += ["## Mean / median per mode and budget", "", "Reference rows: the blurry input, and non-blind deconvolution with the true kernel.", "",
           formatted(tables["per_budget"]).to_markdown(index=False, disable_numparse=True), ""]
    if "speedup" in tables:
        md += ["## Steps to reach the scratch run's final PSNR", "",
               "Target: the PSNR of the scratch run at the largest budget; a meta run 'reaches' it at the smallest budget whose PSNR is at least as high. "
               "Speed-up = scratch steps (seconds) / meta steps (seconds) at that budget; 0 when never reached (counted pessimistically in the median).", "",
               formatted(tables["speedup"]).to_markdown(index=False, disable_numparse=True), "", "### Per image", "",
               formatted(tables["per_image_speedup"]).to_markdown(index=False, disable_numparse=True), ""]
    md += ["## Figures", ""] + [f"![{captions[n]}]({n})\n\n*{captions[n]}*\n" for n in figs]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    paths["summary.md"] = out / "summary.md"

    def img(name):
        return f'<figure><img alt="{html.escape(captions[name])}" src="{name}"><figcaption>{html.escape(captions[name])}</figcaption></figure>'

    body = ["<h1>Scratch vs meta-initialised deblurring</h1>", "<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in meta.items()) + "</ul>"]
    body += ["<h2>Mean / median per mode and budget</h2>", "<p>Reference rows: the blurry input, and non-blind deconvolution with the true kernel.</p>",
             formatted(tables["per_budget"]).to_html(index=False)]
    if "speedup" in tables:
        body += ["<h2>Steps to reach the scratch run's final PSNR</h2>", formatted(tables["speedup"]).to_html(index=False)]
    body += ["<h2>Figures</h2>"] + [img(n) for n in figs]
    if "per_image_speedup" in tables:
        body += ["<h2>Per image</h2>", formatted(tables["per_image_speedup"]).to_html(index=False)]
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}figure{margin:1em 0}"
    page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cbid compare report</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
    (out / "report.html.tmp").write_text(page)
    (out / "report.html.tmp").replace(out / "report.html")
    paths["report.html"] = out / "report.html"
    return paths
