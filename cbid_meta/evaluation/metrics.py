r"""Image and kernel quality metrics under the Levin et al. evaluation protocol.

The protocol is the one of Levin, Weiss, Durand & Freeman, "Understanding and
evaluating blind deconvolution algorithms" (CVPR 2009), as implemented in the
MATLAB routine ``comp_upto_shift.m`` shipped with SelfDeblur (Ren et al.,
CVPR 2020) and reused by most later blind-deblurring papers:

1. crop ``crop = 15`` pixels from every border of the ground truth ``x``;
2. for every sub-pixel translation :math:`(d_y, d_x)` on the grid
   :math:`\{-s, -s+\delta, \dots, s\}^2` (``maxshift`` :math:`s = 5`,
   ``step`` :math:`\delta = 1/4`, i.e. :math:`41 \times 41` shifts),
   bilinearly resample the estimate :math:`\hat x` at the translated grid,
   :math:`\hat x_{d}[i, j] = \hat x(i + d_y,\, j + d_x)`, and take the same crop;
3. keep the translation minimising the sum of squared errors
   :math:`\mathrm{SSE}(d) = \sum_{i,j \in \Omega} (\hat x_d[i,j] - x[i,j])^2`
   (:math:`\Omega` the cropped window);
4. report PSNR / SSIM of the aligned crop against the cropped truth.

``maxshift`` defaults to 5 px, as in Levin's original ``comp_upto_shift.m`` (SelfDeblur's copy takes it as an argument, and most Python
ports, e.g. DeblurGAN / USRNet utilities, default to 5).  On Levin's data
5 px is needed: the true-kernel deconvolutions of the images blurred by
kernels 2 and 6 are translated by up to (-5, 5) px (see
:mod:`cbid_meta.pipeline.nonblind`), hence the 5 px default,
which makes numbers comparable with published Levin results.

Blind deconvolution recovers the image only up to a translation (the
kernel and the image can be shifted in opposite directions without changing
the blur), hence the alignment.

All functions take gray ``H x W`` arrays, converted to ``float64``, with
intensities in ``[0, 1]``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import correlate
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..physics import fit_support

__all__ = [
    "align_upto_shift",
    "psnr",
    "ssim",
    "levin_scores",
    "error_ratio",
    "kernel_similarity",
]


def _as_gray(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a gray H x W image, got shape {a.shape}")
    return a


def _shift_grid(maxshift: float, step: float) -> np.ndarray:
    """Symmetric grid ``step * (-n, ..., n)`` with ``n = round(maxshift / step)``."""
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if maxshift < 0:
        raise ValueError(f"maxshift must be >= 0, got {maxshift}")
    n = int(round(maxshift / step))
    return step * np.arange(-n, n + 1, dtype=np.float64)


def _split(d: float) -> tuple[int, float]:
    """``d = n + f`` with integer ``n = floor(d)`` and ``f`` in ``[0, 1)``."""
    n = math.floor(d + 1e-12)
    f = d - n
    if abs(f) < 1e-12:
        f = 0.0
    return n, f


def _bilinear_frac(ep: np.ndarray, fy: float, fx: float) -> np.ndarray:
    r"""Sample the padded estimate at ``(r + fy, c + fx)`` for every integer ``(r, c)``.

    Returns an array one row/column smaller than ``ep``:
    ``out[r, c] = (1-fy)(1-fx) e[r,c] + (1-fy) fx e[r,c+1] + fy (1-fx) e[r+1,c] + fy fx e[r+1,c+1]``.
    """
    rows = (1.0 - fy) * ep[:-1] + fy * ep[1:] if fy else ep[:-1]
    return (1.0 - fx) * rows[:, :-1] + fx * rows[:, 1:] if fx else rows[:, :-1]


def align_upto_shift(
    estimate: np.ndarray,
    truth: np.ndarray,
    crop: int = 15,
    maxshift: float = 5.0,
    step: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    r"""Align ``estimate`` to ``truth`` up to a sub-pixel translation (``comp_upto_shift``).

    Solves

    .. math::

        (d_y^*, d_x^*) = \arg\min_{d \in G \times G}
            \sum_{(i,j) \in \Omega} \big(\hat x(i + d_y, j + d_x) - x[i, j]\big)^2,

    where :math:`G = \{-s, -s+\delta, \dots, s\}` (``s = maxshift``,
    :math:`\delta` = ``step``), :math:`\Omega = [c, H-c) \times [c, W-c)` with
    ``c = crop``, and :math:`\hat x(\cdot)` is the bilinear interpolant of the
    estimate (the MATLAB ``interp2`` default).  Samples that fall outside the
    estimate use edge replication (the MATLAB code never samples there
    because ``crop > maxshift``).

    The search is exhaustive over the full grid (no coarse-to-fine
    approximation) and still fast: a translation ``d = n + f`` is split into
    an integer part ``n`` and a fractional part ``f``; the bilinear image is
    computed once per distinct fractional pair ``(f_y, f_x)`` (16 pairs for
    ``step = 0.25``) and the integer part is a mere slice.  The 625 shifts of
    a 255 x 255 Levin image take roughly 0.1 s.

    Parameters
    ----------
    estimate, truth : (H, W) arrays
        Estimated and ground-truth images in ``[0, 1]``, same shape.
    crop : int
        Pixels removed from each border of the truth before comparison.
    maxshift : float
        Largest absolute translation searched along each axis, in pixels.
    step : float
        Grid spacing of the search, in pixels.

    Returns
    -------
    aligned_crop : (H - 2 crop, W - 2 crop) array
        The estimate resampled at the best translation, cropped.
    truth_crop : (H - 2 crop, W - 2 crop) array
        The cropped ground truth.
    shift : (float, float)
        The best :math:`(d_y, d_x)`; ``aligned_crop[i, j] = estimate(i + crop + d_y, j + crop + d_x)``.
        If ``estimate = scipy.ndimage.shift(truth, (a, b))`` then the shift
        found is ``(a, b)``.  Ties are broken in favour of the first shift
        in row-major order of the grid (as MATLAB's ``find``).
    """
    e = _as_gray(estimate, "estimate")
    t = _as_gray(truth, "truth")
    if e.shape != t.shape:
        raise ValueError(
            f"estimate {e.shape} and truth {t.shape} must have the same shape "
            "(crop a larger latent estimate to the observation size first)"
        )
    crop = int(crop)
    h, w = t.shape
    if crop < 0 or 2 * crop >= min(h, w):
        raise ValueError(f"crop={crop} is invalid for an image of shape {t.shape}")
    grid = _shift_grid(maxshift, step)
    pad = int(math.ceil(float(maxshift))) + 1
    ep = np.pad(e, pad, mode="edge")
    tc = t[crop : h - crop, crop : w - crop]
    ch, cw = tc.shape

    splits = [_split(float(d)) for d in grid]
    fracs = sorted({f for _, f in splits})
    best = (np.inf, 0.0, 0.0)
    for fy in fracs:
        ys = [(d, n) for d, (n, f) in zip(grid, splits) if f == fy]
        rows = (1.0 - fy) * ep[:-1] + fy * ep[1:] if fy else ep[:-1]
        for fx in fracs:
            xs = [(d, n) for d, (n, f) in zip(grid, splits) if f == fx]
            pf = (1.0 - fx) * rows[:, :-1] + fx * rows[:, 1:] if fx else rows[:, :-1]
            for dy, ny in ys:
                r0 = crop + ny + pad
                band = pf[r0 : r0 + ch]
                for dx, nx in xs:
                    c0 = crop + nx + pad
                    diff = band[:, c0 : c0 + cw] - tc
                    sse = float(np.einsum("ij,ij->", diff, diff))
                    # row-major tie-break: smaller (dy, dx) wins on equality
                    if sse < best[0] or (sse == best[0] and (dy, dx) < (best[1], best[2])):
                        best = (sse, float(dy), float(dx))
    _, dy, dx = best
    ny, fy = _split(dy)
    nx, fx = _split(dx)
    pf = _bilinear_frac(ep, fy, fx)
    r0, c0 = crop + ny + pad, crop + nx + pad
    aligned = pf[r0 : r0 + ch, c0 : c0 + cw].copy()
    return aligned, tc.copy(), (dy, dx)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    r"""Peak signal-to-noise ratio :math:`10 \log_{10}(\mathrm{peak}^2 / \mathrm{MSE}(a, b))` in dB
    (scikit-image's ``peak_signal_noise_ratio`` with ``data_range = peak``).

    Returns ``inf`` for identical inputs.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if np.array_equal(a, b):
        return math.inf
    return float(peak_signal_noise_ratio(b, a, data_range=peak))


def ssim(a: np.ndarray, b: np.ndarray, gaussian: bool = False) -> float:
    r"""Structural similarity (Wang et al. 2004) with ``data_range = 1``.

    Uses :func:`skimage.metrics.structural_similarity` with its defaults:
    uniform 7 x 7 window, :math:`K_1 = 0.01`, :math:`K_2 = 0.03`, sample
    covariances, mean of the SSIM map.  This is our documented default.
    MATLAB's ``ssim`` (used by SelfDeblur's scripts) instead uses an
    11 x 11 Gaussian window with :math:`\sigma = 1.5` and population
    covariances; pass ``gaussian=True`` for that variant (values typically
    differ in the third decimal).
    """
    a = _as_gray(a, "a")
    b = _as_gray(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if gaussian:
        return float(
            structural_similarity(
                a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False,
            )
        )
    return float(structural_similarity(a, b, data_range=1.0))


def levin_scores(
    estimate: np.ndarray,
    truth: np.ndarray,
    crop: int = 15,
    maxshift: float = 5.0,
    step: float = 0.25,
) -> dict:
    """PSNR / SSIM of ``estimate`` after :func:`align_upto_shift` (Levin protocol).

    Returns
    -------
    dict
        ``psnr`` (dB), ``ssim``, ``shift`` (the best ``(dy, dx)``) and
        ``sse`` (sum of squared errors over the aligned crop).
    """
    aligned, tc, shift = align_upto_shift(estimate, truth, crop=crop, maxshift=maxshift, step=step)
    sse = float(np.sum((aligned - tc) ** 2))
    return {"psnr": psnr(aligned, tc), "ssim": ssim(aligned, tc), "shift": shift, "sse": sse}


def error_ratio(
    estimate: np.ndarray,
    truth: np.ndarray,
    reference: np.ndarray,
    crop: int = 15,
    maxshift: float = 5.0,
    step: float = 0.25,
) -> float:
    r"""Levin's error ratio :math:`\mathrm{SSD}(\hat x, x) / \mathrm{SSD}(x_{k^*}, x)`.

    Levin et al. (2009) measure a blind result by the ratio of sums of
    squared differences (SSD) between the deconvolved output and the truth,
    over the same ratio for the image deconvolved *non-blindly with the true
    kernel* :math:`k^*` (``reference``, see
    :func:`cbid_meta.pipeline.nonblind.deconvolve`).  A ratio of 1 means the
    blind estimate is as good as knowing the kernel; Levin's success curves
    count the fraction of images with ratio below 2, 3, ...  Both SSDs are
    taken after :func:`align_upto_shift` (each image aligned separately).
    """
    a, tc, _ = align_upto_shift(estimate, truth, crop=crop, maxshift=maxshift, step=step)
    r, tc2, _ = align_upto_shift(reference, truth, crop=crop, maxshift=maxshift, step=step)
    sse_est = float(np.sum((a - tc) ** 2))
    sse_ref = float(np.sum((r - tc2) ** 2))
    if sse_ref == 0.0:
        return 1.0 if sse_est == 0.0 else math.inf
    return sse_est / sse_ref


def kernel_similarity(k_est: np.ndarray, k_true: np.ndarray) -> dict:
    r"""Shift-invariant similarity of two blur kernels.

    Both kernels are normalised to unit sum and zero-padded (centred) to a
    common size :math:`S_h \times S_w`.  With :math:`c(\tau) = \sum_n a[n]\,
    b[n - \tau]` the full (zero-filled) cross-correlation over all integer
    lags :math:`\tau` (``scipy.signal.correlate(a, b, "full")``):

    .. math::

        \mathrm{NCC} = \max_\tau \frac{c(\tau)}{\|a\|_2 \|b\|_2}, \qquad
        \mathrm{MSE} = \frac{\|a\|_2^2 + \|b\|_2^2 - 2\,c(\tau^*)}{S_h S_w},

    i.e. the MSE is the squared difference between ``a`` and ``b`` translated
    by the best lag :math:`\tau^*` (nothing is lost at the borders: the sum
    runs over the whole plane), divided by the common support area.

    Returns
    -------
    dict
        ``ncc`` (in ``[-1, 1]``, 1 iff equal up to translation), ``mse`` and
        ``shift`` (the best lag :math:`\tau^* = (t_y, t_x)`: ``a[n] ≈ b[n - τ]``).
    """
    a = _as_gray(k_est, "k_est")
    b = _as_gray(k_true, "k_true")
    sa, sb = a.sum(), b.sum()
    if sa == 0 or sb == 0:
        raise ValueError("kernels must have a non-zero sum")
    a = a / sa
    b = b / sb
    shape = (max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1]))
    a = fit_support(a, shape)
    b = fit_support(b, shape)
    c = correlate(a, b, mode="full", method="direct" if a.size <= 4096 else "auto")
    idx = np.unravel_index(int(np.argmax(c)), c.shape)
    cmax = float(c[idx])
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    ncc = cmax / (na * nb)
    mse = max(na**2 + nb**2 - 2.0 * cmax, 0.0) / (shape[0] * shape[1])
    shift = (int(idx[0]) - (shape[0] - 1), int(idx[1]) - (shape[1] - 1))
    return {"ncc": float(ncc), "mse": float(mse), "shift": shift}
