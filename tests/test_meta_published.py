"""Meta-learning of the published generators (U-Net Φx + SIREN Φk): gradients, BatchNorm, alignment,
save/load, resume, crop-to-full-size rendering, test-time adaptation."""
import dataclasses

import numpy as np
import pytest
import torch

from cbid_meta.config import load_recipe
from cbid_meta.data import demo_pair
from cbid_meta.errors import InputError
from cbid_meta.meta import MetaInit
from cbid_meta.meta.published import aligned_error, initial_theta, inner_config
from cbid_meta.meta.train import MetaConfig, meta_train
from cbid_meta.optim import Deblurrer, plan_stages
from cbid_meta.optim.published import PublishedRun
from cbid_meta.physics import conv_valid

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The published recipe with a depth-3 U-Net (the depth-5 one needs larger images than these tests use)."""
    p = tmp_path_factory.mktemp("recipe") / "tiny_paper.toml"
    p.write_text('base = "paper"\n\n[image]\ndepth = 3\nchannels_last = false\n')
    return str(p)


@pytest.fixture
def tiny(recipe):
    """Meta-training settings of a tiny set-up: width-4 U-Net, 48-px crops, 5-7-px kernels."""
    return dict(recipe=recipe, width=4, inner_steps=8, meta_batch=2, n_leaves=3, crop=48, kernel_min=5, kernel_max=7,
                kernel_margin=2, checkpoint_every=1, test_steps=8)


@pytest.fixture
def cfg_of(recipe):
    def make(support=9, steps=8, size=48, width=4):
        cfg = load_recipe(recipe)
        cfg.image.width = width
        return inner_config(cfg, support, steps, size, size)

    return make


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _y(n=2, size=48, ks=7):
    ys = []
    for i in range(n):
        y, x, k = demo_pair(size=size, kernel_size=ks, seed=i)
        ys.append(y)
    return torch.from_numpy(np.stack(ys).astype(np.float32))[:, None]


def test_inner_config_scales_the_published_schedule_in_proportion():
    cfg, s0 = inner_config(load_recipe("paper"), 15, 500, 255, 255)
    assert s0 == 1
    assert [(st.name, st.steps) for st in plan_stages(cfg, s0)] == [("stage1", 50), ("stage2", 50), ("final", 400)]
    assert cfg.schedule.lr_milestones == [200, 400]


def test_theta_has_every_parameter_and_no_batchnorm_statistics(cfg_of):
    cfg, _ = cfg_of()
    theta = initial_theta(cfg)
    assert any(k.startswith("image.") for k in theta) and any(k.startswith("kernel.") for k in theta)
    assert not [k for k in theta if "running" in k or "num_batches" in k]  # BatchNorm: batch statistics only
    _, params, _ = PublishedRun(cfg, CPU).setup(_y(1), 1)
    assert set(params) == set(theta)


def test_adapting_a_batch_equals_adapting_each_task_alone(float64, cfg_of):
    """BatchNorm statistics stay per problem: a vmap batch of tasks adapts as the tasks do one by one
    (float64: in float32 Adam's first, sign-like steps turn rounding differences into visible ones)."""
    cfg, s0 = cfg_of(steps=6)
    theta = {k: v.double() for k, v in initial_theta(cfg, seed=3).items()}
    ys = _y(2).double()
    _, both = PublishedRun(cfg, CPU).adapt(ys, s0, theta, track_updates=True)
    for i in range(2):
        _, one = PublishedRun(cfg, CPU).adapt(ys[i : i + 1], s0, theta, track_updates=True)
        for k in theta:
            torch.testing.assert_close(both.params[k][i], one.params[k][0], rtol=1e-6, atol=1e-9)
        assert [h["total"][i] for h in both.history] == pytest.approx([h["total"][0] for h in one.history], rel=1e-9)


def test_inner_gradient_matches_finite_differences(float64, cfg_of):
    cfg, s0 = cfg_of()
    ys = _y(1).double()
    prob, params, _ = PublishedRun(cfg, CPU).setup(ys, s0, init={k: v.double() for k, v in initial_theta(cfg, seed=1).items()})
    params = {k: v.double() for k, v in params.items()}
    st = plan_stages(cfg, s0)[1]  # the pair: fit + λ·cross

    def f(p):
        return prob.batched_loss(p, st)[0].sum()

    g = torch.func.grad(f)(params)
    for key in ("image.head.weight", "kernel.net.4.weight", "image.body.down.0.1.bias"):
        flat = g[key].flatten()
        i = int(flat.abs().argmax())
        e = torch.zeros_like(params[key]).flatten()
        e[i] = 1e-6
        e = e.view_as(params[key])
        num = (f({**params, key: params[key] + e}) - f({**params, key: params[key] - e})) / 2e-6
        assert abs(float(num) - float(flat[i])) <= 1e-4 * abs(float(num)) + 1e-9, (key, float(num), float(flat[i]))


def test_outer_gradient_matches_finite_differences(float64, cfg_of):
    cfg, s0 = cfg_of()
    y, x, k = demo_pair(size=48, kernel_size=7, seed=0)
    ys = torch.from_numpy(y[None, None].astype(np.float64))
    prob, params, _ = PublishedRun(cfg, CPU).setup(ys, s0, init={kk: v.double() for kk, v in initial_theta(cfg, seed=1).items()})
    h, w = y.shape
    c = (prob.ksize[0] - 1) // 2

    def f(p, shift=None):
        x0, k0, _ = prob.functional_render({kk: v[0] for kk, v in p.items()})(0)
        return aligned_error(x0[0, 0, c : c + h, c : c + w], k0[0, 0].flip(0, 1), x, k, 2)

    lo, _, d = f(params)
    for key in ("image.head.bias", "kernel.net.4.weight"):
        p = {kk: v.clone().requires_grad_(kk == key) for kk, v in params.items()}
        g = torch.autograd.grad(f(p)[0], p[key])[0].flatten()
        i = int(g.abs().argmax())
        e = torch.zeros_like(params[key]).flatten()
        e[i] = 1e-6
        e = e.view_as(params[key])
        plus, _, dp = f({**params, key: params[key] + e})
        minus, _, dm = f({**params, key: params[key] - e})
        assert dp == dm == d  # the chosen translation does not move under the perturbation
        num = (plus - minus) / 2e-6
        assert abs(float(num) - float(g[i])) <= 1e-4 * abs(float(num)) + 1e-10, (key, float(num), float(g[i]))


def test_meta_sgd_step_size_gradient_is_exact_after_one_inner_step(float64, cfg_of):
    """After one Adam step φ₁ = φ₀ − α·u (u independent of α), so dL(φ₁)/d log α = −α⟨∇L(φ₁), u⟩ exactly."""
    from cbid_meta.optim.loop import LoopState, optimise

    cfg, s0 = cfg_of()
    ys = _y(1).double()
    prob, params, group_of = PublishedRun(cfg, CPU).setup(ys, s0, init={k: v.double() for k, v in initial_theta(cfg, seed=2).items()})
    st = plan_stages(cfg, s0)[:1]
    st = [dataclasses.replace(st[0], steps=1)]
    y, x, k = demo_pair(size=48, kernel_size=7, seed=0)
    h, w = y.shape
    c = (prob.ksize[0] - 1) // 2

    def outer(p):
        x0, k0, _ = prob.functional_render({kk: v[0] for kk, v in p.items()})(0)
        return aligned_error(x0[0, 0, c : c + h, c : c + w], k0[0, 0].flip(0, 1), x, k, 2)[0]

    def run(lr_image):
        s = optimise(prob.batched_loss, LoopState({kk: v.clone() for kk, v in params.items()}), group_of,
                     {"image": lr_image, "kernel": 1e-3}, st, cfg.schedule, track_updates=True)
        return s

    a = 2e-3
    s = run(a)
    phi = {kk: v.detach().requires_grad_(True) for kk, v in s.params.items()}
    lo = outer(phi)
    grads = torch.autograd.grad(lo, [phi[kk] for kk in phi])
    est = -a * sum(float(torch.sum(g * s.update_sums[kk])) for kk, g in zip(phi, grads) if kk.startswith("image."))
    eps = 1e-4
    num = (float(outer(run(a * np.exp(eps)).params)) - float(outer(run(a * np.exp(-eps)).params))) / (2 * eps)
    assert abs(num) > 1e-8 and est == pytest.approx(num, rel=1e-3)


def test_aligned_error_finds_the_translation_a_blind_estimate_is_free_to_take():
    """(x(u + d), k(q − d)) blurs like (x, k): the error of that pair is zero, at translation d."""
    y, x, k = demo_pair(size=48, kernel_size=7, seed=0)
    K = 11
    kb = np.zeros((K, K))
    kb[2:9, 2:9] = k
    d = (1, -2)
    k_shift = np.roll(kb, d, (0, 1))  # k(q - d)
    big = np.pad(x, 10, mode="reflect")
    x_shift = np.roll(big, (-d[0], -d[1]), (0, 1))[10:-10, 10:-10]  # x(u + d)
    # both pairs blur alike (away from the borders)
    b1 = conv_valid(torch.from_numpy(np.pad(x, 10, mode="reflect"))[None, None], torch.from_numpy(kb)[None, None])[0, 0].numpy()
    b2 = conv_valid(torch.from_numpy(np.roll(np.pad(x, 10, mode="reflect"), (-d[0], -d[1]), (0, 1)))[None, None],
                    torch.from_numpy(k_shift)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(b1[8:-8, 8:-8], b2[8:-8, 8:-8], atol=1e-10)
    err, mse, found = aligned_error(torch.from_numpy(x_shift), torch.from_numpy(k_shift), x, k, 3)
    assert found == d and float(err) < 1e-20 and float(mse) < 1e-20
    err0, _, _ = aligned_error(torch.from_numpy(x_shift), torch.from_numpy(k_shift), x, k, 1)  # window too small
    assert float(err0) > 1e-4


def _tiny_init(tiny, tmp_path, **kw):
    return meta_train(MetaConfig(**{**tiny, "outer_steps": 1, **kw}), tmp_path / "m")


def test_meta_train_published_makes_a_published_initialiser(tmp_path, cfg_of, tiny):
    init = _tiny_init(tiny, tmp_path, algorithm="fomaml")
    assert init.published and set(init.lrs) == {"image", "kernel"}
    assert init.image_config["width"] == 4 and init.image_config["name"] == "fourier_unet"
    cfg, _ = cfg_of()
    assert set(init.params) == set(initial_theta(cfg))
    rows = (tmp_path / "m" / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["step", "outer_loss", "psnr_adapted"] and len(rows) == 2


def test_reptile_moves_theta_towards_the_adapted_parameters(tmp_path, cfg_of, tiny):
    cfg = MetaConfig(**{**tiny, "outer_steps": 1, "algorithm": "reptile", "meta_sgd": False, "outer_lr": 1e-3})
    init = meta_train(cfg, tmp_path / "r")
    th0 = initial_theta(cfg_of()[0], seed=cfg.seed)
    moved = sum(float((init.params[k] - th0[k]).abs().sum()) for k in th0)
    assert moved > 0


def test_resume_equals_uninterrupted(tmp_path, tiny):
    cfg = MetaConfig(**{**tiny, "outer_steps": 3, "algorithm": "fomaml"})
    full = meta_train(cfg, tmp_path / "full")
    meta_train(dataclasses.replace(cfg, outer_steps=2), tmp_path / "cut")
    resumed = meta_train(cfg, tmp_path / "cut", resume=True)
    for k in full.params:
        torch.testing.assert_close(full.params[k], resumed.params[k], rtol=1e-5, atol=1e-6)
    assert full.lrs == pytest.approx(resumed.lrs, rel=1e-5)


def test_save_load_gives_identical_test_time_runs(tmp_path, cfg_of, tiny):
    init = _tiny_init(tiny, tmp_path)
    back = MetaInit.load(init.save(tmp_path / "init.safetensors"))
    assert back.published and back.lrs == init.lrs
    cfg, _ = cfg_of(support=9, steps=6, size=64)
    y = demo_pair(size=64, kernel_size=7)[0]
    a = Deblurrer(cfg).run(y, init=init)
    b = Deblurrer(cfg).run(y, init=back)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.kernel, b.kernel)
    c = Deblurrer(cfg).run(y)  # from scratch: another start
    assert not np.array_equal(a.image, c.image)


def test_test_time_run_starts_from_theta_with_the_learned_step_sizes(tmp_path, cfg_of, tiny):
    init = _tiny_init(tiny, tmp_path)
    init.lrs = {"image": 0.0, "kernel": 0.0}  # no step: the output is θ's own render
    cfg, _ = cfg_of(support=9, steps=4, size=64)
    y = demo_pair(size=64, kernel_size=7)[0]
    res = Deblurrer(cfg).run(y, init=init)
    run = PublishedRun(cfg, CPU)
    prob, params, _ = run.setup(torch.from_numpy(y[None, None].astype(np.float32)), 1, init=init.params)
    img, ker = prob.snapshot(params)
    np.testing.assert_allclose(res.image, img, atol=1e-6)
    np.testing.assert_allclose(res.kernel, ker, atol=1e-8)


def test_a_crop_trained_initialiser_renders_a_full_size_image(tmp_path, cfg_of, tiny):
    init = _tiny_init(tiny, tmp_path)  # trained on 48-px crops
    cfg, s0 = cfg_of(support=15, steps=4, size=120)
    run = PublishedRun(cfg, CPU)
    prob, params, _ = run.setup(torch.zeros(1, 1, 120, 100), s0, init=init.params)
    with torch.no_grad():
        for s in range(prob.depth + 1):
            x_s, k_s, _ = prob.functional_render({k: v[0] for k, v in params.items()})(s)
            assert x_s.shape[-2:] == prob.latent_size(s) and k_s.shape[-1] == prob.ksize[s]
            assert 0 <= float(x_s.min()) and float(x_s.max()) <= 1 and torch.isfinite(x_s).all()


def test_initialisers_are_refused_by_the_other_generators(tmp_path, cfg_of, tiny):
    init = _tiny_init(tiny, tmp_path)
    y = demo_pair(size=64, kernel_size=7)[0]
    fast = load_recipe("fast").with_total_steps(4, 2)
    fast.kernel_size = 9
    with pytest.raises(InputError, match="published generators"):
        Deblurrer(fast).run(y, init=init)
    wide, _ = cfg_of(support=9, steps=4, size=64, width=8)
    with pytest.raises(InputError, match="width=4"):
        Deblurrer(wide).run(y, init=init)
    grid = MetaInit.load(__import__("cbid_meta.meta.init", fromlist=["default_init_path"]).default_init_path("fast"))
    narrow, _ = cfg_of(support=9, steps=4, size=64)
    with pytest.raises(InputError, match="grid generators"):
        Deblurrer(narrow).run(y, init=grid)


def test_tasks_one_by_one_give_the_batched_meta_gradient(float64, tiny):
    """task_batch = 1 adapts the tasks of a step one at a time: the meta-gradients of the stacked batch (float64: in
    float32 the inner Adam's first, sign-like steps turn rounding differences into percent-level ones)."""
    from cbid_meta.config import load_recipe as load
    from cbid_meta.meta.published import PublishedLearner
    from cbid_meta.meta.tasks import TaskSampler, builtin_images

    out = []
    for tb in (0, 1):
        mc = MetaConfig(**{**tiny, "task_batch": tb})
        sampler = TaskSampler(builtin_images("train", n_leaves=mc.n_leaves, seed=mc.seed), mc.crop, (mc.kernel_min, mc.kernel_max), (0.0, mc.noise_max), mc.seed)
        learner = PublishedLearner(mc, load(mc.recipe), sampler, "cpu")
        theta = learner.initial_theta()
        out.append(learner.process(0, [0, 1], theta, learner.lr0()))
    (ga, la, sa), (gb, lb, sb) = out
    va = torch.cat([ga[k].flatten() for k in sorted(ga)])
    vb = torch.cat([gb[k].flatten() for k in sorted(gb)])
    assert float((va - vb).norm()) <= 1e-6 * float(va.norm())
    torch.testing.assert_close(la, lb, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(sa, sb, rtol=1e-5, atol=1e-7)
    assert float(sa[2]) == 2  # two tasks counted


def test_resume_may_regroup_the_tasks_but_not_change_the_task_set(tmp_path, tiny):
    """A run checkpointed with one task_batch resumes with another (a CPU run continued on a GPU); other settings are refused."""
    meta_train(MetaConfig(**{**tiny, "outer_steps": 1, "task_batch": 1}), tmp_path / "r")
    init = meta_train(MetaConfig(**{**tiny, "outer_steps": 2, "task_batch": 0}), tmp_path / "r", resume=True)
    assert init.published and len((tmp_path / "r" / "metrics.csv").read_text().strip().splitlines()) == 1 + 2
    with pytest.raises(InputError, match="different settings"):
        meta_train(MetaConfig(**{**tiny, "outer_steps": 3, "meta_batch": 3}), tmp_path / "r", resume=True)


def test_paper_w32_has_a_packaged_initialiser_and_a_published_recipe_file_starts_from_scratch(tmp_path):
    from cbid_meta.api import resolve_init
    from cbid_meta.meta.init import default_init_path, load_default_init

    init = load_default_init("paper_w32")
    assert init is not None and init.published and init.image_config["width"] == 32 and init.steps == 500
    assert default_init_path("paper_w32").name == "paper_w32_init.safetensors"
    cfg = load_recipe("paper_w32")
    init.check(cfg.image, cfg.kernel)  # it fits the recipe it is packaged for
    mine = tmp_path / "mine.toml"
    mine.write_text('base = "paper"\n')
    assert load_default_init(str(mine)) is None and resolve_init(str(mine)) is None  # scratch, not a refused grid start
    grid = tmp_path / "grid.toml"
    grid.write_text('base = "fast"\n')
    assert not load_default_init(str(grid)).published
    assert load_default_init("paper") is None
