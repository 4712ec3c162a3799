"""Meta-learning: torch.func inner loop, meta-gradients, checkpoints, resume, CLI."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from cbid_meta.cli.main import main
from cbid_meta.config import load_recipe
from cbid_meta.data import demo_pair
from cbid_meta.errors import InputError
from cbid_meta.meta import MetaInit
from cbid_meta.meta.learner import adapt, build_problem, outer_loss, shared_state
from cbid_meta.meta.tasks import HELDOUT_PHOTOS, TRAIN_PHOTOS, TaskSampler, builtin_images, dead_leaves
from cbid_meta.meta.train import MetaConfig, load_meta_recipe, meta_train
from cbid_meta.optim import Deblurrer

TINY = dict(inner_steps=6, meta_batch=2, n_leaves=3, crop=64, kernel_min=5, kernel_max=9, kernel_margin=2, checkpoint_every=1)


@pytest.fixture(scope="module")
def small_problem():
    y, x, k = demo_pair(size=48, kernel_size=7)
    cfg = load_recipe("fast").with_total_steps(9, 2)
    cfg.kernel_size = 9
    return cfg, y, x, k


def _lrs(cfg):
    return {"image_grids": cfg.schedule.lr_image, "image_mlp": cfg.schedule.lr_image, "kernel": cfg.schedule.lr_kernel}


def test_inner_loop_is_the_per_image_loop(small_problem):
    """Meta-learning adapts with the very loop `cbid deblur` runs: same losses, step by step."""
    cfg, y, _, _ = small_problem
    prob = build_problem(cfg, y)
    res = adapt(prob, shared_state(prob), _lrs(cfg))
    ref = Deblurrer(cfg).run(y.astype(np.float32))
    a = np.array([h["fit"] for h in res.history])
    b = np.array([h["fit"] for h in ref.history])
    assert len(a) == len(b) > 3
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_loop_update_is_torch_adam():
    """The loop's Adam (explicit parameters, torch.func.grad) against torch.optim.Adam, with two
    learning-rate groups, a milestone and the cosine decay of the final stage."""
    from types import SimpleNamespace

    from cbid_meta.optim.deblur import Stage
    from cbid_meta.optim.loop import LoopState, lr_factor, optimise

    torch.manual_seed(0)
    target = torch.randn(5)
    p0 = {"a": torch.randn(5), "b": torch.randn(3, 5)}  # float32, where rounding would show
    stages = [Stage("stage1", (0,), 6, False, 0.0), Stage("final", (0,), 9, False, 0.0)]
    sch = SimpleNamespace(lr_gamma=0.5, lr_milestones=[4, 11], lr_decay=0.1)
    lrs, group_of = {"g1": 0.05, "g2": 0.01}, {"a": "g1", "b": "g2"}

    def loss(p, st):
        r = p["b"] @ p["a"] - target[:3]
        return (r**2).sum() + (p["a"] ** 4).sum(), {"fit": (r**2).sum()}

    out = optimise(loss, LoopState({k: v.clone() for k, v in p0.items()}), group_of, lrs, stages, sch)
    ref = {k: v.clone().requires_grad_(True) for k, v in p0.items()}
    opt = torch.optim.Adam([{"params": [ref["a"]], "lr": 0.05}, {"params": [ref["b"]], "lr": 0.01}])
    step = 0
    for st in stages:
        for i in range(st.steps):
            f = lr_factor(sch, st, i, step)
            for g, lr in zip(opt.param_groups, (0.05, 0.01)):
                g["lr"] = lr * f
            opt.zero_grad()
            loss(ref, st)[0].backward()
            opt.step()
            step += 1
    assert out.t == 15 and len(out.history) == 15
    for k in p0:  # the same operations in the same order: bit for bit
        assert torch.equal(out.params[k], ref[k].detach()), k
    assert lr_factor(sch, stages[1], 8, 14) == 0.25 * 0.1  # two milestones passed, end of the cosine


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _double_problem(cfg, y):
    return Deblurrer(cfg).setup(torch.from_numpy(np.asarray(y, dtype=np.float64))[None, None])


def test_inner_gradient_matches_finite_differences(small_problem, float64):
    cfg, y, _, _ = small_problem
    prob = _double_problem(cfg, y)
    from cbid_meta.optim.deblur import plan_stages

    st = plan_stages(cfg, prob.s0)[1]
    params = {k: v.detach() for g in prob.param_groups().values() for k, v in g.items()}
    torch.manual_seed(0)
    params = {k: v + 0.05 * torch.randn_like(v) for k, v in params.items()}  # away from the zero-init layer

    def f(p):
        return prob.step_loss(st, prob.functional_render(p))[0]

    g = torch.func.grad(f)(params)
    checked = 0
    for key in ("kernel.mlp.4.weight", "image.mlp.0.bias"):
        flat = g[key].flatten()
        idx = int(flat.abs().argmax())
        e = torch.zeros_like(params[key]).flatten()
        e[idx] = 1e-6
        e = e.view_as(params[key])
        num = (f({**params, key: params[key] + e}) - f({**params, key: params[key] - e})) / 2e-6
        assert abs(float(num) - float(flat[idx])) <= 1e-4 * abs(float(num)) + 1e-10, (key, float(num), float(flat[idx]))
        checked += 1
    assert checked == 2


def test_outer_gradient_matches_finite_differences(small_problem, float64):
    cfg, y, x, k = small_problem
    prob = _double_problem(cfg, y)
    torch.manual_seed(1)
    params = {kk: (v.detach() + 0.05 * torch.randn_like(v)).requires_grad_(True) for g in prob.param_groups().values() for kk, v in g.items()}
    sharp = x
    lo, _ = outer_loss(prob, params, sharp, k)
    key = "image.mlp.0.bias"
    g = torch.autograd.grad(lo, params[key])[0]
    i = int(g.abs().argmax())
    e = torch.zeros_like(params[key])
    e[i] = 1e-6
    with torch.no_grad():
        num = (outer_loss(prob, {**params, key: params[key] + e}, sharp, k)[0] - outer_loss(prob, {**params, key: params[key] - e}, sharp, k)[0]) / 2e-6
    assert abs(float(num) - float(g[i])) <= 1e-4 * abs(float(num)) + 1e-10


def test_reptile_moves_theta_towards_adapted_parameters(tmp_path):
    cfg = MetaConfig(algorithm="reptile", outer_steps=1, meta_sgd=False, outer_lr=1e-2, **TINY)
    init0 = meta_train(dataclasses.replace(cfg, outer_steps=0 + 1, outer_lr=0.0), tmp_path / "zero")
    init1 = meta_train(cfg, tmp_path / "one")
    # recompute the adapted parameters of the first meta-batch from θ0
    from cbid_meta.meta.train import _dataset, _task_config
    from cbid_meta.meta.tasks import TaskSampler as TS

    sampler = TS(_dataset(cfg), cfg.crop, (cfg.kernel_min, cfg.kernel_max), (0.0, cfg.noise_max), cfg.seed)
    base = load_recipe(cfg.recipe)
    delta = {k: torch.zeros_like(v) for k, v in init0.params.items()}
    for j in range(cfg.meta_batch):
        task = sampler.sample(1 + j)
        prob = build_problem(_task_config(cfg, base, task.kernel.shape[0], cfg.seed + j), task.blurry)
        res = adapt(prob, init0.params, _lrs(base))
        for k in delta:
            if k != "kernel.freqs":
                delta[k] += res.params[k] - init0.params[k]
    moved = {k: init1.params[k] - init0.params[k] for k in delta if k != "kernel.freqs"}
    dots = [float(torch.sum(moved[k] * delta[k])) for k in moved if delta[k].abs().sum() > 0]
    assert sum(d > 0 for d in dots) >= 0.9 * len(dots)


def test_fomaml_step_lowers_the_outer_loss_on_its_task(tmp_path):
    cfg = MetaConfig(algorithm="fomaml", outer_steps=1, meta_sgd=True, outer_lr=1e-3, lr_lr=0.01, **{**TINY, "meta_batch": 1})
    init0 = meta_train(dataclasses.replace(cfg, outer_lr=0.0, lr_lr=0.0), tmp_path / "a")
    init1 = meta_train(cfg, tmp_path / "b")
    from cbid_meta.meta.train import _dataset, _task_config

    sampler = TaskSampler(_dataset(cfg), cfg.crop, (cfg.kernel_min, cfg.kernel_max), (0.0, cfg.noise_max), cfg.seed)
    task = sampler.sample(1)
    base = load_recipe(cfg.recipe)

    def loss(init):
        prob = build_problem(_task_config(cfg, base, task.kernel.shape[0], cfg.seed), task.blurry)
        res = adapt(prob, init.params, init.lrs)
        return float(outer_loss(prob, res.params, task.sharp, task.kernel)[0])

    assert loss(init1) < loss(init0)
    assert init1.lrs != init0.lrs  # Meta-SGD step sizes moved


def test_checkpoint_roundtrip_gives_identical_outputs(tmp_path, small_problem):
    cfg, y, _, _ = small_problem
    init = meta_train(MetaConfig(outer_steps=1, **TINY), tmp_path / "m")
    p = init.save(tmp_path / "init.safetensors")
    back = MetaInit.load(p)
    assert back.lrs == init.lrs and set(back.params) == set(init.params)
    c = dataclasses.replace(cfg, kernel_size=9)
    a = Deblurrer(c).run(y.astype(np.float32), init=init)
    b = Deblurrer(c).run(y.astype(np.float32), init=back)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.kernel, b.kernel)
    assert json.loads(p.with_suffix(".json").read_text())["format"] == "cbid_meta.init/1"


def test_resume_equals_uninterrupted(tmp_path):
    cfg = MetaConfig(outer_steps=3, **TINY)
    full = meta_train(cfg, tmp_path / "full")
    meta_train(dataclasses.replace(cfg, outer_steps=2), tmp_path / "cut")
    resumed = meta_train(cfg, tmp_path / "cut", resume=True)
    for k in full.params:
        torch.testing.assert_close(full.params[k], resumed.params[k], rtol=1e-5, atol=1e-6)
    assert full.lrs == pytest.approx(resumed.lrs, rel=1e-5)
    rows = (tmp_path / "cut" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # header + one line per outer step, none lost or repeated


def test_resume_refuses_other_settings(tmp_path):
    cfg = MetaConfig(outer_steps=1, **TINY)
    meta_train(cfg, tmp_path / "r")
    with pytest.raises(InputError, match="different settings"):
        meta_train(dataclasses.replace(cfg, inner_steps=7), tmp_path / "r", resume=True)


def test_task_splits_are_disjoint_and_seeded():
    assert not set(TRAIN_PHOTOS) & set(HELDOUT_PHOTOS)
    from cbid_meta.evaluation.datasets import _SOURCES

    assert not set(TRAIN_PHOTOS) & {s for s, _, _ in _SOURCES}
    tr = builtin_images("train", n_leaves=2)
    ho = builtin_images("heldout", n_leaves=2)
    assert not set(tr["source"]) & set(ho["source"])
    a = dead_leaves(64, 1)
    assert a.shape == (64, 64) and 0 <= a.min() and a.max() <= 1 and a.std() > 0.05
    s = TaskSampler(tr, crop=64, kernel_range=(5, 9))
    t1, t2 = s.sample(5), s.sample(5)
    assert np.array_equal(t1.blurry, t2.blurry) and t1.kernel.shape[0] in (5, 7, 9)


def test_meta_recipe_and_bad_values(tmp_path):
    cfg = load_meta_recipe("recipes/meta_default.toml")
    assert cfg.algorithm in ("reptile", "fomaml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta]\nouter_stepz = 3\n")
    with pytest.raises(InputError, match="unknown key"):
        load_meta_recipe(bad)
    with pytest.raises(InputError):
        MetaConfig(algorithm="maml2").validate()


def test_cli_meta_train_and_deblur_with_init(tmp_path):
    out = tmp_path / "mt"
    main(["meta-train", "-o", str(out), "--outer-steps", "1", "--meta-batch", "1", "--inner-steps", "4", "--kernel-min", "5", "--kernel-max", "9", "--seed", "1"])
    assert (out / "init.safetensors").is_file() and (out / "metrics.csv").is_file()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["train_seconds"] > 0 and summary["train_peak_mib"] > 0
    from cbid_meta.io import save_image

    y, _, _ = demo_pair(size=64, kernel_size=7)
    save_image(tmp_path / "b.png", y)
    main(["deblur", str(tmp_path / "b.png"), "-o", str(tmp_path / "o"), "-k", "9", "--init", str(out / "init.safetensors"), "--steps", "6", "-r", "fast"])
    rec = json.loads((tmp_path / "o" / "b.json").read_text())
    assert rec["mode"] == "meta"
    with pytest.raises(SystemExit) as e:
        main(["deblur", str(tmp_path / "b.png"), "-o", str(tmp_path / "o2"), "--init", str(tmp_path / "b.png")])
    assert e.value.code == 2
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())  # nothing written
