r"""Meta-learning of the published generators: the U-Net Φx and the SIREN Φk, all their parameters.

What is learned and what adapts
-------------------------------
* **θ**: every parameter of both published generators (U-Net convolutions and
  BatchNorm affine parameters, SIREN layers).  Neither depends on the image or
  support size: the U-Net sees a Fourier encoding of the ``[0, 1]`` mesh-grid of
  whatever latent grid it renders (so a θ learned on crops renders a full image of
  any size), the SIREN sees tap coordinates in ``[-1, 1]`` of any support.
* **BatchNorm**: always the statistics of the current render (batch of one image,
  as in the authors' code, where the network stays in training mode); no running
  statistics exist (:func:`torch.func.replace_all_batch_norm_modules_`), so the
  inner loop, the test-time loop and a run from scratch normalise alike, and
  problems adapted together in one ``vmap`` batch never see each other's statistics.
* **Meta-SGD step sizes**: one Adam step size per group (``image``, ``kernel``),
  log-parametrised, first-order (:mod:`cbid_meta.meta.learner` explains the estimate).
* At test time every parameter adapts with the published loop
  (:meth:`cbid_meta.optim.published.PublishedRun.run_batch` with ``init=θ``), on the
  published schedule shortened in proportion to the budget.

Inner loop
----------
The published schedule (500 steps at S0, one 500-step pair per step down, the
rest at scale 0; milestones 2000 / 4000) scaled to ``inner_steps`` by
:meth:`~cbid_meta.config.DeblurConfig.with_total_steps`, run by
:meth:`~cbid_meta.optim.published.PublishedRun.adapt` — the per-image loop itself.
The tasks of one outer step share a kernel size (drawn per step), so they run as
one batch of stacked parameters (``torch.func.vmap``).

Outer loss
----------
A synthetic task has its sharp image and kernel.  A blind estimate is determined
up to a translation (the kernel moved by ``d`` and the image by ``−d`` blur alike,
and the centring layer fixes the kernel's centroid, not the true kernel's centre),
so the supervised error is taken at the best whole-pixel translation
(:func:`aligned_error`): image MSE on the interior + ``kernel_weight`` × kernel SSD.
"""
from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import torch

from ..config import DeblurConfig
from ..errors import InputError
from ..optim.deblur import Deblurrer, stage2_blocks
from ..optim.published import PublishedRun

__all__ = ["GROUPS", "aligned_error", "initial_theta", "inner_config", "PublishedLearner"]

GROUPS = ("image", "kernel")


def inner_config(base: DeblurConfig, support: int, steps: int, h: int, w: int) -> tuple[DeblurConfig, int]:
    """The recipe ``base`` on a ``support``-tap kernel and an ``h × w`` image, its schedule scaled to
    ``steps`` in proportion (stages and milestones); returns the config and its S0."""
    cfg = replace(base, kernel_size=support)
    s0 = Deblurrer(cfg).coarsest_scale(h, w)
    return cfg.with_total_steps(steps, stage2_blocks(cfg, s0)), s0


def initial_theta(base: DeblurConfig, channels: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """θ of freshly built published generators (seeded), named as the per-image loop names them."""
    img, ker = PublishedRun(base, torch.device("cpu"))._generators(channels, seed, batched=False)
    return {**{f"image.{k}": v.detach().contiguous().clone() for k, v in img.named_parameters()},
            **{f"kernel.{k}": v.detach().contiguous().clone() for k, v in ker.named_parameters()}}


def aligned_error(x: torch.Tensor, k: torch.Tensor, sharp: np.ndarray, kernel: np.ndarray, max_shift: int,
                  kernel_weight: float = 1.0, border: int = 8) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    r"""Supervised error of a blind estimate at its best whole-pixel translation.

    ``x`` ``(h, w)``: the estimate aligned with the observation (as
    :meth:`~cbid_meta.optim.published.DecimatedProblem.snapshot` crops it); ``k``
    ``(K, K)``: the estimated *convolution* kernel; ``sharp`` ``(h, w)``: the sharp image
    aligned with the observation for ``kernel`` ``(k_s, k_s)`` centred on its middle tap
    (:class:`~cbid_meta.meta.tasks.Task`).  With :math:`y = x \ast k`, the pair
    ``(x(u + d), k(q − d))`` blurs like ``(x, k)``; the error is

    .. math:: \min_{|d|_\infty \le R}\; \operatorname{mean}_{\text{interior}}\big(\hat x(u) - x(u + d)\big)^2
              + w \sum_q \big(\hat k(q) - k(q - d)\big)^2,

    the minimising ``d`` found without gradient and the error differentiated there.
    Returns ``(error, image MSE, d)``.
    """
    h, w = x.shape
    kk = k.shape[-1]
    ks = kernel.shape[0]
    if kk < ks:
        raise InputError(f"estimated support {kk} is smaller than the true kernel ({ks})")
    r = int(max_shift)
    b = r + border
    if min(h, w) <= 2 * b:
        raise InputError(f"image {h}x{w} is too small for a ±{r}-px alignment")
    dev, dt = x.device, x.dtype
    s_t = torch.as_tensor(np.asarray(sharp), device=dev, dtype=dt)
    big = kk + 2 * r
    kt = torch.zeros(big, big, device=dev, dtype=dt)
    o = r + (kk - ks) // 2
    kt[o : o + ks, o : o + ks] = torch.as_tensor(np.asarray(kernel), device=dev, dtype=dt)
    kt = kt / kt.sum()
    k_big = torch.nn.functional.pad(k, (r, r, r, r))
    xin = x[b : h - b, b : w - b]

    def parts(dy: int, dx: int):
        img = torch.mean((xin - s_t[b + dy : h - b + dy, b + dx : w - b + dx]) ** 2)
        # k(q - d): the true kernel moved by +d inside the padded support
        kd = torch.roll(kt, (dy, dx), (0, 1))
        return img, torch.sum((k_big - kd) ** 2)

    with torch.no_grad():
        best, arg = None, (0, 0)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                img, ker = parts(dy, dx)
                e = float(img + kernel_weight * ker)
                if best is None or e < best:
                    best, arg = e, (dy, dx)
    img, ker = parts(*arg)
    return img + kernel_weight * ker, img, arg


class PublishedLearner:
    """One outer step's work for the published generators (the learner :func:`~cbid_meta.meta.train.meta_train`
    uses when the recipe's pyramid is ``decimate``)."""

    groups = GROUPS
    fixed_keys: tuple[str, ...] = ()  # θ entries that are passed on but not trained (none here)
    method = "published"

    def __init__(self, cfg, base: DeblurConfig, sampler, device):
        if base.schedule.pyramid != "decimate":
            raise InputError(f"recipe '{cfg.recipe}' is not the published method (pyramid = 'decimate')")
        if cfg.width:
            base = replace(base, image=replace(base.image, width=cfg.width))
        self.cfg, self.base, self.sampler, self.device = cfg, base, sampler, torch.device(device)
        for name in ("restarts",):
            if int(getattr(base.schedule, name, 1)) != 1:
                raise InputError("meta-training runs one start per task: set [schedule] restarts = 1")

    def initial_theta(self) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in initial_theta(self.base, 1, self.cfg.seed).items()}

    def lr0(self) -> dict[str, float]:
        return {"image": self.base.schedule.lr_image, "kernel": self.base.schedule.lr_kernel}

    def kernel_size(self, step: int) -> int:
        """The (odd) true kernel size of every task of outer step ``step``: a pure function of (seed, step)."""
        lo, hi = self.cfg.kernel_min, self.cfg.kernel_max
        rng = np.random.default_rng([self.cfg.seed, 7919, step])
        return int(rng.integers(lo // 2, hi // 2 + 1)) * 2 + 1 if hi > lo else lo + 1 - lo % 2

    def max_shift(self, support: int) -> int:
        return max(2, support // 4)

    def process(self, step: int, indices: list[int], theta: dict[str, torch.Tensor], lrs: dict[str, float]):
        """Adapt to the tasks ``indices`` of outer step ``step`` (one batch) from θ; returns the summed
        meta-gradient of θ (Reptile: θ − φ_K; FOMAML: ∇ of the outer loss at φ_K), the summed
        first-order gradient of the log step sizes and ``[Σ outer loss, Σ image MSE, count]``."""
        names = [k for k in theta if k not in self.fixed_keys]
        g_sum = {k: torch.zeros_like(theta[k]) for k in names}
        g_lr = torch.zeros(len(self.groups), device=self.device)
        stats = torch.zeros(3, device=self.device)
        if not indices:
            return g_sum, g_lr, stats
        size = self.cfg.task_batch or len(indices)
        for i in range(0, len(indices), size):
            self._process_batch(step, indices[i : i + size], theta, lrs, names, g_sum, g_lr, stats)
        return g_sum, g_lr, stats

    def _process_batch(self, step, indices, theta, lrs, names, g_sum, g_lr, stats) -> None:
        """Adapt the tasks ``indices`` as one batch; add their contributions to the sums in place."""
        mc = self.cfg
        ks = self.kernel_size(step)
        tasks = [self.sampler.sample(1 + step * mc.meta_batch + j, kernel_size=ks) for j in indices]
        y = np.stack([t.blurry for t in tasks])
        y_t = torch.from_numpy(y)[:, None].to(self.device, torch.get_default_dtype())
        support = ks + mc.kernel_margin
        support += 1 - support % 2  # odd, as the Levin benchmark's supports
        tcfg, s0 = inner_config(self.base, support, mc.inner_steps, *y.shape[-2:])
        prob, state = PublishedRun(tcfg, self.device).adapt(y_t, s0, {k: v.detach() for k, v in theta.items()}, lrs,
                                                            track_updates=mc.meta_sgd)
        phi = {k: v.detach().requires_grad_(True) for k, v in state.params.items()}
        total = prob.y_t.new_zeros(())
        h, w = y.shape[-2:]
        c = (prob.ksize[0] - 1) // 2
        for i, t in enumerate(tasks):
            x0, k0, _ = prob.functional_render({k: v[i] for k, v in phi.items()})(0)
            lo, mse, _ = aligned_error(x0[0, 0, c : c + h, c : c + w], k0[0, 0].flip(0, 1), t.sharp, t.kernel,
                                       self.max_shift(support), mc.kernel_weight)
            total = total + lo
            stats += torch.stack([lo.detach(), mse.detach(), lo.new_ones(())]).to(stats)
        grads = dict(zip(names, torch.autograd.grad(total, [phi[k] for k in names])))
        for k in names:
            if mc.algorithm == "reptile":
                g_sum[k] += (theta[k].detach()[None] - state.params[k].detach()).sum(0)
            else:
                g_sum[k] += grads[k].sum(0)
        if mc.meta_sgd:
            for gi, g in enumerate(self.groups):
                dot = sum(torch.sum(grads[k] * state.update_sums[k]) for k in names if k.startswith(g + "."))
                g_lr[gi] += -lrs[g] * dot

    def init_info(self) -> dict:
        return {"method": self.method, "recipe": self.cfg.recipe, "test_recipe": dataclasses.asdict(self.base.schedule)}
