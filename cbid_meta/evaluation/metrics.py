r"""Image and kernel quality metrics under the Levin et al. evaluation protocol.

The protocol is the one of Levin, Weiss, Durand & Freeman, "Understanding and
evaluating blind deconvolution algorithms" (CVPR 2009), as implemented in the
MATLAB routine ``comp_upto_shift.m`` and called by SelfDeblur's (Ren et al.,
CVPR 2020) Levin evaluation script ``statistic_levin.m``, which most later
blind-deblurring papers reuse:

1. crop ``crop = 15`` pixels from every border of the ground truth ``x``;
2. for every sub-pixel translation :math:`(d_y, d_x)` on the grid
   :math:`\{-s, -s+\delta, \dots, s\}^2` (``maxshift`` :math:`s`,
   ``step`` :math:`\delta = 1/4`), bilinearly resample the estimate
   :math:`\hat x` at the translated grid,
   :math:`\hat x_{d}[i, j] = \hat x(i + d_y,\, j + d_x)`, and take the same crop;
3. keep the translation minimising the sum of squared errors
   :math:`\mathrm{SSE}(d) = \sum_{i,j \in \Omega} (\hat x_d[i,j] - x[i,j])^2`
   (:math:`\Omega` the cropped window);
4. report PSNR / SSIM of the aligned crop against the cropped truth.

Blind deconvolution recovers the image only up to a translation (the kernel
and the image can be shifted in opposite directions without changing the
blur), hence the alignment.

Two search ranges
-----------------
``maxshift = 10`` (:data:`MAXSHIFT`, the default of every function here) is
the setting of ``statistic_levin.m``, the script behind the Levin tables of
SelfDeblur and of the papers that follow it (81 x 81 shifts).
``maxshift = 5`` (:data:`MAXSHIFT_LEVIN`) is the default of Levin's original
``comp_upto_shift`` (41 x 41 shifts); :func:`levin_scores` and
:func:`levin_row_scores` report it beside the default as ``psnr_shift5``,
from the same search (the 5-px grid is a subset of the 10-px one, so
``psnr_shift5 <= psnr``).

Ten pixels is the default because blind outputs are often translated by
more than five.  A blind method that keeps its kernel estimate centred on
its centroid moves the image by the true kernel's centroid offset, and
Levin's kernels are off-centre in their arrays; even the true kernel's own
non-blind deconvolution of ``im2_kernel2`` needs a translation of
(1.25, -4.75) px, and that of ``im3_kernel6`` (-5, 5.25) px.  With a 5-px
range such outputs are scored at a misalignment rather than at their
quality (``im3_kernel6``'s true-kernel deconvolution: 38.6 dB at 10 px,
35.4 dB at 5), so ``psnr_shift5`` is a lower bound kept for comparison
with tables scored that way.

The benchmark tables (``cbid bench``, ``cbid compare``,
``benchmarks/levin_core.py``, ``benchmarks/levin_paper.py``) report
``psnr`` (10 px), ``psnr_shift5`` (5 px), and SSIM and the error ratio from
the 10-px alignment (:func:`levin_row_scores`).

All functions take gray ``H x W`` arrays, converted to ``float64``, with
intensities in ``[0, 1]``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import fft as _fft
from scipy.signal import correlate
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..physics import fit_support

__all__ = [
    "MAXSHIFT",
    "MAXSHIFT_LEVIN",
    "align_upto_shift",
    "psnr",
    "ssim",
    "levin_scores",
    "levin_row_scores",
    "error_ratio",
    "kernel_similarity",
]

#: Search range (px) of the default Levin score: SelfDeblur's ``statistic_levin.m``.
MAXSHIFT: float = 10.0
#: Search range (px) of Levin's original ``comp_upto_shift``: the ``psnr_shift5`` column.
MAXSHIFT_LEVIN: float = 5.0


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


def _check_pair(estimate, truth, crop) -> tuple[np.ndarray, np.ndarray, int]:
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
    return e, t, crop


class _ShiftSearch:
    r"""SSE of every translation of the grid, and exact minimisers over sub-ranges.

    For each distinct fractional pair ``(f_y, f_x)`` the estimate is resampled
    once (:func:`_bilinear_frac`); the SSE of all its integer translations
    ``n`` is then :math:`\sum_\Omega B_n^2 - 2 \sum_\Omega B_n x + \sum_\Omega x^2`,
    the first term from an integral image, the second a cross-correlation
    (FFTs).  These values are exact up to rounding; the minimiser is then
    decided on the exact SSE (direct sum over the crop) of every translation
    within a rounding tolerance of the smallest value, with ties broken in
    favour of the first translation in row-major order of the grid.  The
    result is the one of a direct search over every translation.
    """

    def __init__(self, e: np.ndarray, t: np.ndarray, crop: int, maxshift: float, step: float):
        self.grid = _shift_grid(maxshift, step)
        self.step = float(step)
        h, w = t.shape
        splits = [_split(float(d)) for d in self.grid]
        self.n = np.array([n for n, _ in splits])
        self.f = np.array([f for _, f in splits])
        m = int(np.abs(self.n).max())  # integer parts n = floor(d) lie in [-m, m]
        self.pad = pad = m + 1
        self.ep = np.pad(e, pad, mode="edge")
        self.crop = crop
        self.tc = tc = t[crop : h - crop, crop : w - crop]
        ch, cw = tc.shape
        fracs = sorted(set(self.f.tolist()))
        tt = float(np.einsum("ij,ij->", tc, tc))
        bh, bw = ch + 2 * m, cw + 2 * m
        shape = (_fft.next_fast_len(bh, real=True), _fft.next_fast_len(bw, real=True))
        tf = np.conj(_fft.rfft2(tc, s=shape))
        g = len(self.grid)
        self.approx = np.empty((g, g))
        scale = tt
        r0 = crop + pad - m
        self._pf: dict[tuple[float, float], np.ndarray] = {}
        for fy in fracs:
            iy = np.nonzero(self.f == fy)[0]
            rows = (1.0 - fy) * self.ep[:-1] + fy * self.ep[1:] if fy else self.ep[:-1]
            for fx in fracs:
                ix = np.nonzero(self.f == fx)[0]
                pf = (1.0 - fx) * rows[:, :-1] + fx * rows[:, 1:] if fx else rows[:, :-1]
                b = pf[r0 : r0 + bh, r0 : r0 + bw]
                # cross[a, c] = sum_ij b[a + i, c + j] tc[i, j], a, c in [0, 2m] (no wrap-around)
                cross = _fft.irfft2(_fft.rfft2(b, s=shape) * tf, s=shape)[: 2 * m + 1, : 2 * m + 1]
                q = np.zeros((bh + 1, bw + 1))
                q[1:, 1:] = np.cumsum(np.cumsum(b * b, axis=0), axis=1)
                s2 = q[ch:, cw:] - q[:-ch, cw:] - q[ch:, :-cw] + q[:-ch, :-cw]
                vals = s2 - 2.0 * cross + tt
                self.approx[np.ix_(iy, ix)] = vals[np.ix_(self.n[iy] + m, self.n[ix] + m)]
                scale = max(scale, float(s2.max()))
        self.tol = 1e-9 * scale + 1e-12

    def pf(self, fy: float, fx: float) -> np.ndarray:
        key = (fy, fx)
        if key not in self._pf:
            self._pf[key] = _bilinear_frac(self.ep, fy, fx)
        return self._pf[key]

    def window(self, i: int, j: int) -> np.ndarray:
        """The estimate at grid translation ``(grid[i], grid[j])``, cropped."""
        pf = self.pf(float(self.f[i]), float(self.f[j]))
        r0, c0 = self.crop + int(self.n[i]) + self.pad, self.crop + int(self.n[j]) + self.pad
        ch, cw = self.tc.shape
        return pf[r0 : r0 + ch, c0 : c0 + cw]

    def best(self, limit: float) -> tuple[float, float, float, np.ndarray]:
        """``(sse, dy, dx, aligned_crop)`` minimising the SSE over ``|d_y|, |d_x| <= limit``."""
        nlim = int(round(limit / self.step))
        inside = np.abs(np.round(self.grid / self.step)) <= nlim
        idx = np.nonzero(inside)[0]
        sub = self.approx[np.ix_(idx, idx)]
        cand = np.argwhere(sub <= sub.min() + 2.0 * self.tol)  # row-major order
        best = None
        for a, c in cand:
            i, j = int(idx[a]), int(idx[c])
            diff = self.window(i, j) - self.tc
            sse = float(np.einsum("ij,ij->", diff, diff))
            if best is None or sse < best[0]:  # row-major tie-break: the first wins on equality
                best = (sse, i, j)
        sse, i, j = best
        return sse, float(self.grid[i]), float(self.grid[j]), self.window(i, j).copy()


def align_upto_shift(
    estimate: np.ndarray,
    truth: np.ndarray,
    crop: int = 15,
    maxshift: float = MAXSHIFT,
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
    ``step = 0.25``) and the SSE of all its integer translations comes from
    one FFT cross-correlation; the few translations within rounding of the
    minimum are then compared on their exact SSE.  The 6561 shifts of a
    255 x 255 Levin image at ``maxshift = 10`` take a few tens of
    milliseconds.

    Parameters
    ----------
    estimate, truth : (H, W) arrays
        Estimated and ground-truth images in ``[0, 1]``, same shape.
    crop : int
        Pixels removed from each border of the truth before comparison.
    maxshift : float
        Largest absolute translation searched along each axis, in pixels
        (default :data:`MAXSHIFT` = 10; Levin's original range is 5).
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
    e, t, crop = _check_pair(estimate, truth, crop)
    search = _ShiftSearch(e, t, crop, maxshift, step)
    _, dy, dx, aligned = search.best(maxshift)
    return aligned, search.tc.copy(), (dy, dx)


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
    maxshift: float = MAXSHIFT,
    step: float = 0.25,
) -> dict:
    """PSNR / SSIM of ``estimate`` after :func:`align_upto_shift` (Levin protocol).

    Returns
    -------
    dict
        ``psnr`` (dB), ``ssim``, ``shift`` (the best ``(dy, dx)``) and
        ``sse`` (sum of squared errors over the aligned crop), all at
        ``maxshift``; ``psnr_shift5`` and ``shift5``: the PSNR and best
        translation within :data:`MAXSHIFT_LEVIN` = 5 px, from the same
        search (Levin's original range; never above ``psnr`` when
        ``maxshift >= 5``).
    """
    e, t, crop = _check_pair(estimate, truth, crop)
    search = _ShiftSearch(e, t, crop, max(float(maxshift), MAXSHIFT_LEVIN), step)
    sse, dy, dx, aligned = search.best(maxshift)
    tc = search.tc
    out = {"psnr": psnr(aligned, tc), "ssim": ssim(aligned, tc), "shift": (dy, dx), "sse": sse}
    sse5, dy5, dx5, aligned5 = search.best(MAXSHIFT_LEVIN)
    p5 = out["psnr"] if (dy5, dx5) == (dy, dx) else psnr(aligned5, tc)
    if maxshift >= MAXSHIFT_LEVIN:  # the 5-px grid is a subset: rounding in the MSE must not reorder them
        p5 = min(p5, out["psnr"])
    out["psnr_shift5"], out["shift5"] = p5, (dy5, dx5)
    return out


def _sse(image: np.ndarray, truth: np.ndarray, crop: int, maxshift: float, step: float) -> float:
    e, t, crop = _check_pair(image, truth, crop)
    return _ShiftSearch(e, t, crop, maxshift, step).best(maxshift)[0]


def _ratio(sse_est: float, sse_ref: float) -> float:
    if sse_ref == 0.0:
        return 1.0 if sse_est == 0.0 else math.inf
    return sse_est / sse_ref


def error_ratio(
    estimate: np.ndarray,
    truth: np.ndarray,
    reference: np.ndarray,
    crop: int = 15,
    maxshift: float = MAXSHIFT,
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
    taken after :func:`align_upto_shift` with the same ``maxshift`` (each
    image aligned separately).
    """
    return _ratio(_sse(estimate, truth, crop, maxshift, step), _sse(reference, truth, crop, maxshift, step))


def levin_row_scores(
    estimate: np.ndarray,
    truth: np.ndarray,
    reference: np.ndarray | None = None,
    crop: int = 15,
    step: float = 0.25,
) -> dict:
    """The Levin columns of a results table for one estimate.

    ``psnr`` at :data:`MAXSHIFT` (10 px), ``psnr_shift5`` at
    :data:`MAXSHIFT_LEVIN` (5 px), ``ssim``, ``shift`` (``(dy, dx)``) and
    ``sse`` from the 10-px alignment, ``shift5``, and ``error_ratio``
    against ``reference`` (the true kernel's non-blind deconvolution),
    aligned the same way at 10 px (NaN without a reference).
    """
    out = levin_scores(estimate, truth, crop=crop, maxshift=MAXSHIFT, step=step)
    out["error_ratio"] = math.nan if reference is None else _ratio(out["sse"], _sse(reference, truth, crop, MAXSHIFT, step))
    return out


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
