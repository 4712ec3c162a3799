r"""The per-image loop, written once: Adam on an explicit parameter dict (:func:`torch.func.functional_call`).

Every per-image optimisation runs here — the fast recipe's INR method
(:meth:`cbid_meta.optim.Deblurrer.run`), the published method
(:class:`cbid_meta.optim.published.PublishedRun`, with checkpoints) and the
inner loop of meta-learning (:func:`cbid_meta.meta.learner.adapt`).  The caller
gives a *functional* loss ``loss_fn(params, stage) -> (total, parts)`` (the
generators evaluated at an explicit parameter dict with
:func:`torch.func.functional_call`); the loop walks the stages of
:func:`~cbid_meta.optim.deblur.plan_stages`, differentiates the loss with
respect to the dict and applies the update of :class:`torch.optim.Adam`
operation for operation (default betas and eps, a step count per parameter,
parameters a stage does not use left alone; a test checks the two agree bit
for bit) with one learning rate per parameter group, scaled by
:func:`lr_factor` — the one learning-rate schedule.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["BETAS", "EPS", "lr_factor", "LoopState", "optimise", "explicit_params", "sub_params"]

BETAS, EPS = (0.9, 0.999), 1e-8


def explicit_params(groups: dict[str, dict[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``{group: {name: parameter}}`` → detached copies ``{name: tensor}`` and ``{name: group}``."""
    params, group_of = {}, {}
    for g, named in groups.items():
        for k, v in named.items():
            params[k], group_of[k] = v.detach().clone(), g
    return params, group_of


def sub_params(params: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries named ``prefix.*``, without the prefix (for :func:`torch.func.functional_call`)."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in params.items() if k.startswith(prefix + ".")}


def lr_factor(schedule, stage, i: int, step: int) -> float:
    """Multiplier of every learning rate at global ``step`` (the ``i``-th of ``stage``):
    ``lr_gamma`` per milestone passed, times a cosine decay to ``lr_decay`` over the final stage."""
    f = schedule.lr_gamma ** sum(step >= m for m in schedule.lr_milestones)
    if stage.name == "final" and schedule.lr_decay < 1:
        frac = i / max(stage.steps - 1, 1)
        f *= schedule.lr_decay + (1 - schedule.lr_decay) * 0.5 * (1 + math.cos(math.pi * frac))
    return f


@dataclass
class LoopState:
    """Parameters, Adam moments and step count: everything a resumed run needs."""

    params: dict[str, torch.Tensor]
    m: dict[str, torch.Tensor] = field(default_factory=dict)
    v: dict[str, torch.Tensor] = field(default_factory=dict)
    t: int = 0  # iterations done
    steps: dict[str, int] = field(default_factory=dict)  # Adam steps per parameter (iterations in which it had a gradient)
    history: list[dict] = field(default_factory=list)
    update_sums: dict[str, torch.Tensor] = field(default_factory=dict)  # Σ_t factor·u_t per parameter (Meta-SGD)

    def state_dict(self) -> dict:
        return {"params": {k: v.detach() for k, v in self.params.items()}, "m": self.m, "v": self.v, "t": self.t,
                "steps": self.steps, "history": self.history}

    @classmethod
    def from_state_dict(cls, d: dict) -> "LoopState":
        return cls(d["params"], d["m"], d["v"], d["t"], d["steps"], d["history"])


def optimise(
    loss_fn: Callable[[dict, object], tuple[torch.Tensor, dict]],
    state: LoopState,
    group_of: dict[str, str],
    lrs: dict[str, float],
    stages,
    schedule,
    callback: Callable[[dict], None] | None = None,
    after_step: Callable[[int, LoopState], None] | None = None,
    track_updates: bool = False,
    elapsed: float = 0.0,
) -> LoopState:
    """Run ``stages`` from ``state`` (steps ``< state.t`` are skipped: a resumed run).

    ``group_of`` maps every trainable parameter name to its group in ``lrs``;
    other entries of ``state.params`` are passed to ``loss_fn`` unchanged.
    ``callback`` sees each step's record, ``after_step(step, state)`` runs after
    each update (checkpoints, monitors).  With ``track_updates`` the Adam
    directions are summed (for first-order Meta-SGD)."""
    trainable = [k for k in state.params if k in group_of]
    fixed = {k: v for k, v in state.params.items() if k not in group_of}
    for k in trainable:
        state.params[k] = state.params[k].detach().requires_grad_(True)
        if track_updates:
            state.update_sums.setdefault(k, torch.zeros_like(state.params[k]))
    total_steps = sum(st.steps for st in stages)
    t0 = time.perf_counter() - elapsed
    step = 0
    for st in stages:
        for i in range(st.steps):
            if step < state.t:
                step += 1
                continue
            f = lr_factor(schedule, st, i, step)
            p = {k: state.params[k] for k in trainable}
            total, parts = loss_fn({**p, **fixed}, st)
            grads = torch.autograd.grad(total, [p[k] for k in trainable], allow_unused=True)
            state.t += 1
            with torch.no_grad():
                for k, g in zip(trainable, grads):  # torch.optim.Adam's update, operation for operation (same rounding)
                    if g is None:  # not used by this stage: no update, no step (as torch.optim skips grad None)
                        continue
                    if k not in state.m:
                        state.m[k], state.v[k], state.steps[k] = torch.zeros_like(g), torch.zeros_like(g), 0
                    m, v = state.m[k], state.v[k]
                    state.steps[k] += 1
                    bc1, bc2 = 1 - BETAS[0] ** state.steps[k], 1 - BETAS[1] ** state.steps[k]
                    m.lerp_(g, 1 - BETAS[0])
                    v.mul_(BETAS[1]).addcmul_(g, g, value=1 - BETAS[1])
                    denom = (v.sqrt() / bc2**0.5).add_(EPS)
                    state.params[k].addcdiv_(m, denom, value=-(lrs[group_of[k]] * f) / bc1)
                    if track_updates:
                        state.update_sums[k] += (f / bc1) * (m / denom)
            rec = {"step": step, "stage": st.name, "scale": st.scales[-1], **{k: float(x.detach()) for k, x in parts.items()},
                   "total": float(total.detach()), "time": time.perf_counter() - t0, "total_steps": total_steps}
            state.history.append(rec)
            if callback is not None:
                callback(rec)
            step += 1
            if after_step is not None:
                after_step(step, state)
    for k in trainable:
        state.params[k] = state.params[k].detach()
    return state
