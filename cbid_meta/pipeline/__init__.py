"""The pipeline after the INR method: estimate → select → restore.

1. **estimate** — the INR method's kernel, and the named estimators of
   ``[estimation]`` (:mod:`.estimation`: ``polish``, ``l0_map``), each a candidate;
2. **select** — one candidate by ``[selection]`` (:mod:`.selection`: ``sparsity``);
3. **restore** — the image by ``[restoration]`` (:mod:`.restoration`: ``inr``,
   ``hyper_laplacian``, ``wiener``, ``tiled``).

:func:`finish` runs the three on one image; :class:`cbid_meta.optim.Deblurrer`
calls it after its optimisation.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..errors import InputError
from .estimation import ESTIMATORS, candidates, n_runs
from .restoration import RESTORERS, restore
from .selection import SELECTORS, select

__all__ = ["ESTIMATORS", "SELECTORS", "RESTORERS", "candidates", "n_runs", "select", "restore", "finish", "progress_units", "check_components"]


def check_components(config) -> None:
    """Every component the config names exists (one error line before any work otherwise)."""
    unknown = [e for e in config.estimation.estimators if e != "inr" and e not in ESTIMATORS]
    if unknown or not config.estimation.estimators:
        raise InputError(f"unknown kernel estimator(s) {', '.join(unknown) or '(none given)'} (available: inr, {', '.join(ESTIMATORS)})")
    if config.selection.method not in SELECTORS:
        raise InputError(f"unknown selector '{config.selection.method}' (available: {', '.join(SELECTORS)})")
    if config.restoration.method != "inr" and config.restoration.method not in RESTORERS:
        raise InputError(f"unknown restorer '{config.restoration.method}' (available: inr, {', '.join(RESTORERS)})")


def progress_units(config, channels: int = 1) -> int:
    """Units of work :func:`finish` reports through ``on_phase`` (L0 candidates, restored channels)."""
    size = config.kernel_size + (1 - config.kernel_size % 2)
    return n_runs(config.estimation, size) + (channels if config.restoration.method != "inr" else 0)


def finish(y: np.ndarray, inr_image: np.ndarray, inr_kernel: np.ndarray, config, on_phase: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Estimate → select → restore for the (H, W, C) image ``y`` whose INR run gave
    ``inr_image`` (H, W, C) and ``inr_kernel``.  Returns ``(image, kernel, info)``."""
    t0 = time.perf_counter()
    gray = y.mean(axis=2) if y.ndim == 3 else y
    cands = candidates(gray, inr_kernel, config.estimation, on_phase)
    name, choice = select(gray, cands, config.selection, config.restoration.lam)
    kernel = cands[name]
    t1 = time.perf_counter()
    if config.restoration.method == "inr":
        image = inr_image
    else:
        image = restore(y, kernel, config.restoration, on_phase=on_phase)
    info = {"candidates": list(cands), "chosen": name, "selection": choice, "estimate_seconds": t1 - t0,
            "restore_seconds": time.perf_counter() - t1, "restoration": config.restoration.method}
    return image.astype(np.float32), kernel, info
