r"""The published metrics: :math:`\mathcal M_f = 1 - \mathrm{SSIM}` and :math:`\mathcal M_c` = ℓ1 of DFT differences.

SSIM (Wang et al., 2004) with an 11×11 Gaussian window of σ = 1.5, constants
:math:`C_1 = (0.01 L)^2`, :math:`C_2 = (0.03 L)^2`, ``L = 1``, population
(co)variances, averaged over the window positions that lie inside the image
— the definition of ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1)``, which the tests check it against.  With ``padding="same"`` the windows are
zero-padded and every pixel's SSIM is averaged (the ``pytorch-ssim`` module of
the authors' code: ``F.conv2d(..., padding=win // 2)``).  (torchmetrics' SSIM,
which deepinv wraps, pads and crops differently and differs from
scikit-image by up to 4e-3 on Levin images, so it is not used.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ssim", "ssim_loss", "ssim_same_loss", "dft_l1"]


def _gauss(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    r = (size - 1) / 2
    t = torch.arange(size, device=like.device, dtype=like.dtype) - r
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, win: int = 11, sigma: float = 1.5, data_range: float = 1.0, padding: str = "valid") -> torch.Tensor:
    """Mean SSIM of (B, C, H, W) tensors over the window positions and all channels:
    the valid positions (``padding="valid"``) or every pixel with zero-padded windows (``"same"``).

    >>> x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    >>> float(ssim(x, x))
    1.0
    """
    c = a.shape[1]
    g = _gauss(win, sigma, a)
    gh = g.view(1, 1, win, 1).expand(c, 1, win, 1)
    gw = g.view(1, 1, 1, win).expand(c, 1, 1, win)
    if padding not in ("valid", "same"):
        raise ValueError(f"unknown SSIM padding {padding!r} (choose valid or same)")
    r = win // 2 if padding == "same" else 0

    def blur(t):
        return F.conv2d(F.conv2d(t, gh, padding=(r, 0), groups=c), gw, padding=(0, r), groups=c)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean()


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`1 - \mathrm{SSIM}(a, b)` (the published fitting metric)."""
    return 1.0 - ssim(a, b)


def ssim_same_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`1 - \mathrm{SSIM}(a, b)` with zero-padded same-size windows (the authors' code)."""
    return 1.0 - ssim(a, b, padding="same")


def dft_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Mean modulus of the difference of the 2-D DFTs, :math:`\operatorname{mean}|\mathcal F a - \mathcal F b|`.

    >>> a = torch.zeros(1, 1, 2, 2); b = torch.zeros(1, 1, 2, 2); b[..., 0, 0] = 1.0
    >>> float(dft_l1(a, b))  # the DFT of a unit impulse is 1 at every frequency
    1.0
    """
    return torch.mean(torch.abs(torch.fft.fft2(a - b)))
