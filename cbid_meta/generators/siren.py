r"""Kernel generator :math:`\Phi_k` as published: SIREN → softmax over the taps → centring.

.. math:: k^{(s)} = \mathcal C\Big(\operatorname{softmax}_j\, \mathrm{SIREN}(p_j)\Big),
          \qquad p_j \in [-1, 1]^2 \text{ the taps of the } K_s\times K_s \text{ support},

with sine activations :math:`\sin(\omega_0 (W h + b))`, :math:`\omega_0 = 30`
and the SIREN initialisation (Sitzmann et al., 2020); the last layer is
linear.  :math:`\mathcal C` rolls the kernel by a whole-tap shift towards the
centre (:func:`cbid_meta.physics.roll_to_centre`; rule ``"public"``, the
authors' window, by default: the shift is not differentiable, the values are).  The kernel is non-negative and sums to 1
at every scale.

Examples
--------
>>> net = SirenKernel(hidden=16)
>>> k = net.render(9)
>>> k.shape, round(float(k.sum().detach()), 5), bool((k >= 0).all())
(torch.Size([1, 1, 9, 9]), 1.0, True)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..physics import roll_to_centre
from .registry import register_generator

__all__ = ["SirenKernel", "kernel_coords"]


def kernel_coords(size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(size², 2)`` tap coordinates in [-1, 1] (row-major)."""
    t = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], 1)


class _Sine(nn.Module):
    def __init__(self, cin: int, cout: int, omega0: float, first: bool):
        super().__init__()
        self.omega0 = omega0
        self.linear = nn.Linear(cin, cout)
        bound = 1 / cin if first else math.sqrt(6 / cin) / omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega0 * self.linear(x))


def centring_layer(k: torch.Tensor, centre: bool, rule: str, with_shift: bool):
    """The kernel generators' last layer: ``k`` rolled to the centre (:func:`~cbid_meta.physics.roll_to_centre`)
    when ``centre``; with ``with_shift`` also the roll ``(1, 1, 2)`` (zeros without centring)."""
    if centre:
        k, shift = roll_to_centre(k, rule)
    else:
        shift = torch.zeros(1, 1, 2, dtype=torch.long, device=k.device)
    return (k, shift) if with_shift else k


def pool_kernel(k: torch.Tensor) -> torch.Tensor:
    """``(…, K, K)`` → ``(…, ⌈K/2⌉, ⌈K/2⌉)``: sums of 2×2 blocks (zero-padded at the bottom and right);
    the total mass is kept."""
    n = k.shape[-1]
    if n % 2:
        k = F.pad(k, (0, 1, 0, 1))
        n += 1
    m = n // 2
    return k.reshape(*k.shape[:-2], m, 2, m, 2).sum((-3, -1))


@register_generator("siren")
class SirenKernel(nn.Module):
    """The published kernel generator.

    Parameters
    ----------
    hidden : units per layer (64 in the public code, 128 in the paper's table).
    layers : sine layers after the first (3 in the public code).
    omega0 : SIREN frequency factor (30).
    centre : apply the centring layer.
    centring : its rule, ``"public"`` (the authors' two-tap window) or ``"round"``
        (:func:`cbid_meta.physics.roll_to_centre`).
    coarse : a coarser support's kernel: ``"render"`` (published) evaluates the network on
        that support's own tap grid, with its own softmax; ``"pool"`` renders the full
        support ``kernel_size`` and sum-pools it 2×2 down to the coarser one
        (:func:`pool_kernel`, as ``mlp_kernel`` does), so every
        scale's kernel is the fine kernel's mass, resampled.
    kernel_size : the full support (needed by ``coarse="pool"`` only).
    """

    def __init__(self, hidden: int = 64, layers: int = 3, omega0: float = 30.0, centre: bool = True, centring: str = "public",
                 coarse: str = "render", kernel_size: int | None = None):
        super().__init__()
        if coarse not in ("render", "pool"):
            raise ValueError(f"unknown coarse-kernel rule '{coarse}' (choose render or pool)")
        if coarse == "pool" and not kernel_size:
            raise ValueError("siren with coarse = 'pool' needs the kernel size")
        self.coarse, self.kernel_size = coarse, kernel_size
        mods: list[nn.Module] = [_Sine(2, hidden, omega0, True)] + [_Sine(hidden, hidden, omega0, False) for _ in range(layers)]
        last = nn.Linear(hidden, 1)
        with torch.no_grad():
            b = math.sqrt(6 / hidden) / omega0
            last.weight.uniform_(-b, b)
        self.net = nn.Sequential(*mods, last)
        self.centre, self.centring = centre, centring
        roll_to_centre(torch.ones(1, 1, 3, 3) / 9, centring)  # an unknown rule fails here, not mid-run
        self._coords: dict[tuple, torch.Tensor] = {}

    pyramid = "decimate"  # renders any support size: the published decimation pyramid

    @classmethod
    def from_config(cls, cfg, kernel_size: int | None = None) -> "SirenKernel":  # "render": any support, the size is not needed
        return cls(hidden=cfg.hidden, layers=cfg.layers, omega0=cfg.omega0, centre=cfg.centre, centring=cfg.centring,
                   coarse=cfg.coarse, kernel_size=kernel_size if cfg.coarse == "pool" else None)

    def forward(self, coords: torch.Tensor, size: int, with_shift: bool = False):
        """Kernel ``(1, 1, size, size)``; with ``with_shift`` also the centring roll ``(1, 1, 2)`` (zeros without centring)."""
        n = self.kernel_size if self.coarse == "pool" else size
        logits = self.net(coords).reshape(1, 1, n, n)
        k = torch.softmax(logits.reshape(1, -1), dim=-1).reshape(1, 1, n, n)
        while k.shape[-1] > size:
            k = pool_kernel(k)
        if k.shape[-1] != size:
            raise ValueError(f"siren pooled from support {n} renders {n}, ⌈{n}/2⌉, …, not {size}")
        return centring_layer(k, self.centre, self.centring, with_shift)

    def coords(self, size: int) -> torch.Tensor:
        """The (cached) tap coordinates of a ``size × size`` support (with ``coarse="pool"``: of the full one, at every size)."""
        size = self.kernel_size if self.coarse == "pool" else size
        p = self.last_weight()
        key = (size, p.device, p.dtype)
        if key not in self._coords:
            self._coords[key] = kernel_coords(size, p.device, p.dtype)
        return self._coords[key]

    def render(self, size: int) -> torch.Tensor:
        """Kernel ``(1, 1, size, size)``, non-negative, sum 1, centred."""
        return self(self.coords(size), size)

    def last_weight(self) -> torch.Tensor:
        return self.net[-1].weight
