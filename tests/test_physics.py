import pytest
import torch
from scipy.signal import convolve2d

from cbid_meta.physics import (
    conv_full,
    conv_valid,
    cross_scale_target,
    decimate,
    prop1_lhs,
    prop1_rhs,
    qmf_filters,
)


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
