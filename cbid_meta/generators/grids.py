r"""Coordinate conventions shared by both generators (one place for every grid).

All positions are in *fine-pixel units*: scale 0 has pixel pitch 1, scale ``s``
has pitch :math:`2^s`.  Observation pixel ``n`` at scale ``s`` covers
:math:`[n 2^s, (n+1) 2^s)` and is sampled at its **cell centre**
:math:`(n + \tfrac12) 2^s` (the coarse observation is the 2^s×2^s block mean
of the fine one).

Kernel at scale ``s``: ``K_s`` taps (odd), centred on 0, tap ``j`` at
:math:`(j - c_s) 2^s` with :math:`c_s = (K_s-1)/2`.  ``K_{s+1} = (K_s+1)/2``,
so the coarse taps sit on the even taps of the finer kernel — which is what
Proposition 1 decimates.  This needs ``K_s ≡ 1 (mod 4)`` below the coarsest
scale: the internal support is rounded up to ``K_0 = 2^{S+1} a + 1`` and the
user's kernel size is enforced by a support mask.

Latent image at scale ``s`` ('valid' model): :math:`H_s + 2c_s` samples per
axis, sample ``i`` at :math:`(i - c_s + \tfrac12) 2^s`.  Because the grids are
cell-centred, a coarse sample lies at the centre of a 2×2 block of finer
samples and never on one of them: the image generator is genuinely
re-evaluated at every scale (if coarse grids were sub-samples of the fine
grid, ``x^{(s+1)} = x^{(s)}↓2`` would hold by construction and the image part
of L_cross would vanish).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

__all__ = ["Pyramid", "internal_kernel_size", "auto_coarsest_scale"]


def internal_kernel_size(kernel_size: int, depth: int) -> int:
    """Smallest ``K_0 = 2^{depth+1}·a + 1 ≥ kernel_size`` (see module docstring).

    ``depth`` is the number of dyadic halvings the kernel must support
    (the coarsest scale used by any loss).
    """
    if kernel_size < 1:
        raise ValueError("kernel size must be positive")
    step = 2 ** (depth + 1)
    a = max(1, -(-(kernel_size - 1) // step))
    return step * a + 1


def auto_coarsest_scale(kernel_size: int, height: int, width: int, min_taps: float = 4.0, min_side: int = 48) -> int:
    """Coarsest scale S0: the kernel radius still spans ``min_taps`` coarse pixels
    and the coarse image keeps at least ``min_side`` pixels per side."""
    s = 0
    while (kernel_size - 1) / 2 ** (s + 1) >= min_taps and min(height, width) / 2 ** (s + 1) >= min_side:
        s += 1
    return s


@dataclass(frozen=True)
class Pyramid:
    """Sizes and sample positions of every scale for one observation.

    Parameters
    ----------
    height, width : observation size at scale 0.
    kernel_size : user kernel size (odd or even); the support mask.
    depth : deepest scale that any loss touches (``S0 + 1`` when L_cross is
        used at the coarsest stage).
    """

    height: int
    width: int
    kernel_size: int
    depth: int

    @cached_property
    def k0(self) -> int:
        return internal_kernel_size(self.kernel_size, self.depth)

    def ksize(self, s: int) -> int:
        return (self.k0 - 1) // 2**s + 1

    def half(self, s: int) -> int:
        return (self.ksize(s) - 1) // 2

    def obs_size(self, s: int) -> tuple[int, int]:
        return self.height // 2**s, self.width // 2**s

    def latent_size(self, s: int) -> tuple[int, int]:
        h, w = self.obs_size(s)
        c = self.half(s)
        return h + 2 * c, w + 2 * c

    @cached_property
    def extent(self) -> tuple[float, float, float, float]:
        """Latent domain ``(top, left, bottom, right)`` in fine pixels (scale 0)."""
        c = self.half(0)
        return (-c, -c, self.height + c, self.width + c)

    def latent_axes(self, s: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell-centre positions (rows, cols) of the latent grid at scale ``s``."""
        hl, wl = self.latent_size(s)
        c, p = self.half(s), 2**s
        rows = (torch.arange(hl, device=device, dtype=dtype) - c + 0.5) * p
        cols = (torch.arange(wl, device=device, dtype=dtype) - c + 0.5) * p
        return rows, cols

    def kernel_axis(self, s: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """Tap positions of the kernel at scale ``s`` (same for rows and cols)."""
        c, p = self.half(s), 2**s
        return (torch.arange(self.ksize(s), device=device, dtype=dtype) - c) * p

    def kernel_mask(self, s: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """(K_s, K_s) 0/1 mask of taps inside the user's kernel support."""
        r = (self.kernel_size - 1) / 2 + 1e-6
        # keep at least the central tap at every scale
        r = max(r, 0.0)
        ax = self.kernel_axis(s, device, dtype)
        inside = ax.abs() <= r
        return (inside[:, None] & inside[None, :]).to(dtype)
