r"""Image pyramids: the observation at every scale of a coarse-to-fine method.

Three are in use, each tied to its method's forward model:

* ``"mean"`` — dyadic 2^s × 2^s block means (cell-centred grids, the default
  INR method: a coarse pixel is the average of the fine pixels it covers);
* ``"decimate"`` — dyadic decimation ``y[::2^s, ::2^s]`` (the published method:
  Proposition 1 relates ``(x ⊗ k)↓2`` to the decimated image and kernel);
* ``"resize"`` — a √2 (or any ``ratio``) pyramid by anti-aliased bilinear
  resizing (L0 MAP, after Xu et al. and Pan et al.).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PYRAMIDS", "observation_pyramid", "downscale"]

PYRAMIDS = ("mean", "decimate", "resize")


def downscale(y: np.ndarray, scale: float, min_side: int = 8) -> np.ndarray:
    """Gray ``y`` resized by ``scale`` (bilinear, anti-aliased; at least ``min_side`` px a side)."""
    from skimage.transform import resize

    return resize(y, (max(min_side, round(y.shape[0] * scale)), max(min_side, round(y.shape[1] * scale))), order=1, anti_aliasing=True)


def observation_pyramid(y, depth: int, kind: str = "mean", ratio: float = 2.0) -> dict[int, object]:
    """``{s: y at scale s}`` for ``s = 0 … depth``.

    ``"mean"`` and ``"decimate"`` take ``(B, C, H, W)`` tensors (scale ``s`` has
    ``⌊H / 2^s⌋`` resp. ``⌈H / 2^s⌉`` rows); ``"resize"`` takes a gray array and
    divides its size by ``ratio`` per level.

    >>> p = observation_pyramid(torch.arange(16.).reshape(1, 1, 4, 4), 1, "mean")
    >>> p[1][0, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    if kind == "mean":
        return {s: (F.avg_pool2d(y, 2**s) if s else y) for s in range(depth + 1)}
    if kind == "decimate":
        return {s: y[..., :: 2**s, :: 2**s] for s in range(depth + 1)}
    if kind == "resize":
        return {s: (downscale(y, ratio ** (-s)) if s else y) for s in range(depth + 1)}
    raise ValueError(f"unknown pyramid {kind!r} ({', '.join(PYRAMIDS)})")
