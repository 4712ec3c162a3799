"""Tests for cbid_meta.evaluation (metrics, non-blind deconvolution, Levin loader)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import convolve2d, fftconvolve
from skimage import data

from cbid_meta.evaluation import (
    MAXSHIFT,
    MAXSHIFT_LEVIN,
    align_upto_shift,
    deconvolve,
    default_levin_root,
    error_ratio,
    kernel_similarity,
    levin_row_scores,
    levin_scores,
    load_levin,
    psnr,
    simple_wiener,
    ssim,
)


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    return data.camera()[60:316, 140:396].astype(np.float64) / 255.0  # 256 x 256


def _motion_kernel(size: int = 15) -> np.ndarray:
    """An asymmetric, off-centre 'camera shake' kernel summing to 1."""
    k = np.zeros((size, size))
    t = np.linspace(0.0, 1.0, 200)
    ys = 0.2 * size + 0.55 * size * t**2
    xs = 0.15 * size + 0.65 * size * t
    for y, x in zip(ys, xs):
        k[int(round(y)), int(round(x))] += 1.0
    k = ndimage.gaussian_filter(k, 0.6)
    return k / k.sum()


def test_identical_images(camera):
    assert psnr(camera, camera) == math.inf
    assert ssim(camera, camera) == pytest.approx(1.0)
    s = levin_scores(camera, camera)
    assert s["psnr"] == math.inf
    assert s["ssim"] == pytest.approx(1.0)
    assert s["shift"] == (0.0, 0.0)
    assert s["sse"] == 0.0


def test_psnr_value():
    a = np.zeros((10, 10))
    b = np.full((10, 10), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, b, peak=255.0) == pytest.approx(20.0 + 20.0 * math.log10(255.0))


@pytest.mark.parametrize("shift", [(1.25, -0.75), (-2.0, 3.0), (0.5, 0.25)])
def test_align_recovers_shift(camera, shift):
    moved = ndimage.shift(camera, shift, order=3, mode="nearest")
    aligned, tc, found = align_upto_shift(moved, camera)
    assert aligned.shape == tc.shape == (256 - 30, 256 - 30)
    assert abs(found[0] - shift[0]) <= 0.25 and abs(found[1] - shift[1]) <= 0.25
    assert psnr(aligned, tc) > 33.0
    # unaligned comparison is worse
    assert psnr(moved[15:-15, 15:-15], tc) < psnr(aligned, tc) - 3.0


def test_align_exact_integer_shift(camera):
    # an integer shift is undone exactly on the interior
    moved = ndimage.shift(camera, (-2.0, 3.0), order=1, mode="nearest")
    aligned, tc, found = align_upto_shift(moved, camera)
    assert found == (-2.0, 3.0)
    assert psnr(aligned, tc) == math.inf
    # larger search range and other grid steps work too
    _, _, found5 = align_upto_shift(np.roll(camera, (4, -5), axis=(0, 1)), camera, maxshift=5, step=0.5)
    assert found5 == (4.0, -5.0)  # same convention as scipy.ndimage.shift


def test_align_shape_mismatch(camera):
    with pytest.raises(ValueError):
        align_upto_shift(camera[:-2], camera)


def test_error_ratio_self_is_one(camera):
    ref = ndimage.gaussian_filter(camera, 1.0)
    assert error_ratio(ref, camera, ref) == pytest.approx(1.0)
    worse = ndimage.gaussian_filter(camera, 2.0)
    assert error_ratio(worse, camera, ref) > 1.0


def test_kernel_similarity_shift_invariant():
    k = _motion_kernel(15)
    shifted = np.roll(np.pad(k, 3), (2, -1), axis=(0, 1))  # 21 x 21, no wrap-around
    assert shifted.sum() == pytest.approx(1.0)
    r = kernel_similarity(shifted, k)
    assert r["ncc"] == pytest.approx(1.0, abs=1e-9)
    assert r["mse"] == pytest.approx(0.0, abs=1e-12)
    assert r["shift"] == (2, -1)
    # different sizes and scales: padded and normalised
    r2 = kernel_similarity(5.0 * np.pad(k, 3), k)
    assert r2["ncc"] == pytest.approx(1.0, abs=1e-9)
    # a genuinely different kernel
    r3 = kernel_similarity(k.T, k)
    assert r3["ncc"] < 0.95 and r3["mse"] > 0.0


def test_deconvolve_improves_psnr():
    big = data.camera().astype(np.float64) / 255.0
    k = _motion_kernel(15)
    # blur without boundary artefacts: 'valid' blur of a larger image
    sharp = big[100:260, 150:310]
    blurry = fftconvolve(big[93:267, 143:317], k, mode="valid")  # 160 x 160
    assert blurry.shape == sharp.shape
    rng = np.random.default_rng(0)
    blurry = np.clip(blurry + 0.005 * rng.standard_normal(blurry.shape), 0, 1)
    p_blur = levin_scores(blurry, sharp)["psnr"]
    x = deconvolve(blurry, k)
    assert x.shape == sharp.shape
    p_deb = levin_scores(x, sharp)["psnr"]
    assert p_deb > p_blur + 3.0, (p_blur, p_deb)
    # the alignment is small: the model is the true convolution convention
    assert max(abs(v) for v in levin_scores(x, sharp)["shift"]) <= 0.5
    xw = simple_wiener(blurry, k, nsr=1e-2)
    assert levin_scores(xw, sharp)["psnr"] > p_blur
    xt = deconvolve(blurry, k, method="tv", boundary="taper")
    assert levin_scores(xt, sharp)["psnr"] > p_blur + 2.0


def test_deconvolve_bad_args(camera):
    k = _motion_kernel(9)
    with pytest.raises(ValueError):
        deconvolve(camera, k, method="nope")
    with pytest.raises(ValueError):
        deconvolve(camera, k, boundary="nope")
    with pytest.raises(ValueError):
        deconvolve(camera, np.zeros((3, 3)))


def test_load_levin_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_levin(tmp_path / "does-not-exist")


def test_load_levin():
    root = default_levin_root()
    if root is None or not root.is_dir():
        pytest.skip("Levin data not available (set CBID_LEVIN_DIR)")
    items = load_levin(root)
    assert len(items) == 32
    assert [it.name for it in items][:2] == ["im1_kernel1", "im1_kernel2"]
    assert items[-1].name == "im4_kernel8"
    ratios = []
    for it in items:
        assert it.blurry.shape == it.sharp.shape == (255, 255)
        assert it.blurry.dtype == np.float64 and 0.0 <= it.blurry.min() and it.blurry.max() <= 1.0
        assert it.kernel.ndim == 2 and it.kernel.shape[0] == it.kernel.shape[1]
        assert it.kernel.sum() == pytest.approx(1.0)
        assert it.name == f"im{it.image_index}_kernel{it.kernel_index}"
        pred = convolve2d(it.sharp, it.kernel, mode="same")
        # real captures: the blurry image is misregistered by a few pixels
        a, b, _ = align_upto_shift(pred, it.blurry, crop=30, maxshift=6, step=1.0)
        p_good = psnr(a, b)
        assert p_good > 30.0, it.name
        a2, b2, _ = align_upto_shift(
            convolve2d(it.sharp, it.kernel[::-1, ::-1], mode="same"), it.blurry,
            crop=30, maxshift=6, step=1.0,
        )
        ratios.append(p_good - psnr(a2, b2))
    # the chosen orientation is clearly the better one on average
    assert np.mean(ratios) > 4.0


def _texture(n: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth random texture in [0, 1]."""
    t = ndimage.gaussian_filter(np.random.default_rng(seed).random((n, n)), 2.0)
    return (t - t.min()) / (t.max() - t.min())


def test_default_search_is_10_px_and_5_px_is_reported_beside_it():
    assert MAXSHIFT == 10.0 and MAXSHIFT_LEVIN == 5.0
    t = _texture()
    moved = ndimage.shift(t, (7.0, -7.0), order=1, mode="nearest")  # 7 px: inside 10, outside 5
    s = levin_scores(moved, t)
    assert s["shift"] == (7.0, -7.0) and s["psnr"] >= 60.0
    assert max(abs(v) for v in s["shift5"]) <= 5.0
    assert s["psnr_shift5"] < 40.0 and s["psnr_shift5"] == pytest.approx(levin_scores(moved, t, maxshift=5)["psnr"])
    r = levin_row_scores(moved, t)
    assert r["psnr"] == s["psnr"] and r["psnr_shift5"] == s["psnr_shift5"] and math.isnan(r["error_ratio"])
    # the scorer's default and the explicit 10-px search agree; align_upto_shift has the same default
    assert align_upto_shift(moved, t)[2] == align_upto_shift(moved, t, maxshift=10)[2] == (7.0, -7.0)


def test_psnr_shift5_never_above_psnr():
    rng = np.random.default_rng(1)
    for seed in range(6):
        t = _texture(64, seed)
        shift = tuple(rng.uniform(-9.0, 9.0, size=2))
        e = ndimage.shift(t, shift, order=3, mode="nearest") + 0.02 * rng.standard_normal(t.shape)
        s = levin_scores(e, t)
        assert s["psnr_shift5"] <= s["psnr"]
        if max(abs(v) for v in s["shift"]) <= 5.0:
            assert s["psnr_shift5"] == s["psnr"] and s["shift5"] == s["shift"]


def test_error_ratio_aligns_the_reference_at_10_px():
    t = _texture(72, 3)
    ref = ndimage.shift(ndimage.gaussian_filter(t, 0.7), (6.0, 0.0), order=1, mode="nearest")  # reference itself off by 6 px
    est = ndimage.gaussian_filter(t, 1.0)
    r = levin_row_scores(est, t, ref)
    assert r["error_ratio"] == pytest.approx(error_ratio(est, t, ref))
    assert 1.0 < r["error_ratio"] < 20.0  # at 5 px the misaligned reference would make the estimate look far better
    assert error_ratio(est, t, ref, maxshift=5) < r["error_ratio"]


def test_search_matches_a_direct_search():
    """The FFT-assisted search picks the translation a direct search over every shift picks (ties: first in row-major order)."""
    t = _texture(48, 4)
    e = ndimage.shift(t, (2.3, -3.6), order=3, mode="nearest") + 0.01 * np.random.default_rng(2).standard_normal(t.shape)
    crop, step, ms = 12, 0.5, 4.0
    grid = step * np.arange(-8, 9)
    tc = t[crop:-crop, crop:-crop]
    ys, xs = np.mgrid[crop : 48 - crop, crop : 48 - crop].astype(float)
    best = None
    for dy in grid:
        for dx in grid:
            a = ndimage.map_coordinates(np.pad(e, 6, mode="edge"), [ys + dy + 6, xs + dx + 6], order=1)
            sse = float(np.sum((a - tc) ** 2))
            if best is None or sse < best[0] - 1e-9:
                best = (sse, dy, dx)
    assert align_upto_shift(e, t, crop=crop, maxshift=ms, step=step)[2] == (best[1], best[2])
    # a flat image: every shift ties, the first one wins
    flat = np.full((40, 40), 0.5)
    assert align_upto_shift(flat, flat, crop=10, maxshift=2, step=1.0)[2] == (-2.0, -2.0)
