r"""Kernel generator :math:`\Phi_k`: kernel coordinates → non-negative kernel summing to 1.

Random Fourier features of the tap position (in units of the kernel radius)
feed a small MLP whose output is a logit; a fixed Gaussian log-prior is added
and a masked softmax over the taps of the requested scale gives the kernel:

.. math:: k^{(s)}[j] = \frac{m_j \exp\big(\mathrm{MLP}(\gamma(p_j)) - |p_j|^2/2\sigma_0^2\big)}
                           {\sum_i m_i \exp\big(\mathrm{MLP}(\gamma(p_i)) - |p_i|^2/2\sigma_0^2\big)},
   \qquad \gamma(p) = [\cos 2\pi Bp, \sin 2\pi Bp].

The last layer is zero-initialised, so the initial kernel is exactly a broad
Gaussian of standard deviation ``σ0`` (``init_sigma`` × radius): a broad
start, not a delta, is one of the choices that keeps the optimisation away
from the trivial "no blur" solution (``docs/design.md``).
Being a function of continuous positions, the same network is sampled at the
taps of every dyadic scale.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import register_generator

from ..config import KernelGeneratorConfig

__all__ = ["KernelINR"]


@register_generator("fourier_mlp")
class KernelINR(nn.Module):
    """Fourier-feature MLP kernel generator.

    Parameters
    ----------
    cfg : KernelGeneratorConfig
    radius : half-width of the kernel support in fine pixels (``(K-1)/2``).
    seed : seed of the (fixed) Fourier frequency matrix.

    Examples
    --------
    >>> from cbid_meta.config import KernelGeneratorConfig
    >>> g = KernelINR(KernelGeneratorConfig(), radius=8.0)
    >>> ax = torch.arange(-8., 9.)
    >>> k = g(ax, torch.ones(17, 17))
    >>> k.shape, round(float(k.sum().detach()), 5)
    (torch.Size([1, 1, 17, 17]), 1.0)
    """

    pyramid = "cell"  # sampled on the cell-centred kernel lattice of grids.Pyramid

    @classmethod
    def from_config(cls, cfg: KernelGeneratorConfig, radius: float, seed: int = 0) -> "KernelINR":
        return cls(cfg, radius, seed=seed)

    def __init__(self, cfg: KernelGeneratorConfig, radius: float, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        self.radius = max(float(radius), 0.5)
        gen = torch.Generator().manual_seed(seed + 7919)
        self.register_buffer("freqs", torch.randn(2, cfg.fourier_features, generator=gen) * cfg.fourier_sigma)
        width = 2 * cfg.fourier_features
        layers: list[nn.Module] = []
        for _ in range(cfg.hidden_layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU()]
            width = cfg.hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def band_mask(self, pitch: float) -> torch.Tensor:
        """(F,) 0/1 mask of the Fourier features below the Nyquist frequency of ``pitch``.

        Frequencies are in cycles per kernel radius; taps ``pitch`` pixels apart
        resolve up to ``radius / (2·pitch)`` cycles per radius.  Higher ones are
        switched off, so a coarse scale sees a band-limited kernel instead of
        an aliased one (``pitch=0``: all on).
        """
        if pitch <= 0 or self.cfg.band <= 0:
            return torch.ones(self.freqs.shape[1], device=self.freqs.device)
        nyquist = self.cfg.band * self.radius / (2.0 * pitch)
        return (self.freqs.norm(dim=0) <= nyquist).to(self.freqs.dtype)

    def logits(self, axis: torch.Tensor, pitch: float = 0.0) -> torch.Tensor:
        """(K, K) unnormalised log-kernel at the taps ``axis × axis``."""
        u = axis / self.radius
        pts = torch.stack(torch.meshgrid(u, u, indexing="ij"), dim=-1)  # (K, K, 2)
        proj = 2 * math.pi * pts @ self.freqs
        m = self.band_mask(pitch)
        z = self.mlp(torch.cat([proj.cos() * m, proj.sin() * m], dim=-1)).squeeze(-1)
        sigma0 = self.cfg.init_sigma
        return z - (pts**2).sum(-1) / (2 * sigma0**2)

    def forward(self, axis: torch.Tensor, mask: torch.Tensor, pitch: float = 0.0) -> torch.Tensor:
        """Kernel ``(1, 1, K, K)`` on the taps ``axis × axis``, zero outside ``mask``, sum 1,
        band-limited to the tap spacing ``pitch`` (0: no limit)."""
        z = self.logits(axis, pitch).masked_fill(mask <= 0, float("-inf"))
        k = torch.softmax(z.flatten(), dim=0).view_as(z)
        return k[None, None]
