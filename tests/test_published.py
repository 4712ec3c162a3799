"""The published generators, losses and schedule (recipes/paper.toml)."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from cbid_meta.config import load_recipe
from cbid_meta.errors import InputError
from cbid_meta.generators import FourierUNet, SirenKernel, available_generators, create_generator, fourier_encoding
from cbid_meta.physics import centre_kernel
from cbid_meta.losses import dft_l1, metric, ssim
from cbid_meta.optim import Deblurrer, plan_stages
from cbid_meta.optim.published import checkpoint_step, published_coarsest_scale, scale_kernel_sizes
from cbid_meta.physics import conv_valid, cross_scale_prediction, decimate


def test_registry_builds_every_generator_by_name():
    assert {"fourier_unet", "siren", "grid", "fourier_mlp"} <= set(available_generators())
    cfg = load_recipe("paper")
    assert isinstance(create_generator(cfg.image.name, cfg.image, channels=3), FourierUNet)
    assert isinstance(create_generator(cfg.kernel.name, cfg.kernel), SirenKernel)
    with pytest.raises(ValueError, match="unknown generator"):
        create_generator("nope", cfg.image)


@pytest.mark.parametrize("width,params", [(128, 2_330_897), (64, 629_585), (32, 181_361)])
def test_unet_widths_and_published_parameter_count(width, params):
    net = FourierUNet(width=width)
    assert sum(p.numel() for p in net.parameters()) == params  # 2.33 M + SIREN 12.7 k = the paper's 2.34 M at 128


@pytest.mark.parametrize("h,w", [(285, 285), (143, 150), (70, 33), (33, 40)])
def test_unet_renders_any_scale_with_the_same_weights(h, w):
    torch.manual_seed(0)
    net = FourierUNet(width=8, channels=3)
    with torch.no_grad():
        x = net.render(h, w)
    assert x.shape == (1, 3, h, w) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert net.encoding(h, w).shape == (1, 64, h, w)


def test_fourier_encoding_values():
    e = fourier_encoding(3, 5, n_freqs=2, base=2.0)
    # layout [cos f u, sin f u, cos f v, sin f v]: channel 0 is cos(1 u) along the width, channel 7 sin(2 v) along the height
    assert torch.allclose(e[0, 0, 1], torch.cos(torch.linspace(0, 1, 5)), atol=1e-6)
    assert torch.allclose(e[0, 7, :, 2], torch.sin(2 * torch.linspace(0, 1, 3)), atol=1e-6)


@pytest.mark.parametrize("size", [3, 7, 14, 27])
def test_siren_kernel_is_nonnegative_normalised_and_centred(size):
    torch.manual_seed(1)
    net = SirenKernel()
    with torch.no_grad():  # make a clearly off-centre kernel: logits peaked near a corner
        net.net[-1].bias.fill_(0.0)
    with torch.no_grad():
        k = net.render(size)
    assert k.shape == (1, 1, size, size) and bool((k >= 0).all())
    assert abs(float(k.sum()) - 1) < 1e-5
    off = torch.zeros(1, 1, size, size)
    off[..., 0, 1] = 0.7
    off[..., 1, 0] = 0.3
    c = centre_kernel(off, wrap=True)
    iy = torch.arange(size, dtype=torch.float32)
    cy = float((c[0, 0].sum(1) * iy).sum())
    cx = float((c[0, 0].sum(0) * iy).sum())
    assert abs(cy - (size - 1) / 2) <= 0.5 and abs(cx - (size - 1) / 2) <= 0.5
    assert torch.equal(torch.sort(c.flatten()).values, torch.sort(off.flatten()).values)  # a shift, nothing else


def test_siren_gradients_reach_the_kernel_values():
    net = SirenKernel(hidden=16)
    k = net.render(9)
    (k * torch.arange(81.0).reshape(1, 1, 9, 9)).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.parameters())


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((48, 61))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    ours = float(ssim(torch.tensor(a)[None, None], torch.tensor(b)[None, None]))
    ref = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(ours - ref) < 1e-4
    assert float(metric("ssim")(torch.tensor(a)[None, None], torch.tensor(a)[None, None])) == pytest.approx(0.0, abs=1e-12)


def test_dft_l1_on_a_hand_computed_pair():
    a = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    b = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    # DFT of a - b = [[1, -1], [0, 0]]: F = [[0, 2], [0, 2]] -> mean modulus 1
    assert float(dft_l1(a, b)) == pytest.approx(1.0)
    assert float(dft_l1(a, a)) == 0.0


@pytest.mark.parametrize("ksize", [5, 7, 9, 14, 27])
def test_proposition1_with_kernels_normalised_at_both_scales(ksize):
    """(x⊗k)↓2 = 4 m (x↓2 ⊗ k_c) − Σ_d (x⊗g_d)↓2 with k_c = k↓2 / m summing to 1."""
    g = torch.Generator().manual_seed(ksize)
    n = 23
    x = torch.rand(1, 2, n + ksize - 1, n + ksize - 1, generator=g, dtype=torch.float64)
    k = torch.rand(1, 1, ksize, ksize, generator=g, dtype=torch.float64)
    k = k / k.sum()
    kc = decimate(k) / decimate(k).sum()
    xc = decimate(x, ((ksize - 1) % 2,) * 2)
    pred = cross_scale_prediction(x, k, xc, kc)
    assert abs(float(kc.sum()) - 1) < 1e-12
    assert torch.allclose(pred, decimate(conv_valid(x, k)), atol=1e-12)
    # the literal factor 4 (un-normalised coarse kernel) is wrong for normalised kernels
    wrong = 4 * conv_valid(xc, kc) - (pred - 4 * decimate(k).sum() * conv_valid(xc, kc))
    assert not torch.allclose(wrong, decimate(conv_valid(x, k)), atol=1e-3)


def test_published_schedule_and_scales():
    cfg = load_recipe("paper")
    stages = plan_stages(cfg, 1)
    assert [(s.name, s.scales, s.steps, s.cross) for s in stages] == [
        ("stage1", (1,), 500, False), ("stage2", (1,), 500, True), ("stage2", (0,), 500, True), ("final", (0,), 3500, False)]
    assert sum(s.steps for s in plan_stages(cfg, 2)) == 5000
    assert published_coarsest_scale(27, 255, 255) == 1 and published_coarsest_scale(31, 255, 255) == 2
    assert scale_kernel_sizes(23, 2) == [23, 12, 6]
    short = cfg.with_total_steps(500, 2)
    assert sum(s.steps for s in plan_stages(short, 1)) == pytest.approx(500, abs=2)
    assert short.schedule.lr_milestones == [200, 400]


def test_published_recipe_refuses_mismatched_generators_and_initialisers():
    from cbid_meta.data import demo_pair

    y, _, _ = demo_pair(size=64, kernel_size=9)
    cfg = load_recipe("paper")
    cfg.kernel_size = 9
    cfg.image.name = "grid"
    with pytest.raises(InputError, match="does not work with pyramid"):
        Deblurrer(cfg.with_total_steps(4, 2)).run(y)
    cfg = load_recipe("paper")
    cfg.kernel_size = 9
    with pytest.raises(InputError, match="too small"):
        Deblurrer(cfg.with_total_steps(4, 2)).run(y)  # depth-5 U-Net on a 64-px image


def test_checkpoint_resume_gives_the_same_run(tmp_path):
    from cbid_meta.data import demo_pair

    y, _, _ = demo_pair(size=64, kernel_size=9)
    cfg = load_recipe("paper")
    cfg.kernel_size, cfg.image.width, cfg.image.depth = 9, 8, 3
    cfg = cfg.with_total_steps(24, 2)
    full = Deblurrer(cfg).run(y)
    ck = tmp_path / "run.pt"

    class Stop(Exception):
        pass

    def stop_at_10(rec):
        if rec["step"] == 9:
            raise Stop

    with pytest.raises(Stop):
        Deblurrer(cfg).run(y, callback=stop_at_10, checkpoint=ck, checkpoint_every=5)
    assert checkpoint_step(ck) == 5 and checkpoint_step(tmp_path / "none.pt") == 0
    resumed = Deblurrer(cfg).run(y, checkpoint=ck, checkpoint_every=5)
    assert resumed.info["resumed_from"] == 5 and resumed.info["steps"] == full.info["steps"]
    np.testing.assert_allclose(resumed.kernel, full.kernel, atol=1e-5)
    np.testing.assert_allclose(resumed.image, full.image, atol=1e-4)
    other = y[::-1].copy()
    with pytest.raises(InputError, match="another image"):
        Deblurrer(cfg).run(other, checkpoint=ck)


def test_end_to_end_published_run_beats_the_blurry_input():
    """The whole published pipeline (U-Net + SIREN, 1 - SSIM, DFT-l1 cross term, decimation
    pyramid, progressive schedule) on a 128-px synthetic image with a 13-px motion kernel.

    The schedule is shortened 10x (500 iterations) and a narrow, 4-level U-Net is used;
    with 10x fewer steps the kernel's learning rate is raised 10x (5e-4) and the image's
    doubled (1e-2), else the kernel barely leaves its near-uniform start.

    One short run is a noisy draw (kernel NCC 0.68-0.89 over seeds and thread counts on
    this machine), so the claim is made for the median of three seeds.
    """
    from cbid_meta.data import demo_pair
    from cbid_meta.evaluation import kernel_similarity, levin_scores

    y, x, k = demo_pair(size=128, kernel_size=13)
    blurry = levin_scores(y.astype(float), x, crop=13)["psnr"]
    gains, restored_gains, nccs = [], [], []
    for seed in (2024, 0, 1):
        cfg = load_recipe("paper")
        cfg.kernel_size, cfg.image.width, cfg.image.depth = 13, 16, 4
        cfg.schedule.lr_kernel, cfg.schedule.lr_image = 5e-4, 1e-2
        cfg.seed = seed
        cfg = cfg.with_total_steps(500, 2)
        res = Deblurrer(cfg).run(y)
        assert res.info["steps"] == 500 and res.info["coarsest_scale"] == 1
        gains.append(levin_scores(res.image.astype(float), x, crop=13)["psnr"] - blurry)
        restored_gains.append(levin_scores(res.restored.astype(float), x, crop=13)["psnr"] - blurry)
        nccs.append(kernel_similarity(res.kernel, k)["ncc"])
    assert np.median(gains) >= 1.0, gains
    assert np.median(restored_gains) >= 1.0, restored_gains
    assert np.median(nccs) >= 0.7, nccs


def test_speed_options_do_not_change_the_maths():
    outs = {}
    for opts in ({}, {"channels_last": True}, {"autocast": "bf16"}):
        torch.manual_seed(0)
        net = FourierUNet(width=8, **opts)
        with torch.no_grad():
            outs[tuple(opts)] = net.render(70, 66)
    assert torch.allclose(outs[()], outs[("channels_last",)], atol=1e-5)
    assert (outs[()] - outs[("autocast",)]).abs().max() < 0.05  # bfloat16 keeps ~3 significant digits
    with pytest.raises(ValueError, match="autocast"):
        FourierUNet(width=8, autocast="fp8")
