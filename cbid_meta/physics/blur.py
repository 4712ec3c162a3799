r"""Uniform blur forward model, dyadic decimation and Proposition 1.

Conventions (used everywhere in cbid_meta)
-------------------------------------------
* Images and kernels are tensors of shape ``(B, C, H, W)``; kernels are
  ``(B, 1, K, K)`` or ``(1, 1, K, K)`` and broadcast over channels.
* ``⊗`` is true 2-D convolution, :math:`(x\otimes k)[n]=\sum_m k[m]\,x[n-m]`,
  with kernel indices ``m`` counted from 0 at the top-left of the kernel
  array (this is the index the QMF signs :math:`(-1)^m` refer to).
* ``valid`` convolution: a latent image of size ``N + K - 1`` blurred by a
  ``K``-tap kernel gives exactly ``N`` samples, none of which touches a
  border (the "valid" blur model of the paper: the latent image is larger
  than the observation by the kernel support, so borders do not bias the
  fit).  It is computed with one FFT of the latent size: the circular
  convolution equals the linear one on the last ``N`` samples.
* ``↓2`` keeps every other sample, ``x[phase::2]`` on both axes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "conv_valid",
    "corr_valid",
    "decimate_floor",
    "conv_full",
    "decimate",
    "qmf_filters",
    "prop1_lhs",
    "prop1_rhs",
    "cross_scale_prediction",
    "cross_scale_target",
]


def conv_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""'Valid' 2-D convolution :math:`y = (x\otimes k)_{valid}` via the FFT.

    Parameters
    ----------
    x : (B, C, H + K_h - 1, W + K_w - 1) latent image.
    k : (B or 1, 1, K_h, K_w) kernel.

    Returns
    -------
    (B, C, H, W) tensor, ``y[i, j] = Σ_{m,n} k[m, n] x[i + K_h - 1 - m, j + K_w - 1 - n]``.

    Examples
    --------
    >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1.0
    >>> k = torch.arange(9.).reshape(1, 1, 3, 3)
    >>> conv_valid(x, k)[0, 0].tolist()  # an impulse gives the kernel back (a true convolution)
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
    """
    kh, kw = k.shape[-2:]
    mh, mw = x.shape[-2:]
    if kh > mh or kw > mw:
        raise ValueError(f"kernel {kh}x{kw} larger than the latent image {mh}x{mw}")
    if kh * kw <= 49:  # tiny kernels: direct convolution is cheaper than FFTs
        return _conv_valid_direct(x, k)
    xf = torch.fft.rfft2(x, s=(mh, mw))
    kf = torch.fft.rfft2(k, s=(mh, mw))
    y = torch.fft.irfft2(xf * kf, s=(mh, mw))
    return y[..., kh - 1 :, kw - 1 :]


def _conv_valid_direct(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Direct 'valid' convolution (F.conv2d correlates, so flip the kernel)."""
    b, c = x.shape[:2]
    kf = torch.flip(k, dims=(-2, -1))
    if k.shape[0] == 1:
        w = kf.expand(c, 1, *k.shape[-2:])
        return F.conv2d(x, w, groups=c)
    # one kernel per batch item: fold the batch into channels
    w = kf.repeat_interleave(c, dim=0)
    y = F.conv2d(x.reshape(1, b * c, *x.shape[-2:]), w, groups=b * c)
    return y.reshape(b, c, *y.shape[-2:])


def corr_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""'Valid' 2-D correlation ``y[i, j] = Σ_{m,n} k[m, n] x[i + m, j + n]`` (``F.conv2d``'s
    convention, the authors' code's blur model): :func:`conv_valid` with the kernel flipped.

    >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1.0
    >>> corr_valid(x, torch.arange(9.).reshape(1, 1, 3, 3))[0, 0].tolist()  # an impulse gives the kernel back flipped
    [[8.0, 7.0, 6.0], [5.0, 4.0, 3.0], [2.0, 1.0, 0.0]]
    """
    return conv_valid(x, torch.flip(k, dims=(-2, -1)))


def decimate_floor(x: torch.Tensor) -> torch.Tensor:
    """``x[..., 0:2⌊H/2⌋:2, 0:2⌊W/2⌋:2]``: decimation to ``⌊H/2⌋ × ⌊W/2⌋`` samples (the authors'
    pyramid, top-left phase; :func:`decimate` keeps ``⌈H/2⌉``).

    >>> x = torch.arange(25.).reshape(5, 5)
    >>> decimate_floor(x).tolist(), tuple(decimate(x).shape)
    ([[0.0, 2.0], [10.0, 12.0]], (3, 3))
    """
    h, w = x.shape[-2:]
    return x[..., : h // 2 * 2 : 2, : w // 2 * 2 : 2]


def conv_full(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Full linear convolution (output ``H + K - 1``): zero-pad then ``conv_valid``."""
    kh, kw = k.shape[-2:]
    return conv_valid(F.pad(x, (kw - 1, kw - 1, kh - 1, kh - 1)), k)


def decimate(x: torch.Tensor, phase: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Dyadic decimation ``x↓2``: keep samples ``x[phase_h::2, phase_w::2]``."""
    return x[..., phase[0] :: 2, phase[1] :: 2]


def qmf_filters(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""QMF filters of Proposition 1.

    :math:`g_1[m,n] = (-1)^m k[m,n]`, :math:`g_2[m,n] = (-1)^n k[m,n]`,
    :math:`g_3[m,n] = (-1)^{m+n} k[m,n]`, indices from 0.
    """
    kh, kw = k.shape[-2:]
    sm = (1 - 2 * (torch.arange(kh, device=k.device) % 2)).to(k.dtype).view(kh, 1)
    sn = (1 - 2 * (torch.arange(kw, device=k.device) % 2)).to(k.dtype).view(1, kw)
    return k * sm, k * sn, k * (sm * sn)


def _valid_phase(k: torch.Tensor) -> tuple[int, int]:
    # y[2i] = Σ_m k[m] x[2i + K-1 - m]: the even taps of k meet x at parity (K-1) mod 2
    kh, kw = k.shape[-2:]
    return ((kh - 1) % 2, (kw - 1) % 2)


def prop1_lhs(x: torch.Tensor, k: torch.Tensor, mode: str = "valid") -> torch.Tensor:
    r"""Left side of Proposition 1: :math:`(x\downarrow_2)\otimes(k\downarrow_2)`.

    In ``valid`` mode the image is decimated at the parity that lines up with
    the even kernel taps (``(K-1) mod 2``), so that the identity holds exactly
    for odd and even kernel sizes alike; ``full`` mode uses phase 0.
    """
    if mode == "valid":
        return conv_valid(decimate(x, _valid_phase(k)), decimate(k))
    out = conv_full(decimate(x), decimate(k))
    # (x⊗k)↓2 has ceil((N+K-1)/2) samples; the decimated product may be one
    # shorter, the missing sample being exactly zero.
    th = (x.shape[-2] + k.shape[-2]) // 2
    tw = (x.shape[-1] + k.shape[-1]) // 2
    return F.pad(out, (0, tw - out.shape[-1], 0, th - out.shape[-2]))


def prop1_rhs(x: torch.Tensor, k: torch.Tensor, mode: str = "valid") -> torch.Tensor:
    r"""Right side of Proposition 1, literally:

    .. math:: \tfrac14\big[(x\otimes k)\downarrow_2 + \textstyle\sum_{d=1}^3 (x\otimes g_d)\downarrow_2\big]
    """
    conv = conv_valid if mode == "valid" else conv_full
    total = decimate(conv(x, k))
    for g in qmf_filters(k):
        total = total + decimate(conv(x, g))
    return total / 4.0


def cross_scale_target(x_fine: torch.Tensor, k_fine: torch.Tensor) -> torch.Tensor:
    r"""Right-hand side of :math:`L_{cross}`, aligned with cell-centred coarse grids.

    Proposition 1 holds for each of the four decimation phases ``a`` of the
    output; summing its right side over the QMF filters keeps only the even
    taps of the kernel, so for phase ``a``

    .. math:: (x\otimes k)\downarrow_2^{a} + \textstyle\sum_d (x\otimes g_d)\downarrow_2^{a}
              = 4\,(x\downarrow_2^{a})\otimes(k\downarrow_2).

    Averaging the four phases puts the samples at the centres of the 2×2
    blocks, i.e. exactly on the coarse, cell-centred grid where the image
    generator is evaluated at scale ``s+1`` (see :mod:`cbid_meta.generators.grids`).
    The average of ``x↓2^a`` over the phases is the 2×2 block mean, so the
    target costs one small convolution:

    .. math:: T = (\mathrm{avgpool}_2\, x^{(s)}) \otimes (4\, k^{(s)}\downarrow_2).

    ``k_fine`` must have an odd size ``K ≡ 1 (mod 4)`` so that its even taps
    sit on the coarse kernel lattice centred at 0; an odd-sized ``x_fine``
    loses its last row/column (the pooling floors, as the coarse grid does).
    """
    assert k_fine.shape[-1] % 4 == 1 and k_fine.shape[-2] % 4 == 1, "kernel size must be 1 mod 4"
    x_pool = F.avg_pool2d(x_fine, 2)
    return conv_valid(x_pool, 4.0 * decimate(k_fine))


def cross_scale_prediction(x_fine: torch.Tensor, k_fine: torch.Tensor, x_coarse: torch.Tensor, k_coarse: torch.Tensor,
                           model: str = "conv") -> torch.Tensor:
    r"""The published cross-scale prediction of the coarser observation :math:`y^{(s+1)} = y^{(s)}\downarrow_2`.

    Proposition 1 rearranged, with kernels that sum to 1 at *both* scales:

    .. math:: (x^{(s)}\otimes k^{(s)})\downarrow_2 \;=\; 4\,m\,\big(x^{(s+1)}\otimes k^{(s+1)}\big)
              \;-\; \textstyle\sum_{d=1}^{3}\big(x^{(s)}\otimes g_d^{(s)}\big)\downarrow_2,
              \qquad m = \textstyle\sum k^{(s)}\downarrow_2,

    exact when :math:`x^{(s+1)}` is :math:`x^{(s)}` decimated at the phase that
    meets the even taps and :math:`k^{(s+1)} = k^{(s)}\downarrow_2 / m`.  The
    paper writes the factor 4 for an un-normalised :math:`k^{(s+1)} =
    k^{(s)}\downarrow_2`; since our (and the authors') kernel generator
    normalises every scale by a softmax, the factor becomes :math:`4m` (≈ 1 for
    a kernel spread over many taps, 4 for a delta on an even tap).

    ``model = "corr"`` (the published method, as the authors' code): ``⊗`` is
    :func:`corr_valid` and ``↓2`` is :func:`decimate_floor`; the even taps meet
    the image at phase 0 for every kernel size, so the coarse grid is the
    generator's own (phase-0) grid.  ``model = "conv"``: true convolution and
    :func:`decimate`; the coarse image then stands for the fine one decimated at
    phase ``(K - 1) mod 2`` (misregistered by one fine pixel for even ``K``).
    """
    if model == "corr":
        blur, down = corr_valid, decimate_floor
    elif model == "conv":
        blur, down = conv_valid, decimate
    else:
        raise ValueError(f"unknown blur model {model!r} (choose conv or corr)")
    m = decimate(k_fine).sum(dim=(-2, -1), keepdim=True)
    pred = 4.0 * m * blur(x_coarse, k_coarse)
    for g in qmf_filters(k_fine):
        pred = pred - down(blur(x_fine, g))
    return pred
