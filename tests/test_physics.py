"""The physics layer: Proposition 1 and the 'valid' convolution; the blur operator (valid /
periodic, forward / adjoint), transfer functions, kernel centring and supports, pyramids,
the gradient-sparsity measure, and the library substitutions (scikit-image Wiener and PSNR)
against the formulas they replace."""
import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from cbid_meta.data import motion_kernel
from cbid_meta.evaluation.metrics import psnr
from cbid_meta.physics import (
    BlurOperator,
    centre_kernel,
    centroid_shift,
    conv_full,
    conv_valid,
    cross_scale_target,
    decimate,
    fit_support,
    gradient_otfs,
    gradient_sparsity,
    observation_pyramid,
    prop1_lhs,
    prop1_rhs,
    psf2otf,
    qmf_filters,
)
from cbid_meta.pipeline.nonblind import pad_and_taper, simple_wiener



@pytest.mark.parametrize("k", [3, 4, 5, 8, 9, 12, 13])
@pytest.mark.parametrize("n", [16, 17])
@pytest.mark.parametrize("mode", ["valid", "full"])
def test_proposition1_identity(k, n, mode):
    g = torch.Generator().manual_seed(k * 100 + n)
    x = torch.randn(2, 1, n + k - 1, n + k - 1, generator=g, dtype=torch.float64)
    ker = torch.rand(1, 1, k, k, generator=g, dtype=torch.float64)
    lhs, rhs = prop1_lhs(x, ker, mode), prop1_rhs(x, ker, mode)
    assert lhs.shape == rhs.shape
    torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-12)


def test_identity_fails_without_qmf_terms():
    # the naive (x⊗k)↓2 alone is not (x↓2)⊗(k↓2): the QMF terms matter
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 24, 24, generator=g, dtype=torch.float64)
    k = torch.rand(1, 1, 5, 5, generator=g, dtype=torch.float64)
    naive = decimate(conv_valid(x, k)) / 4
    assert (naive - prop1_lhs(x, k)).abs().max() > 1e-3


@pytest.mark.parametrize("k", [3, 6, 9, 17])
def test_conv_valid_matches_scipy(k):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(1, 1, 30, 33, generator=g, dtype=torch.float64)
    ker = torch.rand(1, 1, k, k, generator=g, dtype=torch.float64)
    ref = convolve2d(x[0, 0].numpy(), ker[0, 0].numpy(), mode="valid")
    torch.testing.assert_close(conv_valid(x, ker)[0, 0], torch.from_numpy(ref), rtol=0, atol=1e-10)
    ref_full = convolve2d(x[0, 0].numpy(), ker[0, 0].numpy(), mode="full")
    torch.testing.assert_close(conv_full(x, ker)[0, 0], torch.from_numpy(ref_full), rtol=0, atol=1e-10)


def test_conv_valid_batched_kernels():
    x = torch.randn(3, 2, 20, 20, dtype=torch.float64)
    k = torch.rand(3, 1, 5, 5, dtype=torch.float64)
    out = conv_valid(x, k)
    for b in range(3):
        torch.testing.assert_close(out[b : b + 1], conv_valid(x[b : b + 1], k[b : b + 1]))


def test_kernel_larger_than_image_raises():
    with pytest.raises(ValueError):
        conv_valid(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 7, 7))


def test_qmf_signs():
    k = torch.ones(1, 1, 3, 3)
    g1, g2, g3 = qmf_filters(k)
    assert g1[0, 0, :, 0].tolist() == [1, -1, 1]
    assert g2[0, 0, 0, :].tolist() == [1, -1, 1]
    assert g3[0, 0].tolist() == [[1, -1, 1], [-1, 1, -1], [1, -1, 1]]


def test_cross_scale_target_is_phase_average_of_prop1():
    g = torch.Generator().manual_seed(1)
    k = torch.rand(1, 1, 9, 9, generator=g, dtype=torch.float64)
    x = torch.randn(1, 1, 40, 40, generator=g, dtype=torch.float64)
    # 4·(x↓2^a)⊗(k↓2) for each phase a = the QMF sum of Prop. 1 at that phase
    y_full = [conv_valid(x, kk) for kk in (k, *qmf_filters(k))]
    phases = [(a, b) for a in (0, 1) for b in (0, 1)]
    avg = sum(sum(decimate(y, p) for y in y_full) for p in phases) / 4
    torch.testing.assert_close(cross_scale_target(x, k), avg, rtol=0, atol=1e-12)


def test_kernel_mass_under_decimation():
    # a spread kernel keeps ~1/4 of its mass under ↓2 (the poster's factor 4), a delta keeps all
    yy, xx = torch.meshgrid(torch.arange(17.0), torch.arange(17.0), indexing="ij")
    gauss = torch.exp(-((yy - 8) ** 2 + (xx - 8) ** 2) / (2 * 3.0**2))
    gauss = gauss / gauss.sum()
    assert abs(float(decimate(gauss).sum()) - 0.25) < 0.01
    delta = torch.zeros(17, 17)
    delta[8, 8] = 1
    assert float(decimate(delta).sum()) == 1.0


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("ksize", [(5, 5), (4, 6), (7, 3)])
def test_valid_blur_adjoint_identity(rng, ksize):
    k = rng.random(ksize)
    x, y = rng.random((20 + ksize[0] - 1, 24 + ksize[1] - 1)), rng.random((20, 24))
    A = BlurOperator(k, "valid")
    ax = A.forward(x)
    assert ax.shape == y.shape
    np.testing.assert_allclose(np.vdot(ax, y), np.vdot(x, A.adjoint(y)), rtol=1e-12)
    np.testing.assert_allclose(ax, convolve2d(x, k, mode="valid"), atol=1e-12)  # a true convolution


def test_valid_blur_takes_tensors_like_conv_valid(rng):
    k = torch.from_numpy(rng.random((1, 1, 9, 9)))
    x = torch.from_numpy(rng.random((2, 3, 30, 30)))
    out = BlurOperator(k, "valid").forward(x)
    assert torch.equal(out, conv_valid(x, k)) and out.shape == (2, 3, 22, 22)
    y = torch.from_numpy(rng.random((2, 3, 22, 22)))
    assert torch.allclose((out * y).sum(), (x * BlurOperator(k, "valid").adjoint(y)).sum())


def test_periodic_blur_adjoint_and_wrap_convention(rng):
    k = rng.random((5, 5))
    x, y = rng.random((16, 18)), rng.random((16, 18))
    A = BlurOperator(k, "periodic", x.shape)
    np.testing.assert_allclose(np.vdot(A.forward(x), y), np.vdot(x, A.adjoint(y)), rtol=1e-12)
    np.testing.assert_allclose(A.forward(x), convolve2d(x, k, mode="same", boundary="wrap"), atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        BlurOperator(k, "periodic")
    with pytest.raises(ValueError, match="boundary"):
        BlurOperator(k, "reflect")


def test_psf2otf_puts_the_centre_tap_at_the_origin():
    k = np.zeros((5, 5))
    k[2, 2] = 1.0
    np.testing.assert_allclose(psf2otf(k, (8, 8)), 1.0)
    e = np.zeros((4, 4))
    e[0, 1] = 1.0  # even width: tap floor(4 / 2) = 2 is the centre (MATLAB, scikit-image, deepinv), so this is a shift
    assert not np.allclose(psf2otf(e, (8, 8)), 1.0)


def test_gradient_otfs_are_backward_differences(rng):
    x = rng.random((10, 12))
    dh, dv = gradient_otfs(x.shape)
    gh = np.real(np.fft.ifft2(dh * np.fft.fft2(x)))
    gv = np.real(np.fft.ifft2(dv * np.fft.fft2(x)))
    np.testing.assert_allclose(gh, x - np.roll(x, 1, axis=1), atol=1e-12)
    np.testing.assert_allclose(gv, x - np.roll(x, 1, axis=0), atol=1e-12)


def test_centre_kernel_drops_or_wraps():
    k = np.zeros((9, 9))
    k[1, 2] = k[1, 3] = 0.5
    assert centroid_shift(k) == (3, 2)  # centroid (1, 2.5) -> (4, 4); 1.5 rounds to even
    c = centre_kernel(k)
    yy, xx = np.mgrid[:9, :9]
    assert abs((c * yy).sum() - 4) <= 0.5 and abs((c * xx).sum() - 4) <= 0.5 and abs(c.sum() - 1) < 1e-12
    edge = np.zeros((5, 5))
    edge[0, 0], edge[0, 4] = 0.9, 0.1  # centroid column 0.4: shift right by 2, the tap at column 4 falls off
    dropped, wrapped = centre_kernel(edge), centre_kernel(edge, wrap=True)
    assert np.count_nonzero(dropped) == 1 and dropped[2, 2] == 1.0
    assert np.count_nonzero(wrapped) == 2 and wrapped[2, 1] == 0.1 and wrapped[2, 2] == 0.9
    t = torch.from_numpy(edge)[None, None]
    assert torch.equal(centre_kernel(t, wrap=True)[0, 0], torch.from_numpy(wrapped))
    assert torch.equal(centre_kernel(t)[0, 0], torch.from_numpy(dropped))


def test_fit_support_pads_and_crops_about_the_centre(rng):
    k = rng.random((5, 5))
    big = fit_support(k, (9, 9))
    assert big.shape == (9, 9) and np.array_equal(big[2:7, 2:7], k) and big.sum() == pytest.approx(k.sum())
    assert np.array_equal(fit_support(big, (5, 5)), k)
    t = fit_support(torch.from_numpy(k), (7, 7))
    assert isinstance(t, torch.Tensor) and torch.equal(t[1:6, 1:6], torch.from_numpy(k))


def test_pyramids():
    y = torch.arange(64.0).reshape(1, 1, 8, 8)
    mean, dec = observation_pyramid(y, 2, "mean"), observation_pyramid(y, 2, "decimate")
    assert mean[1].shape == dec[1].shape == (1, 1, 4, 4) and mean[2].shape == (1, 1, 2, 2)
    assert float(mean[1][0, 0, 0, 0]) == (0 + 1 + 8 + 9) / 4 and float(dec[1][0, 0, 0, 1]) == 2.0
    r = observation_pyramid(np.random.default_rng(0).random((64, 64)), 2, "resize", ratio=2**0.5)
    assert r[1].shape == (45, 45) and r[2].shape == (32, 32)
    with pytest.raises(ValueError, match="pyramid"):
        observation_pyramid(y, 1, "laplacian")


def test_gradient_sparsity_numpy_and_torch_agree_and_are_scale_free(rng):
    x = rng.random((32, 40))
    s = gradient_sparsity(x, crop=3)
    t = gradient_sparsity(torch.from_numpy(x), crop=3)
    assert isinstance(s, float) and isinstance(t, torch.Tensor) and t.item() == pytest.approx(s, rel=1e-12)
    assert gradient_sparsity(5 * x) == pytest.approx(gradient_sparsity(x), rel=1e-12)  # intensity scale
    tiled = np.tile(x, (2, 2))  # the mean form does not grow with the image size
    assert abs(gradient_sparsity(tiled) - gradient_sparsity(x)) < 0.02
    assert gradient_sparsity(np.ones((8, 8))) == 0.0
    xt = torch.from_numpy(x).requires_grad_()
    gradient_sparsity(xt, eps=1e-3).backward()
    assert xt.grad is not None and bool(torch.isfinite(xt.grad).all())


def test_wiener_is_scikit_image_with_the_constant_nsr_formula():
    """simple_wiener delegates to skimage.restoration.wiener; the closed form it replaced gives the same image."""
    rng = np.random.default_rng(1)
    k = motion_kernel(9, seed=3)
    y = np.clip(rng.random((40, 44)) * 0.2 + 0.4, 0, 1)
    nsr = 3e-3
    yp, p = pad_and_taper(y, k)
    K = psf2otf(k, yp.shape)
    ref = np.real(np.fft.ifft2(np.conj(K) * np.fft.fft2(yp) / (np.abs(K) ** 2 + nsr)))[p : p + 40, p : p + 44]
    np.testing.assert_allclose(simple_wiener(y, k, nsr=nsr, clip=False), ref, atol=1e-12)


def test_psnr_is_the_formula():
    rng = np.random.default_rng(2)
    a, b = rng.random((16, 16)), rng.random((16, 16))
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / np.mean((a - b) ** 2)), rel=1e-12)
    assert psnr(a, a) == math.inf
