"""Selecting one kernel among the estimators' candidates.

``sparsity`` (the only selector): deconvolve the gray image with every
candidate and keep the sharpest result by Krishnan et al.'s normalised
sparsity ‖∇x‖₁ / ‖∇x‖₂ (a wrong kernel leaves blur or ringing, both raise
it), passing over candidates that are not path-like (``max_taps``).
"""
from __future__ import annotations

import numpy as np

from ..physics import gradient_sparsity
from .nonblind import deconvolve

__all__ = ["is_path_like", "select_kernel", "SELECTORS", "select"]


def is_path_like(k: np.ndarray, max_taps: float) -> bool:
    """Whether the kernel has at most ``max_taps`` × its side non-zero taps.

    A motion path is a thin curve: its tap count grows with the support side,
    not its area.  An estimate that fills a large part of the square has
    diverged into a diffuse blob (seen with low prune fractions)."""
    return int(np.count_nonzero(k)) <= max_taps * max(k.shape)


def select_kernel(y: np.ndarray, kernels: list[np.ndarray], nonblind_lam: float = 5000.0, crop: int | None = None, max_taps: float = 0.0) -> tuple[int, list[float]]:
    """Pick among candidate kernels of the gray image ``y`` the one whose
    hyper-Laplacian deconvolution is sparsest (:func:`cbid_meta.physics.gradient_sparsity`).

    With ``max_taps`` > 0 the candidates failing :func:`is_path_like` are
    passed over (unless all of them fail).  Returns ``(index, scores)`` (the
    scores of all candidates); ``crop`` defaults to half the largest kernel
    plus 5 px (the borders carry boundary artefacts, not kernel errors)."""
    if crop is None:
        crop = max(k.shape[0] for k in kernels) // 2 + 5
    crop = min(crop, max(0, min(y.shape) // 2 - 2))
    y = np.asarray(y, dtype=np.float64)
    scores = [gradient_sparsity(deconvolve(y, k, lam=nonblind_lam), crop) for k in kernels]
    ok = [i for i, k in enumerate(kernels) if max_taps <= 0 or is_path_like(k, max_taps)] or list(range(len(kernels)))
    return min(ok, key=lambda i: scores[i]), scores


def _sparsity(gray: np.ndarray, candidates: dict[str, np.ndarray], config, lam: float) -> tuple[str, dict]:
    names = list(candidates)
    pick, scores = select_kernel(gray, list(candidates.values()), lam, max_taps=config.max_taps)
    info = {"chosen": names[pick], "sparsity": dict(zip(names, scores))}
    if config.max_taps > 0:
        info["passed_over"] = [n for n in names if not is_path_like(candidates[n], config.max_taps)]
    return names[pick], info


SELECTORS = {"sparsity": _sparsity}


def select(gray: np.ndarray, candidates: dict[str, np.ndarray], config, lam: float) -> tuple[str, dict | None]:
    """The name of the chosen candidate and what the selector saw (None with one candidate)."""
    if len(candidates) == 1:
        return next(iter(candidates)), None
    return SELECTORS[config.method](gray, candidates, config, lam)
