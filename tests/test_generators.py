import pytest
import torch

from cbid_meta.config import ImageGeneratorConfig, KernelGeneratorConfig
from cbid_meta.generators import ImageINR, KernelINR, Pyramid, auto_coarsest_scale, internal_kernel_size, interp_matrix


@pytest.mark.parametrize("n,depth", [(3, 1), (17, 2), (19, 3), (27, 3), (31, 2)])
def test_internal_kernel_size_keeps_taps_aligned(n, depth):
    k0 = internal_kernel_size(n, depth)
    assert k0 >= n
    k = k0
    for _ in range(depth):
        assert k % 4 == 1  # even taps of every scale above the coarsest sit on a centred lattice
        k = (k + 1) // 2
    assert k % 2 == 1


def test_pyramid_grids_are_cell_centred_and_not_subsamples():
    pyr = Pyramid(64, 64, 9, 2)
    r0, _ = pyr.latent_axes(0)
    r1, _ = pyr.latent_axes(1)
    # coarse samples lie midway between fine samples, never on one
    d = (r1[:, None] - r0[None, :]).abs().min(dim=1).values
    assert torch.allclose(d, torch.full_like(d, 0.5))
    # each coarse sample is the centre of two consecutive fine samples
    assert torch.allclose(r1[1:-1], (r0[2:-2:2][: r1.numel() - 2] + r0[3:-1:2][: r1.numel() - 2]) / 2)
    # kernel taps: coarse taps are the even fine taps
    k0, k1 = pyr.kernel_axis(0), pyr.kernel_axis(1)
    assert torch.equal(k0[::2], k1)
    assert pyr.latent_size(0) == (64 + pyr.ksize(0) - 1,) * 2


def test_kernel_mask_limits_support():
    pyr = Pyramid(64, 64, 9, 3)  # internal 17 taps, user support 9
    m = pyr.kernel_mask(0)
    assert pyr.k0 == 17 and m.sum() == 81 and m[0, 0] == 0 and m[8, 8] == 1


def test_auto_coarsest_scale():
    assert auto_coarsest_scale(27, 255, 255) == 2
    assert auto_coarsest_scale(9, 255, 255) == 1
    assert auto_coarsest_scale(27, 40, 40) == 0


def test_interp_matrix_rows_sum_to_one_and_identity_on_same_grid():
    pos = torch.arange(10.0) + 0.5
    a = interp_matrix(pos, 0.0, 10.0, 10)
    assert torch.allclose(a, torch.eye(10))
    b = interp_matrix(torch.linspace(-2, 12, 33), 0.0, 10.0, 7)
    assert torch.allclose(b.sum(1), torch.ones(33))


def test_image_inr_resolution_free_and_in_range():
    torch.manual_seed(0)
    g = ImageINR(ImageGeneratorConfig(levels=3, features=2, finest=32, init_scale=1.0), (0.0, 0.0, 32.0, 32.0))
    fine = g(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5)
    coarse = g(torch.arange(16.0) * 2 + 1, torch.arange(16.0) * 2 + 1)
    assert fine.shape == (1, 1, 32, 32) and coarse.shape == (1, 1, 16, 16)
    assert float(fine.detach().min()) >= 0 and float(fine.detach().max()) <= 1
    assert not torch.allclose(coarse, fine[..., ::2, ::2])  # coarse grid is not a sub-sample


def test_kernel_inr_normalised_nonnegative_and_initially_gaussian():
    g = KernelINR(KernelGeneratorConfig(init_sigma=0.3), radius=8.0)
    ax = torch.arange(-8.0, 9.0)
    with torch.no_grad():
        k = g(ax, torch.ones(17, 17))[0, 0]
    assert abs(float(k.sum()) - 1) < 1e-6 and float(k.min()) >= 0
    # zero-initialised last layer: exactly a centred Gaussian of std 0.3*radius
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    gauss = torch.exp(-(yy**2 + xx**2) / (2 * (0.3 * 8) ** 2))
    assert torch.allclose(k, gauss / gauss.sum(), atol=1e-6)
    # masked taps are exactly zero and the rest still sums to one
    mask = torch.zeros(17, 17)
    mask[4:13, 4:13] = 1
    with torch.no_grad():
        km = g(ax, mask)[0, 0]
    assert float(km[mask == 0].abs().max()) == 0 and abs(float(km.sum()) - 1) < 1e-6
    # the same network at a coarse scale
    with torch.no_grad():
        kc = g(ax[::2], torch.ones(9, 9))
    assert kc.shape == (1, 1, 9, 9) and abs(float(kc.sum()) - 1) < 1e-6


def test_band_limits_follow_the_sample_pitch():
    g = ImageINR(ImageGeneratorConfig(levels=4, coarsest=8, finest=64), (0.0, 0.0, 64.0, 64.0))
    # cells of 8, ~4, ~2, 1 px: pitch 1 uses all levels, pitch 4 only the two coarsest
    assert g.active_levels(1.0) == [True, True, True, True]
    assert g.active_levels(4.0) == [True, True, False, False]
    k = KernelINR(KernelGeneratorConfig(fourier_sigma=4.0), radius=16.0)
    on0, on2 = k.band_mask(1.0), k.band_mask(4.0)
    assert on0.sum() > on2.sum() > 0
    nyq = 16.0 / (2 * 4.0)
    assert bool(((k.freqs.norm(dim=0) <= nyq).float() == on2).all())
    # band = 0 switches the limit off
    k0 = KernelINR(KernelGeneratorConfig(fourier_sigma=4.0, band=0.0), radius=16.0)
    assert bool((k0.band_mask(4.0) == 1).all())
