r"""Kernel estimator ``l0_map``: coarse-to-fine alternating MAP with an L0 gradient prior.

This is the classical estimator a practitioner tries first (Xu, Zheng & Jia, CVPR 2013,
"Unnatural L0 sparse representation"; Pan et al., CVPR 2014, in its
gradient-only form).  At every level of a √2 image pyramid it alternates

* **image step** — :math:`\min_x \|k\otimes x - y\|^2 + \lambda\|\nabla x\|_0`
  by half-quadratic splitting (hard-thresholded auxiliary gradients, an FFT
  solve per β, β doubling from 2λ to ``beta_max``);
* **kernel step** — :math:`\min_k \|\nabla x\otimes k - \nabla y\|^2 + \gamma\|k\|^2`
  on the support by conjugate gradients, then non-negativity, removal of taps
  below ``prune`` × max, removal of the 8-connected pieces of the kernel
  holding less than ``component_mass`` of its mass (Pan et al.'s clean-up:
  a motion path is one connected curve) and renormalisation to sum 1;

with λ shrinking by 1/1.1 per iteration, and the kernel is upsampled to the
next finer level.  The final image is the hyper-Laplacian non-blind
deconvolution with the estimated kernel, the same final step as the fast
recipe of the INR method, so the two estimators differ only in the kernel.

Everything is periodic (FFT) on a symmetric-padded, edge-tapered canvas.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.fft import next_fast_len
from scipy.sparse.linalg import LinearOperator, cg
from skimage.transform import resize

from ..physics import centre_kernel, downscale, fit_support, gradient_otfs, observation_pyramid, psf2otf
from .nonblind import deconvolve, pad_and_taper

__all__ = ["L0Config", "l0_kernel", "l0_deblur", "trim_support", "refine_kernel", "drop_small_components", "salient_threshold"]


@dataclass
class L0Config:
    kernel_size: int = 31
    levels_ratio: float = 2**0.5
    iters: int = 10
    lam: float = 4e-3
    lam_min: float = 1e-4
    gamma: float = 2.0
    beta_max: float = 1e5
    prune: float = 0.05
    nonblind_lam: float = 5000.0
    cg_iters: int = 20  # >0: kernel least squares on the support by conjugate gradients (else unconstrained Fourier + crop)
    component_mass: float = 0.1  # >0: drop 8-connected kernel pieces holding less than this fraction of the mass
    salient: float = 0.0  # >0: kernel step on salient latent gradients only (Pan et al.'s threshold_pxpy rule, at least salient × kernel size pixels per orientation); 0 = all gradients


def _l0_image(Y: np.ndarray, K: np.ndarray, Dx: np.ndarray, Dy: np.ndarray, lam: float, beta_max: float) -> np.ndarray:
    """L0-gradient restoration on the periodic canvas (all arrays are spectra)."""
    num0 = np.conj(K) * Y
    den_k = np.abs(K) ** 2
    den_d = np.abs(Dx) ** 2 + np.abs(Dy) ** 2
    x = np.real(np.fft.ifft2(Y))
    beta = 2.0 * lam
    while beta < beta_max:
        Xs = np.fft.fft2(x)
        gx = np.real(np.fft.ifft2(Dx * Xs))
        gy = np.real(np.fft.ifft2(Dy * Xs))
        small = gx**2 + gy**2 < lam / beta
        gx[small] = 0.0
        gy[small] = 0.0
        X = (num0 + beta * (np.conj(Dx) * np.fft.fft2(gx) + np.conj(Dy) * np.fft.fft2(gy))) / (den_k + beta * den_d)
        x = np.real(np.fft.ifft2(X))
        beta *= 2.0
    return x


def drop_small_components(k: np.ndarray, min_mass: float) -> np.ndarray:
    """Zero the 8-connected pieces of the non-negative kernel ``k`` whose taps sum
    to less than ``min_mass`` × its total, renormalise to sum 1 (the largest
    piece is always kept)."""
    from scipy import ndimage

    k = np.asarray(k, dtype=np.float64).copy()
    total = k.sum()
    labels, n = ndimage.label(k > 0, structure=np.ones((3, 3)))
    if n > 1 and total > 0:
        mass = np.asarray(ndimage.sum(k, labels, index=np.arange(1, n + 1))) / total
        small = mass < min_mass
        small[int(np.argmax(mass))] = False
        k[np.isin(labels, np.flatnonzero(small) + 1)] = 0.0
    return k / max(k.sum(), 1e-30)


def salient_threshold(y: np.ndarray, psf_size: int, r: float = 20.0) -> float:
    """Pan et al.'s (after Cho & Lee) initial gradient threshold: the largest
    squared-gradient magnitude t such that each of the four orientation bins
    of the forward differences of ``y`` holds at least max(r × ``psf_size``, 10)
    pixels with |∇y|² ≥ t (0 when a bin is too small: no thresholding)."""
    y = np.asarray(y, dtype=np.float64)
    px = y[:-1, 1:] - y[:-1, :-1]
    py = y[1:, :-1] - y[:-1, :-1]
    pm = px**2 + py**2
    with np.errstate(divide="ignore", invalid="ignore"):
        pd = np.arctan(py / px)
    q = np.pi / 4
    need = int(max(r * psf_size, 10))
    t = np.inf
    for lo, hi in ((0, q), (q, 2 * q), (-q, 0), (-2 * q, -q)):
        v = pm[(pd >= lo) & (pd < hi)]
        if v.size < need:
            return 0.0
        t = min(t, float(np.partition(v, v.size - need)[v.size - need]))
    return t


def _salient_gradients(X: np.ndarray, Dx, Dy, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Spectra of the latent gradients with |∇x|² below ``threshold`` zeroed
    (the threshold is lowered by 0.81 until some gradient survives)."""
    gx, gy = np.real(np.fft.ifft2(Dx * X)), np.real(np.fft.ifft2(Dy * X))
    pm = gx**2 + gy**2
    while threshold > 0 and not (pm >= threshold).any():
        threshold *= 0.81
    m = pm < threshold
    gx[m] = 0.0
    gy[m] = 0.0
    return np.fft.fft2(gx), np.fft.fft2(gy)


def _kernel_step(x: np.ndarray, yp: np.ndarray, Dx, Dy, size: int, gamma: float, prune: float, k_prev: np.ndarray | None = None, cg_iters: int = 0, component_mass: float = 0.0, threshold: float = 0.0) -> np.ndarray:
    X, Yf = np.fft.fft2(x), np.fft.fft2(yp)
    Xx, Xy = _salient_gradients(X, Dx, Dy, threshold) if threshold > 0 else (Dx * X, Dy * X)
    Yx, Yy = Dx * Yf, Dy * Yf
    num = np.conj(Xx) * Yx + np.conj(Xy) * Yy
    M = np.abs(Xx) ** 2 + np.abs(Xy) ** 2
    c = (size - 1) // 2

    def crop(F):  # adjoint of psf2otf (odd size: tap c at the origin): the support's taps of a spectrum
        return np.roll(np.real(np.fft.ifft2(F)), (c, c), axis=(0, 1))[:size, :size]

    if cg_iters > 0 and k_prev is not None and k_prev.shape == (size, size):
        # least squares restricted to the support (Pan et al.'s conjugate gradients): (crop M psf2otf + γ) k = crop num
        n = size * size

        def normal(v):
            k = v.reshape(size, size)
            return (crop(M * psf2otf(k, yp.shape)) + gamma * k).ravel()

        sol, _ = cg(LinearOperator((n, n), matvec=normal, dtype=np.float64), crop(num).ravel(), x0=k_prev.ravel().copy(),
                    rtol=0.0, atol=1e-10, maxiter=cg_iters)
        k = sol.reshape(size, size)
    else:
        k = crop(num / (M + gamma)).copy()
    k[k < 0] = 0.0
    if k.max() <= 0:
        k = np.zeros((size, size))
        k[c, c] = 1.0
        return k
    k[k < prune * k.max()] = 0.0
    if component_mass > 0:
        return drop_small_components(k, component_mass)
    return k / k.sum()


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1


def l0_kernel(y: np.ndarray, config: L0Config | None = None, k_init: np.ndarray | None = None, levels: int | None = None) -> np.ndarray:
    """Estimate the blur kernel of the gray image ``y`` (float in [0, 1]).

    ``k_init`` starts the alternation from a given kernel (any odd size; it
    sets the support) on the ``levels`` finest pyramid levels only (default
    all): this is how the INR method's kernel is refined
    (:func:`refine_kernel`)."""
    cfg = config or L0Config()
    y = np.asarray(y, dtype=np.float64)
    size = _odd(cfg.kernel_size if k_init is None else k_init.shape[0])
    full_levels = max(1, int(np.ceil(np.log(size / 3.0) / np.log(cfg.levels_ratio))) + 1)
    n_levels = full_levels if levels is None else max(1, min(full_levels, levels))
    k = None if k_init is None else np.asarray(k_init, dtype=np.float64)
    lam = cfg.lam
    threshold0 = 0.0
    if cfg.salient > 0:
        # Pan et al.: estimated once, on the blurry image at the coarsest level of
        # the full pyramid; every level restarts from it and divides it by 1.1 per iteration
        sc = cfg.levels_ratio ** (-(full_levels - 1))
        threshold0 = salient_threshold(downscale(y, sc), _odd(size * sc), cfg.salient)
    pyramid = observation_pyramid(y, n_levels - 1, "resize", cfg.levels_ratio)
    for level in range(n_levels - 1, -1, -1):
        ks = _odd(size * cfg.levels_ratio ** (-level)) if level else size
        ys = pyramid[level]
        if k is None:
            k = np.zeros((ks, ks))
            c = ks // 2
            k[c, c] = k[c, c + 1] = 0.5
        else:
            k = np.clip(resize(k, (ks, ks), order=1), 0.0, None)
            k = k / max(k.sum(), 1e-12)
        pad = ks + (next_fast_len(max(ys.shape) + 2 * ks) - max(ys.shape) - 2 * ks + 1) // 2
        yp, _ = pad_and_taper(ys, k, pad=pad)
        Dx, Dy = gradient_otfs(yp.shape)
        Y = np.fft.fft2(yp)
        lam_l, thr = lam, threshold0
        for _ in range(cfg.iters):
            x = _l0_image(Y, psf2otf(k, yp.shape), Dx, Dy, lam_l, cfg.beta_max)
            k = _kernel_step(x, yp, Dx, Dy, ks, cfg.gamma, cfg.prune, k, cfg.cg_iters, cfg.component_mass, thr)
            lam_l = max(lam_l / 1.1, cfg.lam_min)
            thr /= 1.1
    return centre_kernel(k)  # the blind problem is translation-ambiguous: keep the restored image registered with the input


def trim_support(k: np.ndarray, thresh: float = 0.05, margin: int = 2) -> np.ndarray:
    """Centre ``k`` and cut it to the smallest odd square holding every tap above
    ``thresh`` × max, plus ``margin`` px (never larger than ``k``); sums to 1."""
    k = centre_kernel(np.asarray(k, dtype=np.float64))
    c = k.shape[0] // 2
    yy, xx = np.nonzero(k > thresh * k.max())
    r = min(int(max(np.abs(yy - c).max(), np.abs(xx - c).max())) + margin, c)
    k = fit_support(k, (2 * r + 1, 2 * r + 1))
    return k / k.sum()


def refine_kernel(y: np.ndarray, k_init: np.ndarray, levels: int = 2, iters: int = 10, trim: float = 0.0, config: L0Config | None = None) -> np.ndarray:
    """Polish a kernel estimate by L0 alternating MAP started from it.

    ``y``: gray image in [0, 1]; ``k_init``: odd square kernel (its size is the
    support, or — with ``trim`` > 0 — it is first cut by :func:`trim_support`);
    the alternation runs on the ``levels`` finest levels of the √2 pyramid with
    ``iters`` iterations each.  Returns a centred kernel of the input's size."""
    n = k_init.shape[0]
    k = trim_support(k_init, trim) if trim > 0 else np.asarray(k_init, dtype=np.float64)
    cfg = replace(config or L0Config(), iters=iters)
    return fit_support(l0_kernel(y, cfg, k_init=k, levels=levels), (n, n))


def l0_deblur(y: np.ndarray, kernel_size: int = 31, config: L0Config | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blind deblurring of a gray image: ``(image, kernel)``."""
    cfg = config or L0Config(kernel_size=kernel_size)
    cfg.kernel_size = kernel_size
    k = l0_kernel(y, cfg)
    return deconvolve(np.asarray(y, dtype=np.float64), k, lam=cfg.nonblind_lam), k
