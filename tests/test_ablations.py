"""The paper's ablations as named variants of the published recipe (recipes/paper_*.toml): each differs
from `paper` in exactly the fields its name says, and each switch has its effect on a tiny problem."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from cbid_meta.config import load_recipe
from cbid_meta.errors import InputError
from cbid_meta.generators import FourierUNet, MLPKernel, NoiseUNet, create_generator, generator_class
from cbid_meta.generators.mlp_kernel import pool_kernel
from cbid_meta.optim import Deblurrer, plan_stages
from cbid_meta.optim.published import PublishedRun, downsample_latent, scale_kernel_sizes
from cbid_meta.physics import conv_valid

ABLATIONS = {
    "paper_no_cross": {("schedule", "use_cross"): False},
    "paper_single_scale": {("schedule", "multiscale"): False},
    "paper_no_progressive": {("schedule", "progressive"): False},
    "paper_mlp_kernel": {("kernel", "name"): "mlp_kernel", ("kernel", "hidden"): 1000},
    "paper_cnn_image": {("image", "name"): "noise_unet"},
    "paper_direct_down": {("schedule", "coarse_render"): "downsample"},
}
#: diagnostic variants (not the paper's ablations), each also a switch of the published recipe
DIAGNOSTICS = {"paper_pooled_kernel": {("kernel", "coarse"): "pool"}, "paper_kernel_lr10": {("schedule", "lr_kernel"): 5e-4}}
CPU = torch.device("cpu")


def _diff(a: dict, b: dict) -> dict:
    out = {}
    for sec in set(a) | set(b):
        if isinstance(a.get(sec), dict):
            out.update({(sec, k): b[sec][k] for k in a[sec] if a[sec][k] != b[sec][k]})
        elif a.get(sec) != b.get(sec):
            out[(sec,)] = b.get(sec)
    return out


def _tiny(name: str, steps: int = 8):
    cfg = load_recipe(name)
    cfg.kernel_size, cfg.image.width, cfg.image.depth, cfg.image.channels_last = 9, 8, 3, False
    if cfg.kernel.name == "mlp_kernel":
        cfg.kernel.hidden = 32
    return cfg.with_total_steps(steps, 1)


def _blurry(n: int = 64, ksize: int = 9, seed: int = 0) -> np.ndarray:
    """A smooth random image blurred ('valid') by a random kernel: ``n × n`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.random((n + ksize - 1,) * 2), 2.0)
    x = (x - x.min()) / (x.max() - x.min())
    k = gaussian_filter(rng.random((ksize, ksize)), 1.0)
    y = conv_valid(torch.from_numpy(x)[None, None], torch.from_numpy(k / k.sum())[None, None])[0, 0]
    return y.numpy().astype(np.float32)


def _ys(n_images: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.stack([_blurry(seed=i) for i in range(n_images)]))[:, None]


@pytest.mark.parametrize("name", sorted(ABLATIONS | DIAGNOSTICS))
def test_each_variant_changes_exactly_what_its_name_says(name):
    assert _diff(load_recipe("paper").to_dict(), load_recipe(name).to_dict()) == (ABLATIONS | DIAGNOSTICS)[name]


def test_pooled_siren_coarse_kernels_are_the_full_kernel_pooled():
    """coarse = "pool": every coarser support is the full render sum-pooled (then centred); "render" evaluates the SIREN
    on the coarse grid, which is not the pooled fine kernel."""
    torch.manual_seed(0)
    cfg = load_recipe("paper_pooled_kernel")
    net = create_generator("siren", cfg.kernel, kernel_size=9)
    plain = create_generator("siren", load_recipe("paper").kernel, kernel_size=9)
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.equal(net.render(9), plain.render(9))
        full = torch.softmax(net.net(net.coords(9)).reshape(1, -1), -1).reshape(1, 1, 9, 9)
        from cbid_meta.generators.siren import centring_layer

        for size, pooled in ((5, pool_kernel(full)), (3, pool_kernel(pool_kernel(full)))):
            want = centring_layer(pooled, True, cfg.kernel.centring, False)
            assert torch.allclose(net.render(size), want, atol=1e-7) and float(net.render(size).sum()) == pytest.approx(1.0, abs=1e-6)
            assert not torch.allclose(plain.render(size), want, atol=1e-3)
        with pytest.raises(ValueError, match="not 4"):
            net.render(4)
    with pytest.raises(ValueError, match="kernel size"):
        create_generator("siren", cfg.kernel)


def test_a_recipe_can_start_from_another(tmp_path):
    (tmp_path / "a.toml").write_text('base = "paper"\nseed = 7\n[image]\nwidth = 32\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[loss]\ncross_weight = 0.01\n')
    cfg, paper = load_recipe(tmp_path / "b.toml"), load_recipe("paper")
    assert _diff(paper.to_dict(), cfg.to_dict()) == {("seed",): 7, ("image", "width"): 32, ("loss", "cross_weight"): 0.01}
    (tmp_path / "loop.toml").write_text('base = "loop.toml"\n')
    with pytest.raises(InputError, match="loops back"):
        load_recipe(tmp_path / "loop.toml")
    (tmp_path / "typo.toml").write_text('base = "paper"\n[schedule]\nuse_crosss = false\n')
    with pytest.raises(InputError, match="use_crosss"):
        load_recipe(tmp_path / "typo.toml")
    (tmp_path / "nobase.toml").write_text('base = "no_such_recipe"\n')
    with pytest.raises(InputError, match="unknown recipe"):
        load_recipe(tmp_path / "nobase.toml")


@pytest.mark.parametrize("name", ["paper", *sorted(ABLATIONS | DIAGNOSTICS)])
def test_every_variant_runs_batched_through_the_published_run(name):
    """Two problems as one vmapped batch (the restarts / bench path): finite losses, kernels summing to 1."""
    cfg = _tiny(name, steps=6)
    s0 = Deblurrer(cfg).coarsest_scale(64, 64)
    res = PublishedRun(cfg, CPU).run_batch(_ys(2), s0, [1, 2])
    for r in res:
        assert len(r.history) == sum(st.steps for st in plan_stages(cfg, s0))
        assert all(np.isfinite(h["total"]) for h in r.history)
        assert abs(r.kernel.sum() - 1) < 1e-6 and r.kernel.min() >= 0 and r.image.shape == (64, 64)


def _losses(name: str, stage_name: str):
    """Parts of the loss of the first stage named ``stage_name`` at the initial parameters (seed 2024)."""
    cfg = _tiny(name)
    prob, params, _ = PublishedRun(cfg, CPU).setup(_ys(), 1)
    st = next(s for s in plan_stages(cfg, 1) if s.name == stage_name)
    with torch.no_grad():
        total, parts = prob.batched_loss(params, st)
    return float(total[0]), {k: float(v[0]) for k, v in parts.items()}


def test_no_cross_drops_the_cross_term_and_keeps_the_pairs_fit():
    t_full, full = _losses("paper", "stage2")
    t_ab, ab = _losses("paper_no_cross", "stage2")
    assert full["cross"] > 0 and ab["cross"] == 0.0
    assert ab["fit"] == pytest.approx(full["fit"], rel=1e-6)  # the same pair fit: (x0 * k0)↓2 against y1
    assert t_full == pytest.approx(full["fit"] + 0.001 * full["cross"], rel=1e-6) and t_ab == pytest.approx(ab["fit"], rel=1e-6)
    runs = {n: PublishedRun(_tiny(n), CPU).run_batch(_ys(), 1)[0].history for n in ("paper", "paper_no_cross")}
    assert any(h["cross"] > 0 for h in runs["paper"]) and all(h["cross"] == 0 for h in runs["paper_no_cross"])


def test_single_scale_renders_only_scale_0():
    cfg = _tiny("paper_single_scale")
    assert Deblurrer(cfg).coarsest_scale(64, 64) == 0 and Deblurrer(_tiny("paper")).coarsest_scale(64, 64) == 1
    assert {st.scales for st in plan_stages(cfg, 0)} == {(0,)}
    res = Deblurrer(cfg).run(_blurry())
    assert res.info["kernel_sizes"] == [9] and {h["scale"] for h in res.history} == {0}
    assert len(res.history) == sum(st.steps for st in plan_stages(cfg, 0))
    budget = lambda name, s0: sum(st.steps for st in plan_stages(load_recipe(name), s0))  # noqa: E731
    assert budget("paper_single_scale", 0) == budget("paper", 1) == 5000  # the same budget


def test_no_progressive_sums_all_scales_from_the_start():
    cfg = _tiny("paper_no_progressive")
    stages = plan_stages(cfg, 1)
    assert [(s.name, s.scales, s.cross) for s in stages] == [("all-scales", (1, 0), True), ("final", (0,), False)]
    assert sum(s.steps for s in stages) == sum(s.steps for s in plan_stages(_tiny("paper"), 1))
    t_all, all_ = _losses("paper_no_progressive", "all-scales")
    _, s1 = _losses("paper", "stage1")
    t2, s2 = _losses("paper", "stage2")
    assert all_["fit"] == pytest.approx(s1["fit"] + s2["fit"], rel=1e-6) and all_["cross"] == pytest.approx(s2["cross"], rel=1e-6)
    assert t_all == pytest.approx(s1["fit"] + t2, rel=1e-6)


@pytest.mark.parametrize("ksize", [9, 14, 27])
def test_mlp_kernel_is_a_distribution_at_every_scale(ksize):
    torch.manual_seed(3)
    cfg = load_recipe("paper_mlp_kernel")
    net = create_generator(cfg.kernel.name, cfg.kernel, kernel_size=ksize)
    assert isinstance(net, MLPKernel) and generator_class("mlp_kernel").pyramid == "decimate"
    assert net.net[0].in_features == 200 and net.net[0].out_features == 1000 and isinstance(net.net[1], torch.nn.ReLU6)
    assert float(net.noise.min()) >= 0 and float(net.noise.max()) < 0.1
    for size in scale_kernel_sizes(ksize, 3):
        with torch.no_grad():
            k = net.render(size)
        assert k.shape == (1, 1, size, size) and bool((k >= 0).all()) and abs(float(k.sum()) - 1) < 1e-5
    with pytest.raises(ValueError, match="renders"):
        net.render(ksize + 2)
    raw = MLPKernel(ksize, hidden=16, centre=False)
    with torch.no_grad():  # coarse supports are the fine kernel pooled 2x2, mass kept
        fine, coarse = raw.render(ksize), raw.render((ksize + 1) // 2)
    assert torch.allclose(coarse, pool_kernel(fine)) and abs(float(coarse.sum()) - 1) < 1e-5
    assert pool_kernel(torch.ones(1, 1, 5, 5)).tolist() == [[[[4, 4, 2], [4, 4, 2], [2, 2, 1]]]]


def test_cnn_image_renders_from_seeded_noise_not_coordinates():
    cfg = load_recipe("paper_cnn_image")
    cfg.image.width, cfg.image.depth = 8, 3
    torch.manual_seed(0)
    net = create_generator(cfg.image.name, cfg.image, channels=1)
    assert isinstance(net, NoiseUNet) and generator_class("noise_unet").pyramid == "decimate"
    code = net.encoding(37, 41)
    assert code.shape == (1, 4 * cfg.image.n_freqs, 37, 41) and float(code.min()) >= 0 and float(code.max()) < 0.1
    assert net.encoding(37, 41) is code and torch.equal(NoiseUNet(width=8, depth=3, noise_seed=net.noise_seed).encoding(37, 41), code)
    other = NoiseUNet(width=8, depth=3, noise_seed=net.noise_seed + 1)
    other.load_state_dict(net.state_dict())  # the same weights, another noise seed
    fourier = FourierUNet(width=8, depth=3)
    fourier.load_state_dict(net.state_dict())  # the same weights on the coordinate encoding
    with torch.no_grad():
        a, b, c = net(code), other(other.encoding(37, 41)), fourier(fourier.encoding(37, 41))
    assert not torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, c, atol=1e-4)
    assert torch.equal(a, net(net.encoding(37, 41)))  # fixed input: the same render every call


def test_direct_down_coarse_image_is_the_bilinear_downsampling_of_the_fine_render():
    prob, params, _ = PublishedRun(_tiny("paper_direct_down"), CPU).setup(_ys(), 1)
    ref, ref_params, _ = PublishedRun(_tiny("paper"), CPU).setup(_ys(), 1)
    with torch.no_grad():
        render = prob.functional_render({k: v[0] for k, v in params.items()})
        x0, k0, _ = render(0)
        x1, k1, _ = render(1)
        r0, rk0, _ = ref.functional_render({k: v[0] for k, v in ref_params.items()})(0)
        r1, rk1, _ = ref.functional_render({k: v[0] for k, v in ref_params.items()})(1)
    assert x1.shape[-2:] == prob.latent_size(1) == (36, 36)
    assert torch.equal(x1, F.interpolate(x0, size=(36, 36), mode="bilinear", align_corners=False))
    assert torch.equal(x1, downsample_latent(x0, (36, 36)))
    assert torch.equal(x0, r0) and torch.equal(k1, rk1)  # scale 0 and the kernels as published
    assert not torch.allclose(x1, r1, atol=1e-3)  # the published coarse image is the generator's render of its grid
    cfg = _tiny("paper_direct_down")
    cfg.schedule.coarse_render = "nearest"
    with pytest.raises(InputError, match="coarse_render"):
        PublishedRun(cfg, CPU).setup(_ys(), 1)
    cell = load_recipe("fast").with_total_steps(4, 1)
    cell.schedule.coarse_render = "downsample"
    with pytest.raises(InputError, match="only for pyramid = 'decimate'"):
        Deblurrer(cell).run(_blurry())
