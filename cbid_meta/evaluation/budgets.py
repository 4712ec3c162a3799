"""Scratch vs meta-initialised runs at one step budget, and speed-ups (used by ``cbid compare`` and ``benchmarks/meta_levin.py``).

Every (image, mode, budget) is an independent run of the progressive schedule
shortened to ``budget`` steps (``DeblurConfig.with_total_steps``), same seed,
same kernel support, same thread count; a tiny warm-up run is made first and
not timed.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ..config import load_recipe
from .datasets import BenchItem
from .metrics import kernel_similarity, levin_scores
from ..optim import Deblurrer, stage2_blocks
from ..meta.init import MetaInit

__all__ = ["run_budget", "speedups"]


def run_budget(item: BenchItem, mode: str, budget: int, init: MetaInit | None, recipe: str = "fast", margin: int = 10, seed: int | None = None, device: str = "cpu",
               kernel_size: int | str | None = None, checkpoint=None) -> dict:
    """One run of ``item`` in ``mode`` at ``budget`` steps; ``seed`` None: the recipe's. The row records the seed.

    ``checkpoint`` (a path): a run of the published method saves its state there every 250 steps and a
    stopped run resumes from it (``seconds`` then adds up the sessions); other recipes ignore it."""
    cfg = load_recipe(recipe)
    if kernel_size == "auto":
        from .bench import auto_support

        kernel_size = auto_support(item)
    if kernel_size is None:
        if item.kernel is None:
            from ..errors import InputError

            raise InputError(f"{item.name}: no true kernel to size the support; give --kernel-size")
        n = max(item.kernel.shape)
        kernel_size = n + 1 - n % 2 + margin
    cfg.kernel_size = kernel_size
    if seed is not None:
        cfg.seed = int(seed)
    h, w = item.blurry.shape[:2]
    s0 = Deblurrer(cfg, device).coarsest_scale(h, w)
    cfg = cfg.with_total_steps(budget, stage2_blocks(cfg, s0))
    kw = {"checkpoint": checkpoint} if checkpoint is not None and cfg.schedule.pyramid == "decimate" else {}
    t = time.perf_counter()
    res = Deblurrer(cfg, device).run(item.blurry.astype(np.float32), init=init if mode == "meta" else None, **kw)
    sec = time.perf_counter() - t
    resumed = int(res.info.get("resumed_from", 0) or 0)
    if resumed:  # the loop's own clock counts the earlier sessions (the ∆ image's few seconds are left out)
        sec = res.seconds
    row = {"image": item.name, "mode": mode, "budget": budget, "seed": int(cfg.seed), "steps": res.info["steps"], "seconds": sec, "resumed_from": resumed,
           "fit_loss": res.history[-1]["fit"] if res.history else math.nan}
    if item.sharp is not None:
        s = levin_scores(res.image.astype(np.float64), item.sharp)
        row.update(psnr=s["psnr"], psnr_shift5=s["psnr_shift5"], ssim=s["ssim"])
    else:
        row.update(psnr=math.nan, psnr_shift5=math.nan, ssim=math.nan)
    row["kernel_ncc"] = kernel_similarity(res.kernel, item.kernel)["ncc"] if item.kernel is not None else math.nan
    row["_image"], row["_kernel"] = res.image, res.kernel
    return row


def speedups(df: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Per image: target = scratch ``metric`` at its largest budget; the smallest meta budget reaching it.

    ``metric`` is ``psnr`` (the issue's criterion) or ``kernel_ncc`` (kernel quality, which
    the paper recipe's final image-only stage does not change)."""
    out = []
    for name, d in df.groupby("image", sort=False):
        sc = d[d["mode"] == "scratch"].sort_values("budget")
        me = d[d["mode"] == "meta"].sort_values("budget")
        if sc.empty or me.empty or sc[metric].isna().all():
            continue
        full = sc.iloc[-1]
        hit = me[me[metric] >= full[metric] - 1e-9]
        row = {"image": name, f"target_{metric}": full[metric], "scratch_steps": full["steps"], "scratch_seconds": full["seconds"]}
        if len(hit):
            first = hit.iloc[0]
            row.update({"meta_steps": first["steps"], "meta_seconds": first["seconds"], f"meta_{metric}": first[metric],
                        "speedup_steps": full["steps"] / first["steps"], "speedup_seconds": full["seconds"] / first["seconds"], "reached": True})
        else:
            row.update({"meta_steps": math.nan, "meta_seconds": math.nan, f"meta_{metric}": me[metric].max(),
                        "speedup_steps": 0.0, "speedup_seconds": 0.0, "reached": False})
        out.append(row)
    return pd.DataFrame(out)
