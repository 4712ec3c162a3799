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

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .datasets import BenchItem

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


def run_compare(items, init, budgets, out: Path, recipe="fast", margin=10, seed=0, device="cpu", kernel_size=None, meta: dict | None = None, progress=None, meta_budgets=None) -> pd.DataFrame:
    """One run per image × mode × budget; ``meta_budgets`` (default: ``budgets``) are the meta mode's own.

    A folder that already holds ``results.csv`` is resumed, but only with the same recipe."""
    from ..io import read_table_header, save_image
    from ..meta.evaluate import run_budget

    out = Path(out)
    (out / "outputs").mkdir(parents=True, exist_ok=True)
    csv = out / "results.csv"
    if csv.exists():
        old = read_table_header(csv).get("recipe", "fast")
        if old != recipe:
            raise InputError(f"{csv} was made with recipe '{old}', not '{recipe}'; use another --output folder")
    rows = pd.read_csv(csv, comment="#").to_dict("records") if csv.exists() else []
    done = {(r["image"], r["mode"], int(r["budget"])) for r in rows}
    plan = {"scratch": sorted(budgets), "meta": sorted(meta_budgets or budgets)}
    todo = [(it, m, b) for it in items for m in ("scratch", "meta") for b in plan[m] if (it.name, m, b) not in done]
    if todo:
        run_budget(items[0], "meta", 6, init, recipe, margin, seed, device, kernel_size)  # warm-up, not recorded
    top = {m: max(b) for m, b in plan.items()}
    for n, (it, mode, b) in enumerate(todo):
        if progress:
            progress(n, len(todo), f"{it.name} {mode}@{b}")
        r = run_budget(it, mode, b, init, recipe, margin, seed, device, kernel_size)
        if b == top[mode]:
            save_image(out / "outputs" / f"{it.name}__{mode}.png", np.clip(r["_image"], 0, 1))
            np.save(out / "outputs" / f"{it.name}__{mode}_kernel.npy", r["_kernel"])
        rows.append({k: v for k, v in r.items() if not k.startswith("_")})
        _write_rows(rows, csv, meta or {})
    if progress:
        progress(len(todo), len(todo), "done")
    df = pd.DataFrame(rows)
    order = {it.name: i for i, it in enumerate(items)}
    df = df[df["image"].isin(order)].copy()
    df["_o"] = df["image"].map(order)
    df = df.sort_values(["_o", "mode", "budget"], ascending=[True, False, True]).drop(columns="_o").reset_index(drop=True)
    _write_rows(df.to_dict("records"), csv, meta or {})
    return df


# -- report -----------------------------------------------------------------
def _tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from ..meta.evaluate import speedups

    agg = df.groupby(["mode", "budget"], sort=False).agg(
        images=("image", "count"),
        mean_psnr=("psnr", "mean"),
        median_psnr=("psnr", "median"),
        std_psnr=("psnr", "std"),
        mean_ssim=("ssim", "mean"),
        mean_fit_loss=("fit_loss", "mean"),
        median_seconds=("seconds", "median"),
    ).reset_index()
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


def _curves(df: pd.DataFrame, x: str, y: str, ylabel: str, title: str) -> bytes:
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
    """summary.md, figures (PNG) and report.html (figures embedded as data URIs)."""
    out = Path(out)
    tables = _tables(df)
    has_gt = df["psnr"].notna().any()
    figs: dict[str, bytes] = {}
    if has_gt:
        figs["psnr_vs_steps.png"] = _curves(df, "steps", "psnr", "PSNR (dB, Levin protocol)", "PSNR vs steps")
        figs["psnr_vs_seconds.png"] = _curves(df, "seconds", "psnr", "PSNR (dB, Levin protocol)", "PSNR vs wall time")
    figs["fit_loss_vs_steps.png"] = _curves(df, "steps", "fit_loss", "final L_fit (self-supervised)", "Self-supervised loss vs steps")
    figs["kernels.png"] = _kernel_grid(items, out, n_visual)
    figs["panels.png"] = _panels(items, out, n_visual)
    paths = {}
    for name, png in figs.items():
        p = out / name
        p.with_name(name + ".tmp").write_bytes(png)
        p.with_name(name + ".tmp").replace(p)
        paths[name] = p
    prov = "\n".join(f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items())
    md = ["# Scratch vs meta-initialised: comparison report", "", prov, ""]
    md += ["## Mean / median per mode and budget", "", tables["per_budget"].to_markdown(index=False, floatfmt=".3f"), ""]
    if "speedup" in tables:
        md += ["## Steps to reach the scratch run's final PSNR", "",
               "Target: the PSNR of the scratch run at the largest budget; a meta run 'reaches' it at the smallest budget whose PSNR is at least as high. "
               "Speed-up = scratch steps (seconds) / meta steps (seconds) at that budget; 0 when never reached (counted pessimistically in the median).", "",
               tables["speedup"].to_markdown(index=False, floatfmt=".3f"), "", "### Per image", "",
               tables["per_image_speedup"].to_markdown(index=False, floatfmt=".3f"), ""]
    md += ["## Figures", ""] + [f"![{n}]({n})" for n in figs]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    paths["summary.md"] = out / "summary.md"

    def img(name):
        return f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(figs[name]).decode()}"><figcaption>{name}</figcaption></figure>'

    body = ["<h1>Scratch vs meta-initialised deblurring</h1>", "<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in meta.items()) + "</ul>"]
    body += ["<h2>Mean / median per mode and budget</h2>", tables["per_budget"].to_html(index=False, float_format=lambda v: f"{v:.3f}")]
    if "speedup" in tables:
        body += ["<h2>Steps to reach the scratch run's final PSNR</h2>", tables["speedup"].to_html(index=False, float_format=lambda v: f"{v:.3f}")]
    body += ["<h2>Figures</h2>"] + [img(n) for n in figs]
    if "per_image_speedup" in tables:
        body += ["<h2>Per image</h2>", tables["per_image_speedup"].to_html(index=False, float_format=lambda v: f"{v:.3f}")]
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}figure{margin:1em 0}"
    page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cbid compare report</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
    (out / "report.html.tmp").write_text(page)
    (out / "report.html.tmp").replace(out / "report.html")
    paths["report.html"] = out / "report.html"
    return paths
