r"""Image generator :math:`\Phi_x` as published: a U-Net fed with a Fourier encoding of the pixel coordinates.

The input of scale :math:`s` is a sinusoidal encoding of the mesh-grid of
that scale's latent image (the observation plus the kernel support minus
one, 'valid' model), with coordinates :math:`u, v \in [0, 1]`:

.. math:: \gamma(u, v) = [\cos(f_j u), \sin(f_j u), \cos(f_j v), \sin(f_j v)]_{j=0}^{F-1},
          \qquad f_j = b^{\,j},\; b = 2^{8/7},

i.e. ``4 F`` channels (64 for ``F = 16``, appendix Table 9 of the paper).
The network is the "skip" encoder–decoder of Deep Image Prior: ``depth``
blocks of (stride-2 conv 3×3, conv 3×3) going down, bilinear ×2 up-sampling
coming back, a 16-channel 1×1 skip branch at every level, Conv + BatchNorm +
LeakyReLU(0.2) everywhere, reflection padding, and a final 1×1 conv +
sigmoid.  The same weights render every dyadic scale: only the encoding's
grid changes (resolution-free use).  At width 128 it has 2.33 M parameters
(the paper: 2.34 M with the kernel SIREN).

Examples
--------
>>> net = FourierUNet(width=8, n_freqs=4)
>>> net.render(37, 41).shape
torch.Size([1, 1, 37, 41])
>>> float(net.render(37, 41).detach().min()) >= 0.0
True
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_generator

__all__ = ["FourierUNet", "fourier_encoding"]


def fourier_encoding(h: int, w: int, n_freqs: int = 16, base: float = 2 ** (8 / 7), device=None, dtype=torch.float32) -> torch.Tensor:
    """``(1, 4·n_freqs, h, w)`` cos/sin maps of the [0, 1] mesh-grid at frequencies ``base**j``."""
    freqs = base ** torch.arange(n_freqs, device=device, dtype=torch.float64)
    v = torch.arange(h, device=device, dtype=torch.float64) / max(h - 1, 1)
    u = torch.arange(w, device=device, dtype=torch.float64) / max(w - 1, 1)
    pv = freqs[:, None, None] * v[None, :, None].expand(n_freqs, h, w)
    pu = freqs[:, None, None] * u[None, None, :].expand(n_freqs, h, w)
    maps = torch.cat([torch.cos(pu), torch.sin(pu), torch.cos(pv), torch.sin(pv)], 0)
    return maps[None].to(dtype)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """Reflection-padded conv, BatchNorm, LeakyReLU(0.2)."""
    pad = (k - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    layers += [nn.Conv2d(cin, cout, k, stride=stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


def _crop_to(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Centre crop of ``t`` to ``h × w`` (the DIP concatenation rule)."""
    dh, dw = (t.shape[-2] - h) // 2, (t.shape[-1] - w) // 2
    return t[..., dh : dh + h, dw : dw + w]


class _Level(nn.Module):
    """One level of the skip U-Net: ``concat(skip(x), up(deeper(down(x))))`` → conv 3×3 → conv 1×1
    (no BatchNorm on the concatenation itself, as in the authors' ``skip`` network)."""

    def __init__(self, cin: int, width: int, skip: int, inner: "_Level | None"):
        super().__init__()
        self.skip = _conv(cin, skip, 1)
        self.down = nn.Sequential(_conv(cin, width, 3, stride=2), _conv(width, width, 3))
        self.inner = inner
        self.up = nn.Sequential(_conv(skip + width, width, 3), _conv(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.inner is not None:
            d = self.inner(d)
        d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
        s = self.skip(x)
        h, w = min(s.shape[-2], d.shape[-2]), min(s.shape[-1], d.shape[-1])
        return self.up(torch.cat([_crop_to(s, h, w), _crop_to(d, h, w)], 1))


@register_generator("fourier_unet")
class FourierUNet(nn.Module):
    """The published image generator.

    Parameters
    ----------
    channels : output channels (1 gray, 3 colour).
    width : channels of every encoder/decoder block (128 published; 64 and 32 are cheaper variants).
    depth : number of stride-2 levels (5 published).
    skip : channels of each skip branch (16 published).
    n_freqs : frequencies of the coordinate encoding (16 published: 64 input channels).
    channels_last : keep activations in channels-last memory format (faster convolutions on CPU).
    autocast : ``"bf16"`` runs the forward pass under bfloat16 autocast (about 2x faster at
        width 128 on this CPU, ``benchmarks/results/paper_speed.md``); ``"none"``: float32.
    """

    def __init__(self, channels: int = 1, width: int = 128, depth: int = 5, skip: int = 16, n_freqs: int = 16, base: float = 2 ** (8 / 7),
                 channels_last: bool = False, autocast: str = "none"):
        super().__init__()
        if autocast not in ("none", "bf16"):
            raise ValueError(f"unknown autocast '{autocast}' (choose none or bf16)")
        self.n_freqs, self.base = n_freqs, base
        self.channels_last, self.autocast = channels_last, autocast
        cin = 4 * n_freqs
        level = None
        for i in reversed(range(depth)):
            level = _Level(cin if i == 0 else width, width, skip, level)
        self.body = level
        self.head = nn.Conv2d(width, channels, 1)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self._codes: dict[tuple, torch.Tensor] = {}
        self.min_side = 2**depth + 1  # smallest grid side whose deepest level keeps 2 px (reflection padding, BatchNorm)

    pyramid = "decimate"  # renders any grid size: the published decimation pyramid

    @classmethod
    def from_config(cls, cfg, channels: int = 1) -> "FourierUNet":
        return cls(channels=channels, width=cfg.width, depth=cfg.depth, skip=cfg.skip, n_freqs=cfg.n_freqs,
                   channels_last=cfg.channels_last, autocast=cfg.autocast)

    def encoding(self, h: int, w: int) -> torch.Tensor:
        """The (cached) coordinate encoding of an ``h × w`` grid."""
        p = self.head.weight
        key = (h, w, p.device, p.dtype)
        if key not in self._codes:
            code = self.make_code(h, w, p.device, p.dtype)
            self._codes[key] = code.contiguous(memory_format=torch.channels_last) if self.channels_last else code
        return self._codes[key]

    def make_code(self, h: int, w: int, device, dtype) -> torch.Tensor:
        """The network's input on an ``h × w`` grid (uncached): the Fourier encoding of the coordinates."""
        return fourier_encoding(h, w, self.n_freqs, self.base, device, dtype)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        h, w = code.shape[-2:]
        if self.autocast == "bf16":
            with torch.autocast(device_type=code.device.type, dtype=torch.bfloat16):
                out = torch.sigmoid(self.head(self.body(code)))
            out = out.float()
        else:
            out = torch.sigmoid(self.head(self.body(code)))
        assert out.shape[-2:] == (h, w), f"U-Net output {tuple(out.shape[-2:])} != input {(h, w)}"
        return out

    def render(self, h: int, w: int) -> torch.Tensor:
        """Latent image ``(1, channels, h, w)`` in [0, 1] on the ``h × w`` grid."""
        return self(self.encoding(h, w))
