"""Kernel geometry: centring on the centre tap and centred crop / zero-padding to a support.

The blind problem is translation-ambiguous (``k`` shifted one way and ``x``
the other give the same ``y``), so every estimator puts the centre of mass of
its kernel on the centre tap, and every comparison of kernels of different
sizes embeds them centred in a common support.  Both functions take numpy
arrays or torch tensors (the last two axes are the kernel's).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["centroid_shift", "centre_kernel", "fit_support", "roll_to_centre", "CENTRING_RULES"]

CENTRING_RULES = ("public", "round")


def _zeros(k, shape):
    if isinstance(k, torch.Tensor):
        return k.new_zeros(shape)
    return np.zeros(shape, dtype=np.result_type(k.dtype, np.float64))


def centroid_shift(k) -> tuple[int, int]:
    """Whole-tap shift ``(dy, dx)`` that moves the centre of mass of ``k`` onto the
    centre tap ``((K_h - 1) / 2, (K_w - 1) / 2)`` (ties rounded to even; first
    kernel of a batch)."""
    kh, kw = k.shape[-2:]
    if isinstance(k, torch.Tensor):  # in the kernel's dtype (the published generator's centring layer)
        with torch.no_grad():
            m = k.sum(dim=(-2, -1)).clamp_min(1e-12)
            iy = torch.arange(kh, device=k.device, dtype=k.dtype)
            ix = torch.arange(kw, device=k.device, dtype=k.dtype)
            cy = float(((k.sum(-1) * iy).sum(-1) / m).reshape(-1)[0])
            cx = float(((k.sum(-2) * ix).sum(-1) / m).reshape(-1)[0])
    else:
        k = np.asarray(k, dtype=np.float64).reshape(-1, kh, kw)[0]
        yy, xx = np.mgrid[:kh, :kw]
        m = max(float(k.sum()), 1e-12)
        cy, cx = float((yy * k).sum()) / m, float((xx * k).sum()) / m
    return round((kh - 1) / 2 - cy), round((kw - 1) / 2 - cx)


def centre_kernel(k, wrap: bool = False):
    """``k`` shifted by :func:`centroid_shift`.

    ``wrap=False``: taps shifted out are dropped and the result is renormalised
    to sum 1 (the L0 estimators).  ``wrap=True``: a circular roll that keeps
    every tap and the sum (the published SIREN kernel generator's centring
    layer, differentiable in ``k``).

    >>> k = np.zeros((5, 5)); k[0, 0] = k[0, 1] = 0.5
    >>> np.argwhere(centre_kernel(k)).tolist()
    [[2, 2], [2, 3]]
    """
    dy, dx = centroid_shift(k)
    if wrap:
        if isinstance(k, torch.Tensor):
            return torch.roll(k, shifts=(dy, dx), dims=(-2, -1))
        return np.roll(k, (dy, dx), axis=(-2, -1))
    kh, kw = k.shape[-2:]
    out = _zeros(k, k.shape)
    src = k[..., max(-dy, 0) : kh + min(-dy, 0), max(-dx, 0) : kw + min(-dx, 0)]
    out[..., max(dy, 0) : max(dy, 0) + src.shape[-2], max(dx, 0) : max(dx, 0) + src.shape[-1]] = src
    total = out.sum(dim=(-2, -1), keepdim=True) if isinstance(k, torch.Tensor) else out.sum(axis=(-2, -1), keepdims=True)
    return out / total


def roll_to_centre(k: torch.Tensor, rule: str = "public") -> tuple[torch.Tensor, torch.Tensor]:
    r"""The published kernel generator's centring layer: a circular roll of each kernel by a whole-tap
    shift computed from its centroid :math:`c` (per axis, ``K`` taps), on the kernel's device.

    * ``"public"`` — the authors' code: shift :math:`\operatorname{trunc}(K/2 - c)`, i.e. no roll while
      :math:`c` lies in :math:`(K/2 - 1,\, K/2 + 1)`: a window two taps wide, so a centroid that
      wanders by less than a tap around the centre never changes the roll;
    * ``"round"`` — :math:`\operatorname{round}((K-1)/2 - c)`: a window one tap wide, whose edge
      sits half a tap from the centre (a centroid there flips the roll from step to step).

    Returns the rolled kernels and the shifts ``(..., 2)`` (rows, columns).  The shift is not
    differentiable, the values are; nothing is read back to the host (a gather with indices
    computed on the device), so the layer works under :func:`torch.func.vmap` and CUDA graphs.

    >>> k = torch.zeros(1, 1, 5, 5); k[..., 0, 1] = 1.0
    >>> r, shift = roll_to_centre(k)
    >>> shift.tolist(), torch.nonzero(r[0, 0]).tolist()
    ([[[2, 1]]], [[2, 2]])
    """
    if rule not in CENTRING_RULES:
        raise ValueError(f"unknown centring rule {rule!r} (choose {' or '.join(CENTRING_RULES)})")
    kh, kw = k.shape[-2:]
    with torch.no_grad():
        iy = torch.arange(kh, device=k.device, dtype=k.dtype)
        ix = torch.arange(kw, device=k.device, dtype=k.dtype)
        m = k.sum(dim=(-2, -1)).clamp_min(1e-12)
        cy = (k.sum(-1) * iy).sum(-1) / m
        cx = (k.sum(-2) * ix).sum(-1) / m
        if rule == "public":
            sy, sx = torch.trunc(kh / 2 - cy), torch.trunc(kw / 2 - cx)
        else:
            sy, sx = torch.round((kh - 1) / 2 - cy), torch.round((kw - 1) / 2 - cx)
        sy, sx = sy.long(), sx.long()
        idx_y = torch.remainder(torch.arange(kh, device=k.device) - sy[..., None], kh)  # out[i] = k[(i - shift) mod K]
        idx_x = torch.remainder(torch.arange(kw, device=k.device) - sx[..., None], kw)
    out = torch.gather(k, -2, idx_y[..., :, None].expand(k.shape))
    out = torch.gather(out, -1, idx_x[..., None, :].expand(k.shape))
    return out, torch.stack([sy, sx], -1)


def fit_support(k, shape: tuple[int, int]):
    """``k`` centred in a ``shape`` support: zero-padded where it is smaller,
    cropped (centre kept) where it is larger.  Offsets are ``(new - old) // 2``.

    >>> fit_support(np.ones((1, 1)), (3, 3)).tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    kh, kw = k.shape[-2:]
    out = _zeros(k, (*k.shape[:-2], *shape))
    ah, aw = min(kh, shape[0]), min(kw, shape[1])
    oy, ox = (shape[0] - ah) // 2, (shape[1] - aw) // 2
    iy, ix = (kh - ah) // 2, (kw - aw) // 2
    out[..., oy : oy + ah, ox : ox + aw] = k[..., iy : iy + ah, ix : ix + aw]
    return out
