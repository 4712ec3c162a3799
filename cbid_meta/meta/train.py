"""Meta-training loop (``cbid meta-train``), run with :mod:`accelerate`.

The same code runs on 1 CPU process, several processes and GPUs unchanged.
Every process adapts to its share of the meta-batch (task ``j`` of outer
step ``s`` goes to process ``j mod world``); the meta-gradients are summed
across processes with ``accelerator.reduce`` and every process applies the
same outer Adam step, so θ stays identical everywhere.  Tasks are a pure
function of ``(seed, s, j)``, which makes a resumed run draw exactly the
tasks an uninterrupted one would, whatever the number of processes.

Multi-process on a CPU-only machine (measured with accelerate 1.15)::

    torchrun --nproc_per_node 2 -m cbid_meta.cli.main meta-train ...

Checkpoints (``OUT/last.safetensors`` + ``OUT/last.json``) hold θ, the
step sizes, the outer optimiser state and the step; ``--resume`` continues
from them.  ``OUT/metrics.csv`` logs every outer step.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .init import MetaInit
from .learner import ALGORITHMS, adapt, build_problem, outer_loss, shared_state

__all__ = ["MetaConfig", "meta_train", "load_meta_recipe"]


@dataclass
class MetaConfig:
    algorithm: str = "reptile"  # reptile | fomaml
    meta_sgd: bool = True  # learn one inner step size per parameter group
    recipe: str = "fast"  # the per-image recipe whose generators / losses are meta-learned
    inner_steps: int = 60  # the shortened progressive schedule of one task
    meta_batch: int = 4
    outer_steps: int = 200
    outer_lr: float = 3e-3
    lr_lr: float = 0.02  # Adam step on the log step sizes
    kernel_weight: float = 1.0
    crop: int = 192  # 192 px gives the same coarsest scale (S0 = 2) as Levin's 255 px
    kernel_min: int = 9
    kernel_max: int = 27
    noise_max: float = 0.01
    kernel_margin: int = 10  # same support margin as the Levin benchmark of the scratch mode
    width: int = 0  # published recipe: the U-Net width to meta-train (0: the recipe's)
    task_batch: int = 0  # published recipe: tasks adapted together (stacked, vmap); 0: all of a process's tasks, 1: one by one
    n_leaves: int = 48
    leaf_size: int = 256  # side of the dead-leaves images (crop + the largest kernel must fit)
    data: str = ""  # optional image folder (datasets imagefolder), added to the built-in source
    seed: int = 0
    checkpoint_every: int = 10
    test_steps: int = 80  # recommended test-time budget stored in the initialiser

    def validate(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"unknown algorithm '{self.algorithm}' (choose {', '.join(ALGORITHMS)})")
        if self.task_batch < 0:
            raise InputError(f"task-batch must be 0 (all) or more, got {self.task_batch}")
        for name in ("inner_steps", "meta_batch", "outer_steps", "checkpoint_every", "test_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be at least 1")
        if not 3 <= self.kernel_min <= self.kernel_max:
            raise InputError(f"bad kernel-size range {self.kernel_min}..{self.kernel_max}")
        if not 0 <= self.noise_max < 0.5:
            raise InputError(f"noise must be in [0, 0.5), got {self.noise_max}")


def load_meta_recipe(path: str | os.PathLike) -> MetaConfig:
    from ..config import read_recipe_toml

    p, data = read_recipe_toml(path)
    data = data.get("meta", data)
    known = {f.name for f in dataclasses.fields(MetaConfig)}
    bad = sorted(set(data) - known)
    if bad:
        raise InputError(f"unknown key(s) {', '.join(bad)} in {p}")
    return MetaConfig(**data)


def _dataset(cfg: MetaConfig):
    from .tasks import builtin_images, folder_images

    ds = builtin_images("train", n_leaves=cfg.n_leaves, size=cfg.leaf_size, seed=cfg.seed)
    if cfg.data:
        import datasets

        extra = folder_images(cfg.data)
        extra = extra.cast_column("image", ds.features["image"]).select_columns(["image", "source"])
        ds = datasets.concatenate_datasets([ds, extra])
    return ds


def fingerprint(ds) -> str:
    """Hash of the training images (content) and their sources."""
    h = hashlib.sha256()
    for im, src in zip(ds["image"], ds["source"]):
        h.update(src.encode())
        h.update(np.asarray(im.convert("L")).tobytes())
    return h.hexdigest()[:16]


def _task_config(cfg: MetaConfig, base, kernel_size: int, seed: int):
    from ..generators import auto_coarsest_scale

    c = dataclasses.replace(base, kernel_size=kernel_size + cfg.kernel_margin, seed=seed)
    s0 = auto_coarsest_scale(c.kernel_size, cfg.crop, cfg.crop) if c.schedule.coarsest_scale < 0 else c.schedule.coarsest_scale
    return c.with_total_steps(cfg.inner_steps, s0 + 1)


class GridLearner:
    """One outer step's work for the grid generators (``fast`` / ``paper_grid`` recipes): θ is the decoder
    MLP of Φx and the kernel MLP of Φk (:mod:`cbid_meta.meta.learner`); tasks adapt one by one."""

    groups = ("image_grids", "image_mlp", "kernel")
    fixed_keys = ("kernel.freqs",)
    method = "grid"

    def __init__(self, cfg: MetaConfig, base, sampler, device):
        if cfg.width:
            raise InputError("width: only for the published recipe")
        self.cfg, self.base, self.sampler, self.device = cfg, base, sampler, device

    def initial_theta(self) -> dict[str, torch.Tensor]:
        """θ from a reference problem (seeded)."""
        t0 = self.sampler.sample(0)
        ref = build_problem(_task_config(self.cfg, self.base, t0.kernel.shape[0], self.cfg.seed), t0.blurry, self.device)
        return {k: v.to(self.device) for k, v in shared_state(ref).items()}

    def lr0(self) -> dict[str, float]:
        sch = self.base.schedule
        return {"image_grids": sch.lr_image, "image_mlp": sch.lr_image, "kernel": sch.lr_kernel}

    def process(self, step: int, indices: list[int], theta: dict[str, torch.Tensor], lrs: dict[str, float]):
        cfg = self.cfg
        names = [k for k in theta if k not in self.fixed_keys]
        g_sum = {k: torch.zeros_like(theta[k]) for k in names}
        g_lr = torch.zeros(len(self.groups), device=self.device)
        stats = torch.zeros(3, device=self.device)  # outer loss, image mse, count
        for j in indices:
            task = self.sampler.sample(1 + step * cfg.meta_batch + j)
            tcfg = _task_config(cfg, self.base, task.kernel.shape[0], cfg.seed + step * cfg.meta_batch + j)
            prob = build_problem(tcfg, task.blurry, self.device)
            th = {k: v.detach() for k, v in theta.items()}
            res = adapt(prob, th, lrs)
            phi = {k: v.detach().requires_grad_(k != "kernel.freqs") for k, v in res.params.items()}
            lo, mse = outer_loss(prob, phi, task.sharp, task.kernel, cfg.kernel_weight)
            trainable = [k for k in phi if phi[k].requires_grad]
            grads = dict(zip(trainable, torch.autograd.grad(lo, [phi[k] for k in trainable])))
            for k in names:
                if cfg.algorithm == "reptile":
                    g_sum[k] += theta[k].detach() - res.params[k].detach()
                else:
                    g_sum[k] += grads[k]
            if cfg.meta_sgd:
                for gi, g in enumerate(self.groups):
                    dot = sum(torch.sum(grads[k] * u) for k, u in res.update_sums[g].items())
                    g_lr[gi] += -lrs[g] * dot
            stats += torch.tensor([float(lo.detach()), float(mse.detach()), 1.0], device=self.device)
        return g_sum, g_lr, stats

    def init_info(self) -> dict:
        return {"method": self.method}


def learner_for(cfg: MetaConfig, base, sampler, device):
    """The learner of the recipe's generators: :class:`~cbid_meta.meta.published.PublishedLearner` for the
    published method (``pyramid = "decimate"``), :class:`GridLearner` otherwise."""
    if base.schedule.pyramid == "decimate":
        from .published import PublishedLearner

        return PublishedLearner(cfg, base, sampler, device)
    return GridLearner(cfg, base, sampler, device)


def meta_train(cfg: MetaConfig, out: str | os.PathLike, resume: bool = False, device: str = "cpu", progress=None) -> MetaInit | None:
    """Meta-train; returns the final :class:`MetaInit` on the main process (None elsewhere)."""
    from accelerate import Accelerator

    from ..config import load_recipe
    from .tasks import TaskSampler

    cfg.validate()
    acc = Accelerator(cpu=device == "cpu")
    out = Path(out)
    base = load_recipe(cfg.recipe)
    ds = _dataset(cfg)
    fp = fingerprint(ds)
    sampler = TaskSampler(ds, cfg.crop, (cfg.kernel_min, cfg.kernel_max), (0.0, cfg.noise_max), cfg.seed)
    learner = learner_for(cfg, base, sampler, acc.device)
    groups = learner.groups

    # θ (seeded), step sizes from the recipe
    theta = learner.initial_theta()
    names = [k for k in theta if k not in learner.fixed_keys]
    lr0 = learner.lr0()
    log_lr = torch.tensor([float(np.log(lr0[g])) for g in groups], dtype=torch.float32, device=acc.device)
    leaves = [theta[k].requires_grad_(True) for k in names]
    log_lr.requires_grad_(True)
    opt = torch.optim.Adam([{"params": leaves, "lr": cfg.outer_lr}, {"params": [log_lr], "lr": cfg.lr_lr}])
    start = 0
    ckpt = out / "last.safetensors"
    if resume and ckpt.is_file():
        start = _load_checkpoint(ckpt, theta, [*names, *learner.fixed_keys], log_lr, opt, cfg, fp)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.csv"
    if acc.is_main_process and start == 0 and metrics_path.exists():
        metrics_path.unlink()
    tstart = time.perf_counter()
    for step in range(start, cfg.outer_steps):
        ts = time.perf_counter()
        lrs = {g: float(torch.exp(log_lr[i].detach())) for i, g in enumerate(groups)}
        mine = list(range(acc.process_index, cfg.meta_batch, acc.num_processes))
        g_sum, g_lr, stats = learner.process(step, mine, theta, lrs)
        g_sum = [g_sum[k] for k in names]
        flat = torch.cat([g.flatten() for g in g_sum] + [g_lr, stats])
        flat = acc.reduce(flat, reduction="sum")
        n = 0
        opt.zero_grad(set_to_none=True)
        for i, k in enumerate(names):
            sz = theta[k].numel()
            leaves[i].grad = flat[n : n + sz].view_as(theta[k]) / cfg.meta_batch
            n += sz
        ng = len(groups)
        log_lr.grad = flat[n : n + ng] / cfg.meta_batch if cfg.meta_sgd else torch.zeros_like(log_lr)
        stats = flat[n + ng : n + ng + 3]
        opt.step()
        with torch.no_grad():
            log_lr.clamp_(np.log(1e-5), np.log(0.1))
        rec = {
            "step": step + 1,
            "outer_loss": float(stats[0] / stats[2]),
            "psnr_adapted": float(-10 * np.log10(max(float(stats[1] / stats[2]), 1e-12))),
            "seconds": time.perf_counter() - ts,
            **{f"lr_{g}": float(torch.exp(log_lr[i].detach())) for i, g in enumerate(groups)},
        }
        if acc.is_main_process:
            _append_metric(metrics_path, rec)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.outer_steps:
                _save_checkpoint(ckpt, theta, [*names, *learner.fixed_keys], log_lr, opt, cfg, fp, step + 1, acc.num_processes)
        if progress:
            progress(step + 1, cfg.outer_steps, rec)
        acc.wait_for_everyone()
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return None
    init = _make_init(theta, [*names, *learner.fixed_keys], log_lr, cfg, fp, learner, acc.num_processes, time.perf_counter() - tstart)
    return init


def _make_init(theta, keys, log_lr, cfg, fp, learner, world, seconds) -> MetaInit:
    from dataclasses import asdict

    return MetaInit(
        params={k: theta[k].detach().cpu().clone() for k in keys},
        lrs={g: float(torch.exp(log_lr[i].detach())) for i, g in enumerate(learner.groups)},
        image_config=asdict(learner.base.image),
        kernel_config=asdict(learner.base.kernel),
        steps=cfg.test_steps,
        kernel_margin=cfg.kernel_margin,
        info={"meta_config": dataclasses.asdict(cfg), "data_fingerprint": fp, "processes": world, "train_seconds_this_session": round(seconds, 1),
              **learner.init_info()},
    )


def _append_metric(path: Path, rec: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rec))
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in rec.items()})
        f.flush()
        os.fsync(f.fileno())


def _save_checkpoint(path: Path, theta, names, log_lr, opt, cfg, fp, step, world) -> None:
    from safetensors.torch import save_file

    tensors = {f"theta/{k}": theta[k].detach().cpu().contiguous() for k in names}
    tensors["log_lr"] = log_lr.detach().cpu().contiguous()
    st = opt.state_dict()
    for pid, s in st["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            tensors[f"opt/{pid}/{key}"] = s[key].detach().cpu().contiguous()
        tensors[f"opt/{pid}/step"] = torch.as_tensor(float(s["step"])).reshape(1)
    meta = {"step": str(step), "config": json.dumps(dataclasses.asdict(cfg)), "data_fingerprint": fp, "processes": str(world)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    side = path.with_suffix(".json")
    side.with_name(side.name + ".tmp").write_text(json.dumps({**meta, "config": dataclasses.asdict(cfg)}, indent=2))
    side.with_name(side.name + ".tmp").replace(side)


def _load_checkpoint(path: Path, theta, names, log_lr, opt, cfg, fp) -> int:
    from safetensors.torch import load_file, safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    saved = json.loads(meta["config"])
    mine = dataclasses.asdict(cfg)
    free = ("outer_steps", "checkpoint_every", "task_batch")  # task_batch: the same sums, grouped otherwise
    diff = [k for k in mine if k not in free and saved.get(k, MetaConfig.__dataclass_fields__[k].default) != mine[k]]
    if diff:
        raise InputError(f"checkpoint {path} was trained with different settings ({', '.join(diff)}); use another --output or drop --resume")
    if meta.get("data_fingerprint") != fp:
        raise InputError(f"checkpoint {path} was trained on different data (fingerprint {meta.get('data_fingerprint')} vs {fp})")
    t = load_file(str(path))
    with torch.no_grad():
        for k in names:
            theta[k].copy_(t[f"theta/{k}"])
        log_lr.copy_(t["log_lr"])
    st = opt.state_dict()
    n_params = sum(len(g["params"]) for g in st["param_groups"])
    st["state"] = {
        pid: {"step": t[f"opt/{pid}/step"][0].clone(), "exp_avg": t[f"opt/{pid}/exp_avg"], "exp_avg_sq": t[f"opt/{pid}/exp_avg_sq"]}
        for pid in range(n_params)
        if f"opt/{pid}/step" in t
    }
    opt.load_state_dict(st)
    return int(meta["step"])
