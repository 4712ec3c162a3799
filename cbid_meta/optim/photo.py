"""Real photographs: colour, large images, automatic kernel size, noise level.

* **Colour** — the kernel is estimated once on the luminance (ITU-R 601 Y),
  then every channel is restored with it by hyper-Laplacian non-blind
  deconvolution (a normalised kernel preserves each channel's mean, so the
  colour balance is kept).
* **Large images** — above ``fast_above_mp`` megapixels (2) the channels are
  restored with a regularised Wiener filter instead of the hyper-Laplacian
  solver (one FFT solve per tile instead of ~11 continuation steps; see
  ``docs/photos.md`` for the one-off timing behind the switch); the kernel is estimated on a crop (``estimate_side``
  pixels, default 384) chosen automatically where the luminance has the most
  gradient energy away from clipped highlights, or on a region the user
  gives; the full image is then restored tile by tile (overlapping tiles
  blended with linear ramps), so memory is bounded by the tile size, not
  the photo size.
* **Kernel size ``auto``** — a coarse-scale search: the L0 baseline's kernel
  estimator runs on a 2× downscaled crop with a generous support, and the
  support that holds 99% of the estimated kernel's mass (plus a margin) is
  the choice, recorded in the result.
* **Noise** — ``noise`` σ, or ``"auto"``: the median absolute deviation of the
  finest diagonal Haar detail (Donoho's estimator); the non-blind weight is
  scaled so that the data term keeps its relative strength as σ grows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..config import RestorationConfig
from ..errors import InputError
from ..physics import forward_differences
from ..pipeline.l0_map import L0Config, l0_kernel
from ..pipeline.restoration import restore

__all__ = ["luminance", "choose_region", "check_region", "parse_noise", "estimate_noise", "auto_kernel_size", "acorr_kernel_size", "KERNEL_SIZE_METHODS", "kernel_edge_mass", "edge_note", "PhotoResult", "deblur_photo"]


def parse_noise(noise) -> float | str | None:
    """``--noise``: σ in [0, 0.5), ``"auto"`` (estimated), or None / ``"none"`` (the recipe's weight as is)."""
    if noise is None or noise == "none":
        return None
    if noise == "auto":
        return "auto"
    try:
        v = float(noise)
    except (TypeError, ValueError):
        raise InputError(f"--noise must be a number (sigma in [0, 0.5)), 'auto' or 'none', got '{noise}'") from None
    if not 0 <= v < 0.5:
        raise InputError(f"--noise must be in [0, 0.5), got {noise}")
    return v


def check_region(region, h: int, w: int) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` as integers, inside an ``h × w`` image."""
    t, l, rh, rw = (int(v) for v in region)
    if t < 0 or l < 0 or rh < 1 or rw < 1 or t + rh > h or l + rw > w:
        raise InputError(f"--region {t},{l},{rh},{rw} is not inside the {h}x{w} image (top,left,height,width)")
    return t, l, rh, rw


def luminance(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[:, :, 0]
    return img[:, :, :3] @ np.array([0.299, 0.587, 0.114])


def choose_region(lum: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the ``side``² window with the most gradient energy
    (pixels within 2% of clipping are ignored: saturated blobs break the blur model)."""
    h, w = lum.shape
    sh, sw = min(side, h), min(side, w)
    if sh == h and sw == w:
        return 0, 0, h, w
    gy = np.zeros_like(lum)
    gx = np.zeros_like(lum)
    gx[:, 1:], gy[1:] = forward_differences(lum)
    e = np.sqrt(gx**2 + gy**2)
    e[(lum > 0.98) | (lum < 0.02)] = 0.0
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    stride = max(8, min(sh, sw) // 8)
    best, arg = -1.0, (0, 0)
    for t in list(range(0, h - sh + 1, stride)) + [h - sh]:
        for l in list(range(0, w - sw + 1, stride)) + [w - sw]:
            v = ii[t + sh, l + sw] - ii[t, l + sw] - ii[t + sh, l] + ii[t, l]
            if v > best:
                best, arg = v, (t, l)
    return arg[0], arg[1], sh, sw


def estimate_noise(lum: np.ndarray) -> float:
    """σ from the median absolute deviation of the finest diagonal Haar coefficients."""
    h, w = (lum.shape[0] // 2) * 2, (lum.shape[1] // 2) * 2
    a = lum[:h, :w]
    hh = (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


#: ``--kernel-size auto`` estimators (``benchmarks/results/kernel_size_auto.md`` measures each)
KERNEL_SIZE_METHODS = ("peak", "mass", "acorr", "mass_acorr", "mass_acorr2", "vote")
DEFAULT_KERNEL_SIZE_METHOD = "mass_acorr"


def _coarse_kernel(lum: np.ndarray, support_max: int) -> np.ndarray:
    """The L0 estimator's kernel on a 2× downscaled 512-px crop (the region with most gradient energy)
    with a ``support_max``-tap support (about twice that at full resolution)."""
    from skimage.transform import rescale

    t, l, h, w = choose_region(lum, 512)
    small = rescale(lum[t : t + h, l : l + w], 0.5, anti_aliasing=True)
    support = int(min(support_max, (min(small.shape) // 3) | 1))
    if support < 5:
        raise InputError(f"image {lum.shape[0]}x{lum.shape[1]} is too small to estimate the kernel size; give --kernel-size")
    return l0_kernel(small, L0Config(kernel_size=support, iters=5))


def _mass_extent(k: np.ndarray, frac: float = 0.97) -> float:
    """Chebyshev radius about the centroid that holds ``frac`` of the kernel's mass."""
    k = np.asarray(k, dtype=np.float64)
    k = k / k.sum()
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
    cy, cx = float((k * yy).sum()), float((k * xx).sum())
    r = np.maximum(np.abs(yy - cy), np.abs(xx - cx)).ravel()
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(k.ravel()[order])
    return float(r[order][min(int(np.searchsorted(cum, frac)), len(cum) - 1)])


def acorr_kernel_size(lum: np.ndarray, rel: float = 0.1, reach: int = 40, lag: int = 0) -> int:
    """Support from the autocorrelation of the image gradients (odd).

    With sharp-image gradients roughly white, the autocorrelation of ``∇y`` is the
    kernel's autocorrelation, whose support is twice the kernel's.  The profile is
    the largest normalised autocorrelation on each Chebyshev ring (Hann-windowed
    image, zero-padded FFT); the kernel's half-extent is the last ring above the
    far-field level (rings 30–39) by ``rel`` of the way to the profile at ring ``lag``.

    ``lag=0`` measures against the zero-lag peak, which white noise raises (the
    difference of white noise correlates at lags 0 and 1 only), so noise shrinks
    the reading; ``lag=2`` measures against ring 2, where the noise has no share."""
    t, l, h, w = choose_region(lum, 512)
    y = lum[t : t + h, l : l + w]
    y = y - y.mean()
    win = np.outer(np.hanning(h), np.hanning(w))
    gx = np.diff(y, axis=1, append=y[:, -1:])
    gy = np.diff(y, axis=0, append=y[-1:])

    def spec(a):
        return np.abs(np.fft.rfft2(a * win, s=(2 * h, 2 * w))) ** 2

    r_ = np.fft.fftshift(np.fft.irfft2(spec(gx) + spec(gy), s=(2 * h, 2 * w)))
    r_ = r_ / r_[h, w]
    yy, xx = np.mgrid[: 2 * h, : 2 * w]
    ring = np.maximum(np.abs(yy - h), np.abs(xx - w))
    reach = min(reach, min(h, w) - 1)
    prof = np.array([r_[ring == i].max() for i in range(reach)])
    prof = prof / prof[lag]
    base = float(np.median(prof[max(reach - 10, 1) :]))
    idx = np.where((prof - base > rel * (1 - base)) & (np.arange(reach) >= lag))[0]
    return int(2 * (idx.max() if len(idx) else 1) + 1)


def auto_kernel_size(lum: np.ndarray, max_size: int = 61, method: str = DEFAULT_KERNEL_SIZE_METHOD) -> int:
    """Kernel support (odd, between 11 and ``max_size``) estimated from the blurry luminance.

    * ``"peak"``: the L0 baseline's estimator on a 2× downscaled crop with a 25-tap
      support (49 px at full resolution); the extent of the connected group of taps
      ≥ 10% of the peak, doubled back to full resolution, plus 4 px.
    * ``"mass"``: the same estimator with a 31-tap support (61 px); the radius about
      the kernel's centroid that holds 97% of its mass, doubled, plus 4 px.
    * ``"acorr"``: the gradient-autocorrelation size alone (:func:`acorr_kernel_size`).
    * ``"mass_acorr"`` (default): the smaller of ``"mass"`` and the gradient-autocorrelation
      size (:func:`acorr_kernel_size`); the L0 kernel spreads over the whole support on
      some images (over-estimates), the autocorrelation reads edges as blur on others —
      they rarely fail together.
    * ``"mass_acorr2"``: as ``"mass_acorr"``, with the autocorrelation profile measured
      against ring 2 instead of the zero-lag peak (``lag=2``, ``rel=0.2``): the noise's
      share of the peak no longer shrinks the reading (``house.jpg``: 37 px against 11),
      but textured images read larger (not the default: see ``docs/photos.md``).
    * ``"vote"``: the median of ``"peak"``, ``"mass"`` and the autocorrelation size: one
      estimator that fails either way (too small as well as too large) is outvoted.

    ``benchmarks/results/kernel_size_auto.md`` measures each against known kernels:
    give the size when you know it."""
    if method not in KERNEL_SIZE_METHODS:
        raise InputError(f"unknown kernel-size method '{method}' (choose {', '.join(KERNEL_SIZE_METHODS)})")
    if method == "peak":
        from scipy import ndimage

        k = _coarse_kernel(lum, 25)
        support = k.shape[0]
        lab, _ = ndimage.label(k >= 0.1 * k.max(), structure=np.ones((3, 3)))
        m = lab == lab.flat[int(np.argmax(k))]
        c = (support - 1) / 2
        yy, xx = np.mgrid[:support, :support]
        ext = max(np.abs(yy[m] - c).max(), np.abs(xx[m] - c).max())
        size = int(2 * np.ceil(2 * ext) + 1) + 4
    elif method == "acorr":
        size = acorr_kernel_size(lum)
    elif method == "vote":
        size = int(np.median([auto_kernel_size(lum, max_size, "peak"), auto_kernel_size(lum, max_size, "mass"), acorr_kernel_size(lum)]))
    else:
        size = int(2 * np.ceil(2 * _mass_extent(_coarse_kernel(lum, 31))) + 1) + 4
        if method == "mass_acorr":
            size = min(size, acorr_kernel_size(lum))
        elif method == "mass_acorr2":
            size = min(size, acorr_kernel_size(lum, rel=0.2, lag=2))
    size = max(11, min(max_size, size))
    return size if size % 2 else size + 1


#: share of an estimated kernel's mass within 2 px of its support's edge above which the support is probably too
#: small (Levin, both default pipelines, 64 kernels of at most 27 px in 31-px supports: at most 2.5 %; the real
#: photo house.jpg at 31 px, whose blur is wider: 5.5 %)
EDGE_MASS_WARN = 0.04


def kernel_edge_mass(kernel: np.ndarray, band: int = 2) -> float:
    """Share of the kernel's mass within ``band`` px of the edge of its support."""
    k = np.abs(np.asarray(kernel, dtype=np.float64))
    m = np.zeros(k.shape, dtype=bool)
    m[:band], m[-band:], m[:, :band], m[:, -band:] = True, True, True, True
    return float(k[m].sum() / max(k.sum(), 1e-12))


def edge_note(kernel: np.ndarray) -> str | None:
    """A note for the user when the estimated kernel reaches the edge of its support (the blur may be wider)."""
    share = kernel_edge_mass(kernel)
    if share <= EDGE_MASS_WARN:
        return None
    n = int(np.asarray(kernel).shape[0])
    return (f"the kernel has {share:.0%} of its mass within 2 px of the edge of its {n}-px support: "
            f"the blur may be wider; try --kernel-size {n + 10}")


@dataclass
class PhotoResult:
    image: np.ndarray
    kernel: np.ndarray
    estimate: object  # the DeblurResult of the kernel estimation
    info: dict
    seconds: float


def deblur_photo(
    img: np.ndarray,
    config,
    device: str = "cpu",
    init=None,
    region: tuple[int, int, int, int] | None = None,
    estimate_side: int = 384,
    noise: float | str | None = None,
    tile: int = 512,
    callback=None,
    fast_above_mp: float = 2.0,
    on_phase=None,
    kernel: np.ndarray | None = None,
) -> PhotoResult:
    """Kernel from the luminance of a crop, then full-resolution restoration of every channel.

    ``callback`` gets every INR step's record, ``on_phase(name)`` every later unit of work
    (a kernel candidate, a restored channel).  With ``kernel`` (sums to 1) nothing is
    estimated: the image is restored with that kernel."""
    from .deblur import Deblurrer

    t0 = time.perf_counter()
    img = np.asarray(img, dtype=np.float64)
    if img.ndim not in (2, 3) or img.size == 0:
        raise InputError(f"expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise InputError("image contains NaN or Inf values")
    lum = luminance(img)
    info: dict = {}
    if config.kernel_size in (0, None, "auto"):
        config.kernel_size = auto_kernel_size(lum)
        info["kernel_size_auto"] = config.kernel_size
    h, w = lum.shape
    t, l, rh, rw = check_region(region, h, w) if region is not None else choose_region(lum, estimate_side)
    info["region"] = [int(t), int(l), int(rh), int(rw)]
    sigma = parse_noise(noise)
    if sigma == "auto":
        sigma = estimate_noise(lum)
        info["noise_estimate"] = sigma
    lam = config.restoration.lam
    if sigma is not None and sigma > 0.005:
        # the recipe's weight is tuned for σ ≈ 0.005 (8-bit quantisation + mild noise);
        # weaker data term for noisier input keeps ringing down
        lam = lam * (0.005 / sigma) ** 2
    info["nonblind_lam"] = lam
    crop = lum[t : t + rh, l : l + rw]
    if kernel is not None:
        est, k = None, np.asarray(kernel, dtype=np.float64)
        info["kernel"] = "given"
    else:
        est = Deblurrer(config, device).run(crop.astype(np.float32), callback=callback, init=init, on_phase=on_phase)
        k = est.kernel
        info["kernel_edge_mass"] = kernel_edge_mass(k)
        if (note := edge_note(k)) is not None:
            info.setdefault("notes", []).append(note)
    if est is not None and (rh, rw) == (h, w) and img.ndim == 2 and (sigma is None or config.restoration.method == "inr"):
        out = est.image  # the estimation ran on the whole gray image: its own restoration (the generator's image for "inr")
        info["restoration"] = config.restoration.method
    else:  # the full image, every channel, by the tiled restorer
        rcfg = RestorationConfig(method="tiled", lam=lam, tile=tile, wiener_above_mp=fast_above_mp)
        out = np.clip(restore(img, k, rcfg, on_phase=on_phase), 0, 1).astype(np.float32)
        method = "wiener" if h * w > fast_above_mp * 1e6 else "hyperlaplacian"
        info["restoration"] = f"{method} non-blind" + (", tiled" if max(h, w) > tile + 64 else "")
    return PhotoResult(out, k, est, info, time.perf_counter() - t0)
