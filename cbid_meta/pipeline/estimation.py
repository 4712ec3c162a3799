"""Kernel estimators by name, run after the INR method has given its kernel.

* ``inr`` — the kernel of the cross-scale INR method itself (:mod:`cbid_meta.optim`);
* ``polish`` — L0 alternating MAP (:mod:`.l0_map`) started from the INR kernel on the
  finest ``polish_levels`` levels of its √2 pyramid;
* ``l0_map`` — L0 alternating MAP from scratch on the full support.

With ``alt_prune`` > 0 every L0 estimator is run a second time with that prune
fraction when the support is at least ``alt_min_size`` px (faint, long paths
survive a lower prune), giving candidates named ``<estimator>_prune<alt>``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .l0_map import L0Config, l0_kernel, refine_kernel

__all__ = ["ESTIMATORS", "candidates", "n_runs"]


def _polish(gray, inr_kernel, config, l0cfg):
    return refine_kernel(gray, inr_kernel, config.polish_levels, config.iters, config.polish_trim, config=l0cfg)


def _l0_map(gray, inr_kernel, config, l0cfg):
    return l0_kernel(gray, l0cfg)


#: estimators that run after the INR method: (gray image, INR kernel, EstimationConfig, L0Config) → kernel
ESTIMATORS: dict[str, Callable] = {"polish": _polish, "l0_map": _l0_map}


def _prunes(config, size: int) -> list[float]:
    base = L0Config().prune
    return [base, config.alt_prune] if config.alt_prune > 0 and size >= config.alt_min_size else [base]


def n_runs(config, size: int) -> int:
    """How many estimator runs (candidates other than ``inr``) :func:`candidates` makes for an
    odd support of ``size`` px: one ``on_phase`` call each."""
    return sum(1 for e in config.estimators if e != "inr") * len(_prunes(config, size))


def candidates(gray: np.ndarray, inr_kernel: np.ndarray, config, on_phase: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Every named estimator's kernel for the gray image ``gray``, in the order of ``config.estimators``
    (the names are checked before a run by :func:`cbid_meta.pipeline.check_components`)."""
    size = inr_kernel.shape[0]
    out: dict[str, np.ndarray] = {}
    base = L0Config().prune
    for prune in _prunes(config, size):
        tag = "" if prune == base else f"_prune{prune:g}"
        l0cfg = L0Config(kernel_size=size, iters=config.iters, prune=prune)
        for name in config.estimators:
            if name == "inr":
                if not tag:
                    out["inr"] = inr_kernel
                continue
            out[name + tag] = ESTIMATORS[name](gray, inr_kernel, config, l0cfg)
            if on_phase is not None:
                on_phase("polish")
    return out
