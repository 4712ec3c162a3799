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
for bit), in a few ``torch._foreach_*`` launches per group, with one learning
rate per parameter group, scaled by :func:`lr_factor` — the one learning-rate
schedule.  A step never waits for the device (see :func:`optimise`).
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


def _adam_foreach(state: LoopState, live: list, group_of: dict[str, str], lrs: dict[str, float], f: float, track_updates: bool) -> None:
    """One Adam update of the ``(name, grad)`` pairs in ``live``: torch.optim.Adam's operations, applied
    with ``torch._foreach_*`` to every parameter that shares a step count and a learning-rate group
    (a few kernel launches per group instead of several per tensor; the same arithmetic and rounding)."""
    groups: dict[tuple[int, str], list] = {}
    for k, g in live:
        if k not in state.m:
            state.m[k], state.v[k], state.steps[k] = torch.zeros_like(g), torch.zeros_like(g), 0
        state.steps[k] += 1
        groups.setdefault((state.steps[k], group_of[k]), []).append((k, g))
    for (n, grp), items in groups.items():
        ks, gs = [k for k, _ in items], [g for _, g in items]
        ms, vs, ps = [state.m[k] for k in ks], [state.v[k] for k in ks], [state.params[k] for k in ks]
        bc1, bc2 = 1 - BETAS[0] ** n, 1 - BETAS[1] ** n
        torch._foreach_lerp_(ms, gs, 1 - BETAS[0])
        torch._foreach_mul_(vs, BETAS[1])
        torch._foreach_addcmul_(vs, gs, gs, value=1 - BETAS[1])
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, bc2**0.5)
        torch._foreach_add_(denom, EPS)
        torch._foreach_addcdiv_(ps, ms, denom, value=-(lrs[grp] * f) / bc1)
        if track_updates:
            for k, m, d in zip(ks, ms, denom):
                state.update_sums[k] += (f / bc1) * (m / d)


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
    record_every: int = 1,
) -> LoopState:
    """Run ``stages`` from ``state`` (steps ``< state.t`` are skipped: a resumed run).

    ``group_of`` maps every trainable parameter name to its group in ``lrs``;
    other entries of ``state.params`` are passed to ``loss_fn`` unchanged.
    ``loss_fn`` returns a scalar total, or a vector of independent totals
    (a batch of problems with stacked parameters: the sum is differentiated, and
    the records hold one value per problem).  ``callback`` sees each step's
    record, ``after_step(step, state)`` runs after each update (checkpoints,
    monitors).  With ``track_updates`` the Adam directions are summed (for
    first-order Meta-SGD).

    Nothing in a step reads a value back to the host: the loss parts stay on
    the device and are read in one transfer every ``record_every`` steps (and
    at the end), when their records are appended to the history and passed to
    ``callback`` — on a GPU the next steps are queued meanwhile.  ``after_step``
    sees a complete history at steps that are multiples of ``record_every``."""
    trainable = [k for k in state.params if k in group_of]
    fixed = {k: v for k, v in state.params.items() if k not in group_of}
    for k in trainable:
        state.params[k] = state.params[k].detach().requires_grad_(True)
        if track_updates:
            state.update_sums.setdefault(k, torch.zeros_like(state.params[k]))
    total_steps = sum(st.steps for st in stages)
    t0 = time.perf_counter() - elapsed
    pending: list[tuple[dict, list[str], torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        values = torch.stack([v for _, _, v in pending]).tolist()  # one read-back for the whole block
        for (rec, names, _), vals in zip(pending, values):
            rec.update(zip(names, vals))
            state.history.append(rec)
            if callback is not None:
                callback(rec)
        pending.clear()

    step = 0
    for st in stages:
        for i in range(st.steps):
            if step < state.t:
                step += 1
                continue
            f = lr_factor(schedule, st, i, step)
            p = {k: state.params[k] for k in trainable}
            total, parts = loss_fn({**p, **fixed}, st)
            grads = torch.autograd.grad(total.sum() if total.ndim else total, [p[k] for k in trainable], allow_unused=True)
            state.t += 1
            with torch.no_grad():
                # not used by this stage (grad None): no update, no step (as torch.optim skips grad None)
                _adam_foreach(state, [(k, g) for k, g in zip(trainable, grads) if g is not None], group_of, lrs, f, track_updates)
            names = [*parts, "total"]
            vals = torch.stack([torch.as_tensor(parts[n], device=total.device, dtype=total.dtype).detach().expand(total.shape)
                                for n in parts] + [total.detach()])
            rec = {"step": step, "stage": st.name, "scale": st.scales[-1], "time": time.perf_counter() - t0, "total_steps": total_steps}
            pending.append((rec, names, vals))
            step += 1
            if step % record_every == 0:
                flush()
            if after_step is not None:
                after_step(step, state)
    flush()
    for k in trainable:
        state.params[k] = state.params[k].detach()
    return state
