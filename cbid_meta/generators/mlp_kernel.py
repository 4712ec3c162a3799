r"""Kernel generator of SelfDeblur (Ren et al., CVPR 2020): a fully connected network from a fixed noise vector.

.. math:: k = \mathcal C\Big(\operatorname{softmax}\big(W_2\,\mathrm{ReLU6}(W_1 z + b_1) + b_2\big)\Big),
          \qquad z \sim 0.1\cdot\mathcal U[0, 1)^{200} \text{ drawn once},

with ``K × K`` outputs (``K`` the full support) — the ablation "MLP kernel
generator" of the paper (its Table 5), run inside the published method by
``recipes/paper_mlp_kernel.toml``.  Unlike the SIREN, the network has one output
per tap of one support, so it cannot be evaluated on a coarser support.  The
coarser supports of the decimation pyramid are made by **resampling** the full
one: 2×2 sum-pooling (the support padded with zeros at the bottom and right
when odd), repeated, so ``K_{s+1} = ⌈K_s/2⌉`` as in
:func:`cbid_meta.optim.published.scale_kernel_sizes`; every coarse kernel is then
non-negative and sums to 1 by construction (a separate output head per scale
would give the coarse scales kernels unrelated to the fine one).  The centring
layer of the published Φk (:func:`cbid_meta.physics.roll_to_centre`) is applied
at every scale after the pooling, so the ablation changes the network only.

The noise vector is a buffer drawn from torch's generator at construction (the
run's seed); in a batch of problems with several seeds (restarts), the inputs are
the first problem's and the weights are each problem's own.

Examples
--------
>>> import torch
>>> _ = torch.manual_seed(0)
>>> net = MLPKernel(9, hidden=32)
>>> [tuple(net.render(s).shape[-2:]) for s in (9, 5, 3)]
[(9, 9), (5, 5), (3, 3)]
>>> round(float(net.render(5).sum().detach()), 5)
1.0
"""
from __future__ import annotations

import torch
from torch import nn

from ..physics import roll_to_centre
from .registry import register_generator
from .siren import centring_layer, pool_kernel

__all__ = ["MLPKernel", "pool_kernel"]


@register_generator("mlp_kernel")
class MLPKernel(nn.Module):
    """SelfDeblur's kernel network with the published centring layer.

    Parameters
    ----------
    kernel_size : the full support ``K`` (outputs ``K²``).
    hidden : units of the hidden layer (1000 in SelfDeblur).
    n_input : length of the fixed noise input (200 in SelfDeblur).
    centre, centring : the centring layer, as :class:`~cbid_meta.generators.SirenKernel`.
    """

    pyramid = "decimate"  # coarser supports by pooling the full one: the published decimation pyramid

    def __init__(self, kernel_size: int, hidden: int = 1000, n_input: int = 200, centre: bool = True, centring: str = "public"):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel size must be positive, got {kernel_size}")
        self.kernel_size = kernel_size
        self.net = nn.Sequential(nn.Linear(n_input, hidden), nn.ReLU6(), nn.Linear(hidden, kernel_size * kernel_size))
        self.register_buffer("noise", 0.1 * torch.rand(n_input))
        self.centre, self.centring = centre, centring
        roll_to_centre(torch.ones(1, 1, 3, 3) / 9, centring)  # an unknown rule fails here, not mid-run

    @classmethod
    def from_config(cls, cfg, kernel_size: int | None = None) -> "MLPKernel":
        if kernel_size is None:
            raise ValueError("mlp_kernel needs the kernel size (create_generator(..., kernel_size=K))")
        return cls(kernel_size, hidden=cfg.hidden, centre=cfg.centre, centring=cfg.centring)

    def supports(self) -> list[int]:
        """The supports it renders: ``K``, ``⌈K/2⌉``, … down to 1."""
        sizes = [self.kernel_size]
        while sizes[-1] > 1:
            sizes.append((sizes[-1] + 1) // 2)
        return sizes

    def forward(self, coords: torch.Tensor, size: int, with_shift: bool = False):
        """Kernel ``(1, 1, size, size)`` from the input vector ``coords`` (:meth:`coords`: the fixed noise);
        with ``with_shift`` also the centring roll ``(1, 1, 2)``."""
        if size not in self.supports():
            raise ValueError(f"mlp_kernel of support {self.kernel_size} renders {self.supports()}, not {size}")
        logits = self.net(coords).reshape(1, -1)
        k = torch.softmax(logits, dim=-1).reshape(1, 1, self.kernel_size, self.kernel_size)
        while k.shape[-1] > size:
            k = pool_kernel(k)
        return centring_layer(k, self.centre, self.centring, with_shift)

    def coords(self, size: int) -> torch.Tensor:
        """The network's input at every support: the fixed noise vector."""
        return self.noise

    def render(self, size: int) -> torch.Tensor:
        """Kernel ``(1, 1, size, size)``, non-negative, sum 1."""
        return self(self.coords(size), size)

    def last_weight(self) -> torch.Tensor:
        return self.net[-1].weight
