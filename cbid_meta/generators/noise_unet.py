r"""Deep-Image-Prior image generator: the published U-Net fed with fixed noise instead of coordinates.

The ablation "CNN image generator" of the paper (its Table 5), run inside the
published method by ``recipes/paper_cnn_image.toml``: the network is
:class:`~cbid_meta.generators.FourierUNet` unchanged (same width, depth, skips and
``4 · n_freqs`` input channels), its input on an ``h × w`` grid is uniform noise
in ``[0, 0.1)`` (Deep Image Prior's and SelfDeblur's input) instead of the Fourier
encoding of the pixel coordinates.  Each grid's noise is a fixed draw from
``(noise_seed, h, w)``: the input of a scale does not change during a run, and the
inputs of different scales are unrelated (a noise input has no resolution-free
meaning — the point of the ablation).  ``noise_seed`` is drawn from torch's
generator at construction (the run's seed); in a batch of problems with several
seeds (restarts), the inputs are the first problem's and the weights are each
problem's own.  SelfDeblur's per-step input perturbation is left out (the loss stays
a pure function of the parameters).

Examples
--------
>>> net = NoiseUNet(width=8, n_freqs=4, noise_seed=1)
>>> code = net.encoding(37, 41)
>>> code.shape, bool(code.min() >= 0), bool(code.max() < 0.1)
(torch.Size([1, 16, 37, 41]), True, True)
>>> net(code).shape
torch.Size([1, 1, 37, 41])
"""
from __future__ import annotations

import numpy as np
import torch

from .fourier_unet import FourierUNet
from .registry import register_generator

__all__ = ["NoiseUNet", "NOISE_SCALE"]

NOISE_SCALE = 0.1


@register_generator("noise_unet")
class NoiseUNet(FourierUNet):
    """The published U-Net on a fixed noise input (Deep Image Prior).  Parameters as
    :class:`~cbid_meta.generators.FourierUNet`, plus ``noise_seed`` (default: drawn from torch's generator)."""

    def __init__(self, channels: int = 1, width: int = 128, depth: int = 5, skip: int = 16, n_freqs: int = 16,
                 channels_last: bool = False, autocast: str = "none", noise_seed: int | None = None):
        super().__init__(channels=channels, width=width, depth=depth, skip=skip, n_freqs=n_freqs,
                         channels_last=channels_last, autocast=autocast)
        self.noise_seed = int(torch.randint(0, 2**31 - 1, ())) if noise_seed is None else int(noise_seed)

    def make_code(self, h: int, w: int, device, dtype) -> torch.Tensor:
        """The fixed noise input of an ``h × w`` grid (cached by :meth:`encoding`): ``(1, 4·n_freqs, h, w)`` uniform in [0, 0.1)."""
        rng = np.random.default_rng([self.noise_seed, h, w])
        noise = NOISE_SCALE * rng.random((1, 4 * self.n_freqs, h, w), dtype=np.float32)
        return torch.from_numpy(noise).to(device=device, dtype=dtype)
