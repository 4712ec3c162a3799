"""Restorers by name: the sharp image from the blurry one and the selected kernel.

* ``inr`` — the image generator's own output (the paper; only where the INR
  method's kernel is the selected one and the whole image was optimised);
* ``hyper_laplacian`` — non-blind deconvolution with a hyper-Laplacian gradient
  prior (:func:`cbid_meta.pipeline.nonblind.deconvolve`, weight ``lam``);
* ``wiener`` — a regularised Wiener filter (one FFT solve; noise-to-signal 10/``lam``);
* ``tiled`` — ``hyper_laplacian`` (or ``wiener`` above ``wiener_above_mp``
  megapixels) tile by tile, for photos whose FFT canvas would not fit in memory.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .nonblind import deconvolve, simple_wiener

__all__ = ["RESTORERS", "restore_channel", "restore", "deconvolve_tiled"]


def _hyper_laplacian(y, k, lam, config):
    return deconvolve(y, k, lam=lam)


def _wiener(y, k, lam, config):
    return simple_wiener(y, k, nsr=max(1.0 / lam, 1e-4) * 10)


def _tiled(y, k, lam, config):
    method = "wiener" if y.size > config.wiener_above_mp * 1e6 else "hyperlaplacian"
    return deconvolve_tiled(y, k, lam=lam, tile=config.tile, method=method)


def deconvolve_tiled(y: np.ndarray, k: np.ndarray, lam: float = 5000.0, tile: int = 512, method: str = "hyperlaplacian") -> np.ndarray:
    """Non-blind deconvolution of a large gray image in overlapping tiles (memory ∝ tile²).

    ``method``: ``hyperlaplacian`` (the quality default) or ``wiener`` (one
    regularised FFT solve per tile, much faster: ``docs/photos.md``)."""
    h, w = y.shape

    def solve(a):
        return (_wiener if method == "wiener" else _hyper_laplacian)(a, k, lam, None)

    if max(h, w) <= tile + 64:
        return solve(y)
    ov = 2 * max(k.shape)
    out = np.zeros((h, w), dtype=np.float32)
    acc = np.zeros((h, w), dtype=np.float32)

    def ramp(n, lo_edge, hi_edge):
        r = np.ones(n, dtype=np.float32)
        m = min(ov, n // 2)
        if not lo_edge:
            r[:m] = (np.arange(m) + 0.5) / m
        if not hi_edge:
            r[n - m :] = ((np.arange(m) + 0.5) / m)[::-1]
        return r

    starts_y = list(range(0, max(h - tile, 0) + 1, tile - ov)) or [0]
    if starts_y[-1] + tile < h:
        starts_y.append(h - tile)
    starts_x = list(range(0, max(w - tile, 0) + 1, tile - ov)) or [0]
    if starts_x[-1] + tile < w:
        starts_x.append(w - tile)
    for t in starts_y:
        for l in starts_x:
            b, r = min(t + tile, h), min(l + tile, w)
            # deconvolve with a margin so the tile's own border effects fall outside it
            t0, l0, b0, r0 = max(t - ov, 0), max(l - ov, 0), min(b + ov, h), min(r + ov, w)
            x = solve(y[t0:b0, l0:r0])[t - t0 : t - t0 + (b - t), l - l0 : l - l0 + (r - l)]
            wgt = np.outer(ramp(b - t, t == 0, b == h), ramp(r - l, l == 0, r == w))
            out[t:b, l:r] += wgt * x
            acc[t:b, l:r] += wgt
    return (out / np.maximum(acc, 1e-6)).astype(np.float64)


#: non-blind restorers: (gray channel, kernel summing to 1, weight, RestorationConfig) → channel
RESTORERS: dict[str, Callable] = {"hyper_laplacian": _hyper_laplacian, "wiener": _wiener, "tiled": _tiled}


def restore_channel(y: np.ndarray, k: np.ndarray, config, lam: float | None = None) -> np.ndarray:
    """One channel restored by ``config.method`` (any name of :data:`RESTORERS`; the names are
    checked before a run by :func:`cbid_meta.pipeline.check_components`)."""
    return RESTORERS[config.method](np.asarray(y, dtype=np.float64), k, config.lam if lam is None else lam, config)


def restore(y: np.ndarray, k: np.ndarray, config, lam: float | None = None, on_phase: Callable[[str], None] | None = None) -> np.ndarray:
    """Every channel of an (H, W) or (H, W, C) image restored with one kernel."""
    chans = [y] if y.ndim == 2 else [y[:, :, c] for c in range(y.shape[2])]
    out = []
    for ch in chans:
        out.append(restore_channel(ch, k, config, lam))
        if on_phase is not None:
            on_phase("restore")
    return out[0] if y.ndim == 2 else np.stack(out, axis=-1)
