"""``cbid bench``: methods × images, resumable, sharded across processes with accelerate.

Each (method, image) pair is one unit of work.  Process ``i`` of ``n``
(``accelerate.PartialState``; 1 process when not launched) takes the pairs
``i, i+n, i+2n, …`` of the sorted list, and writes one JSON row per pair to
``OUT/rows/`` atomically; a pair whose row exists is skipped, so an
interrupted run resumes where it stopped.  After a barrier the main process
gathers every row into ``results.csv`` and ``summary.md``.  The metrics of a
pair do not depend on which process ran it (every pair is seeded and uses the
same thread count), so 1 and 2 processes give the same table up to the
timing and memory columns.

Methods
-------
``full``, ``no_cross``, ``single_scale``, ``no_progressive``
    the INR method (``--recipe``, fast by default) and the paper's three
    ablations, same seed and step budget;
``l0_map``
    classical blind baseline (L0-gradient alternating MAP,
    :mod:`cbid_meta.pipeline.l0_map`);
``selfdeblur``
    the SelfDeblur peer (:mod:`cbid_meta.baselines.selfdeblur`; 5000 iterations,
    or ``--steps``; the INR methods' support; not in the default suite: hours per
    image on a CPU);
``blurry``
    the input itself (lower bound);
``true_kernel``
    hyper-Laplacian non-blind deconvolution with the true kernel (upper
    bound, and the reference of the error ratio).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from .datasets import BenchItem
from .rows import RowStore

__all__ = ["METHODS", "DEFAULT_METHODS", "run_bench", "summarize", "peak_meter"]

#: Order of the summary table.
DEFAULT_METHODS = ("full", "no_refine", "no_cross", "single_scale", "no_progressive", "l0_map", "l0_map_margin", "blurry", "true_kernel")
INR_SWITCHES = {  # recipe section -> overrides
    "full": {},
    "no_refine": {"estimation": {"estimators": ["inr"]}},
    "no_cross": {"schedule": {"use_cross": False}},
    "single_scale": {"schedule": {"multiscale": False}},
    "no_progressive": {"schedule": {"progressive": False}},
}
METHODS = DEFAULT_METHODS + ("selfdeblur",)


def output_paths(out: Path, image: str, method: str) -> dict[str, Path]:
    """Where a run's outputs are kept: ``OUT/outputs/<image>__<method>_{x,kernel}.npy``."""
    return {k: Path(out) / "outputs" / f"{image}__{method}_{k}.npy" for k in ("x", "kernel")}


def save_outputs(out: Path, image: str, method: str, x: np.ndarray, kernel: np.ndarray | None) -> None:
    """Keep a run's image (float32) and kernel (float64), each written atomically, so a table can be
    re-scored without re-running (:func:`score` on the loaded arrays gives the row's numbers)."""
    from ..io import save_npy

    paths = output_paths(out, image, method)
    save_npy(paths["x"], np.asarray(x, dtype=np.float32))
    if kernel is not None:
        save_npy(paths["kernel"], np.asarray(kernel, dtype=np.float64))


class peak_meter:
    """Peak resident memory (MiB) of this process inside a ``with`` block.

    Linux: resets the high-water mark through ``/proc/self/clear_refs`` and
    reads ``VmHWM``; elsewhere falls back to the lifetime peak (ru_maxrss)."""

    def __enter__(self):
        self.exact = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.exact = True
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        self.mib = _hwm_mib()
        return False


def _hwm_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class BenchSettings:
    recipe: str = "fast"
    steps: int | None = None
    seed: int | None = None  # None: the recipe's ``seed`` (cbid_meta.config.resolve_seed)
    kernel_margin: int = 10  # px added to the true support for the INR methods
    kernel_size: int | str | None = None  # explicit support for every method (overrides margin), or "auto"
    device: str = "cpu"
    checkpoint_every: int = 250  # published recipe: iterations between checkpoints of a running image


def auto_support(item: BenchItem) -> int:
    """The kernel size ``cbid deblur -k auto`` would pick for this image."""
    from ..optim.photo import auto_kernel_size, luminance

    return auto_kernel_size(luminance(item.blurry))


def _support(item: BenchItem, st: BenchSettings, margin: int) -> int:
    if st.kernel_size == "auto":
        return auto_support(item)
    if st.kernel_size:
        return st.kernel_size
    if item.kernel is None:
        raise InputError(f"{item.name}: no true kernel to size the support; give --kernel-size")
    n = max(item.kernel.shape)
    n += 1 - n % 2
    return n + margin


def run_method(method: str, item: BenchItem, st: BenchSettings, checkpoint: Path | None = None,
               on_step: Callable[[dict], None] | None = None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Run one method on one image: ``(estimate, kernel or None, extra info)``.

    With a recipe on the published decimation pyramid, an INR method saves its
    state to ``checkpoint`` every ``st.checkpoint_every`` iterations and resumes
    from it; ``on_step`` sees every iteration's record."""
    if method == "blurry":
        return item.blurry, None, {}
    if method == "true_kernel":
        if item.kernel is None:
            raise InputError(f"{item.name}: 'true_kernel' needs the true kernel")
        from ..pipeline.nonblind import deconvolve

        return deconvolve(item.blurry, item.kernel), item.kernel, {}
    if method in ("l0_map", "l0_map_margin"):
        from ..pipeline.l0_map import l0_deblur

        margin = st.kernel_margin if method == "l0_map_margin" else 0
        x, k = l0_deblur(item.blurry, kernel_size=_support(item, st, margin))
        return x, k, {"kernel_size": k.shape[0]}
    if method == "selfdeblur":
        from ..baselines import SelfDeblurSettings, selfdeblur

        if item.blurry.ndim != 2:
            raise InputError(f"{item.name}: 'selfdeblur' takes gray images")
        sd = SelfDeblurSettings(seed=st.seed or 0, **({"steps": st.steps} if st.steps else {}))
        x, k, info = selfdeblur(item.blurry, _support(item, st, st.kernel_margin), sd, device=st.device, callback=on_step)
        return x, k, {"kernel_size": k.shape[0], "steps": info["steps"]}
    if method in INR_SWITCHES:
        from dataclasses import replace

        from ..config import load_recipe
        from ..optim import Deblurrer

        cfg = load_recipe(st.recipe)
        cfg.kernel_size = _support(item, st, st.kernel_margin)
        if st.seed is not None:  # else the recipe's
            cfg.seed = st.seed
        if st.steps:
            from ..optim import stage2_blocks

            cfg = cfg.with_total_steps(st.steps, stage2_blocks(cfg, Deblurrer(cfg, st.device).coarsest_scale(*item.blurry.shape[:2])))
        for section, over in INR_SWITCHES[method].items():
            setattr(cfg, section, replace(getattr(cfg, section), **over))
        kw = {"checkpoint": checkpoint, "checkpoint_every": st.checkpoint_every} if cfg.schedule.pyramid == "decimate" and checkpoint else {}
        res = Deblurrer(cfg, st.device).run(item.blurry.astype(np.float32), callback=on_step, **kw)
        return res.image.astype(np.float64), res.kernel, {"kernel_size": res.kernel.shape[0], "steps": res.info["steps"]}
    raise InputError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")


def score(item: BenchItem, estimate: np.ndarray, kernel: np.ndarray | None, reference: np.ndarray | None) -> dict:
    """Levin-protocol metrics of one estimate (NaN where no ground truth exists): ``psnr`` (±10 px),
    ``psnr_shift5`` (±5 px), SSIM and error ratio (±10 px; :func:`~cbid_meta.evaluation.metrics.levin_row_scores`)."""
    from .metrics import kernel_similarity, levin_row_scores

    out = {"psnr": math.nan, "psnr_shift5": math.nan, "ssim": math.nan, "error_ratio": math.nan, "kernel_ncc": math.nan}
    if item.sharp is not None:
        s = levin_row_scores(estimate, item.sharp, reference)
        out.update({k: s[k] for k in ("psnr", "psnr_shift5", "ssim", "error_ratio")})
    if kernel is not None and item.kernel is not None:
        out["kernel_ncc"] = kernel_similarity(kernel, item.kernel)["ncc"]
    return out


def _panel(item: BenchItem, estimate: np.ndarray, kernel: np.ndarray | None, path: Path) -> None:
    """blurry | estimate | truth, then the kernel estimate and the true kernel (scaled to max)."""
    from ..io import save_image
    from .panels import panel

    imgs = [item.blurry, estimate] + ([item.sharp] if item.sharp is not None else [])
    save_image(path, panel(imgs, [kernel, item.kernel], gap=4, max_width=None))


def _pairs(methods, items) -> list[tuple[str, BenchItem]]:
    return [(m, it) for m in methods for it in items]


def run_bench(
    items: list[BenchItem],
    methods: tuple[str, ...],
    out: str | os.PathLike,
    settings: BenchSettings | None = None,
    panels: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    meta: dict | None = None,
    on_step: Callable[[dict], None] | None = None,
):
    """Run (or resume) the benchmark; returns the gathered table (main process) or None.

    A finished (method, image) pair is never redone; a long INR run of the
    published recipe resumes from its checkpoint in ``OUT/checkpoints/``.
    ``on_step`` sees every optimisation step of the INR methods (progress bars)."""
    import pandas as pd
    from accelerate import PartialState

    from dataclasses import replace

    from ..config import resolve_seed

    st = settings or BenchSettings()
    st = replace(st, seed=resolve_seed(st.recipe, st.seed))  # every row records the seed it ran with
    out = Path(out)
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown method '{m}' (choose from {', '.join(METHODS)})")
    if not items:
        raise InputError("the dataset is empty")
    state = PartialState(cpu=st.device == "cpu")
    store = RowStore(out / "rows", key=("method", "image"),
                     settings={"recipe": st.recipe, "steps": st.steps, "seed": st.seed, "kernel_margin": st.kernel_margin, "kernel_size": st.kernel_size})
    (out / "checkpoints").mkdir(exist_ok=True)
    if panels:
        (out / "panels").mkdir(exist_ok=True)
    pairs = _pairs(methods, items)
    mine = pairs[state.process_index :: state.num_processes]
    todo = [(m, it) for m, it in mine if (m, it.name) not in store]
    refs: dict[str, np.ndarray] = {}
    from ..io import write_table
    from ..pipeline.nonblind import deconvolve

    done = len(mine) - len(todo)
    for m, it in todo:
        if progress:
            progress(done, len(mine), f"{m} · {it.name}")
        if it.name not in refs and it.kernel is not None and it.sharp is not None:
            refs[it.name] = deconvolve(it.blurry, it.kernel)
        with peak_meter() as pm:
            t = time.perf_counter()
            ckpt = out / "checkpoints" / f"{m}__{it.name}.pt"
            est, k, extra = run_method(m, it, st, checkpoint=ckpt, on_step=on_step)
            sec = time.perf_counter() - t
        row = {"method": m, "image": it.name, **score(it, est, k, refs.get(it.name)), "seconds": sec, "peak_mib": pm.mib}
        row.update({"kernel_size": extra.get("kernel_size", ""), "steps": extra.get("steps", ""), "seed": st.seed, "git_revision": (meta or {}).get("git_revision", "")})
        save_outputs(out, it.name, m, est, k)  # before the row: a finished row always has its outputs
        if panels:
            _panel(it, est, k, out / "panels" / f"{it.name}__{m}.png")
        store.add(row)
        ckpt.unlink(missing_ok=True)  # the row is written: the pair is finished
        done += 1
    if progress:
        progress(done, len(mine), "done")
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    wanted = {(m, it.name) for m, it in pairs}
    df = pd.DataFrame([r for r in store.rows() if store.key_of(r) in wanted])
    order = {m: i for i, m in enumerate(methods)}
    df = df.sort_values(["method", "image"], key=lambda c: c.map(order) if c.name == "method" else c).reset_index(drop=True)
    write_table(df, out / "results.csv", meta or {})
    (out / "summary.md").write_text(summarize(df, meta or {}, methods))
    return df


def summarize(df, meta: dict, methods=DEFAULT_METHODS) -> str:
    """Markdown: provenance, then mean metrics per method (the poster's table layout)."""
    g = df.groupby("method", sort=False)
    table = g.agg(
        images=("image", "count"),
        psnr=("psnr", "mean"),
        **({"psnr_shift5": ("psnr_shift5", "mean")} if "psnr_shift5" in df else {}),
        ssim=("ssim", "mean"),
        error_ratio=("error_ratio", "mean"),
        kernel_ncc=("kernel_ncc", "mean"),
        median_seconds=("seconds", "median"),
        peak_mib=("peak_mib", "max"),
    )
    table = table.reindex([m for m in methods if m in table.index])
    lines = [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    return "# Benchmark summary (means per method)\n\n" + "\n".join(lines) + "\n\n" + table.to_markdown(floatfmt=".3f") + "\n"
