import torch

from cbid_meta.losses import cross_scale_loss, fit_loss, metric, normalized_sparsity, total_variation
from cbid_meta.physics import conv_valid, decimate


def test_metrics_known_values():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    assert float(metric("l2")(a, b)) == (1 + 1 + 4) / 4
    assert float(metric("l1")(a, b)) == (1 + 1 + 2) / 4
    assert float(metric("charbonnier")(a, a)) == 0.0


def test_fit_loss_zero_for_exact_model_and_positive_otherwise():
    x = torch.rand(1, 1, 20, 20)
    k = torch.rand(1, 1, 5, 5)
    k = k / k.sum()
    y = conv_valid(x, k)
    assert float(fit_loss(x, k, y)) < 1e-12
    assert float(fit_loss(x, torch.flip(k, (-1,)), y)) > 1e-6


def _gauss(n, sigma):
    ax = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    g = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum())[None, None]


def test_cross_scale_loss_small_for_consistent_smooth_pair():
    # a smooth image and a smooth kernel, coarse versions from block means / even taps:
    # the cross-scale relation nearly holds
    torch.manual_seed(0)
    base = torch.rand(1, 1, 48, 48, dtype=torch.float64)
    x_f = conv_valid(torch.nn.functional.pad(base, (6, 6, 6, 6), mode="replicate"), _gauss(13, 3.0))
    k_f = _gauss(9, 2.0)
    x_c = torch.nn.functional.avg_pool2d(x_f, 2)
    k_c = 4 * decimate(k_f)
    k_c = k_c / k_c.sum()
    small = float(cross_scale_loss(x_f, k_f, x_c, k_c))
    # a delta kernel at the fine scale violates it (its even taps keep all the mass)
    delta = torch.zeros_like(k_f)
    delta[..., 4, 4] = 1
    big = float(cross_scale_loss(x_f, delta, x_c, decimate(delta)))
    assert big > 20 * small, (small, big)


def test_priors_prefer_sharp_over_blurred_where_expected():
    torch.manual_seed(0)
    sharp = (torch.rand(1, 1, 40, 40) > 0.5).float()
    sharp = torch.nn.functional.interpolate(sharp[..., ::4, ::4], scale_factor=4, mode="nearest")
    blurred = conv_valid(torch.nn.functional.pad(sharp, (3, 3, 3, 3), mode="replicate"), _gauss(7, 1.5).float())
    # TV is lower for the blurred image (why TV alone invites the no-blur solution) ...
    assert total_variation(blurred) < total_variation(sharp)
    # ... while normalised sparsity is lower for the sharp one
    assert normalized_sparsity(sharp) < normalized_sparsity(blurred)
