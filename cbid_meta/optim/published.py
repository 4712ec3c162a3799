r"""The published per-image method (Zhang, Quan, Ji, NeurIPS 2024) as the authors' code runs it.

Scale :math:`s` observes :math:`y^{(s)}`, :math:`y` decimated ``s`` times
(:func:`~cbid_meta.physics.decimate_floor`: top-left phase, ⌊N/2⌋ samples),
its kernel has :math:`K_s = \lceil K_{s-1}/2\rceil` taps and its latent image
:math:`x^{(s)}` has :math:`|y^{(s)}| + K_s - 1` samples per side ('valid'
model); blur is the correlation :math:`\star` of the authors' code
(:func:`~cbid_meta.physics.corr_valid`; the kernel is flipped once for output,
so :attr:`DeblurResult.kernel` is a convolution kernel like every other in the
package).  One image generator renders every scale (the encoding of that
scale's grid changes, the weights do not) and one kernel generator renders
every support.  With the stages of :func:`~cbid_meta.optim.plan_stages`
(levels 0 … S0):

* stage 1, scale :math:`S_0`: :math:`\mathcal M_f(x^{(S_0)}\star k^{(S_0)},\, y^{(S_0)})`;
* one pair per step down, the block of scale :math:`s = S_0 - 1, …, 0`:
  :math:`\mathcal M_f\big((x^{(s)}\star k^{(s)})\downarrow_2,\, y^{(s+1)}\big)
  + \lambda\,\mathcal M_c\big(\hat y^{(s+1)},\, y^{(s+1)}\big)` with
  :math:`\hat y^{(s+1)}` the Proposition-1 prediction
  (:func:`cbid_meta.physics.cross_scale_prediction`, ``model="corr"``);
* final stage, scale 0: :math:`\mathcal M_f(x^{(0)}\star k^{(0)},\, y)`.

The paper's ablations are named recipes on the same loop (``recipes/paper_*.toml``,
``docs/evaluation.md``): ``[schedule] use_cross = false`` drops the λ term and keeps
the pairs' fit (:attr:`Stage.pair`), ``multiscale = false`` / ``progressive = false``
change the stages, ``coarse_render = "downsample"`` makes every coarse latent image
by bilinear down-sampling of the scale-0 render (:func:`downsample_latent`), and the
generators ``mlp_kernel`` / ``noise_unet`` replace Φk / Φx.

Several problems of one shape (images blurred by kernels of one size, or one
image from several seeds) run as one batch: their parameters are stacked and
the per-problem loss is mapped over them with :func:`torch.func.vmap` — each
problem keeps its own weights, BatchNorm statistics and Adam state, and the
result equals separate runs to float rounding (tests).  ``[schedule] restarts
= R`` uses this as a safeguard: R seeds of one image, the one whose estimate
re-blurred by its kernel fits the observation best (:func:`reblur_fit`) is
returned (no ground truth involved).

A run can be checkpointed every ``checkpoint_every`` steps and resumed from
the file (:meth:`PublishedRun.run`), so multi-hour CPU runs survive a stop.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..config import DeblurConfig
from ..errors import InputError
from ..generators import create_generator, generator_class
from ..losses import metric
from ..physics import corr_valid, cross_scale_prediction, decimate_floor
from .deblur import DeblurResult, Stage, plan_stages
from .loop import LoopState, optimise, sub_params

CHECKPOINT_FORMAT = 3  # stacked loop state of a batch of problems (parameters, Adam moments, step, history)

__all__ = ["COARSE_RENDERS", "checkpoint_step", "check_generators", "downsample_latent", "published_coarsest_scale", "scale_kernel_sizes", "DecimatedProblem",
           "PublishedRun", "reblur_fit", "roll_changes", "select_by_fit", "start_from"]


def checkpoint_step(path: str | os.PathLike) -> int:
    """The iteration a :class:`PublishedRun` checkpoint resumes from (0: no checkpoint, or an older format)."""
    path = Path(path)
    if not path.exists():
        return 0
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return int(saved["loop"]["t"]) if saved.get("format") == CHECKPOINT_FORMAT else 0


def scale_kernel_sizes(kernel_size: int, depth: int) -> list[int]:
    """``[K_0, K_1, …, K_depth]`` with ``K_{s+1} = ceil(K_s / 2)``.

    >>> scale_kernel_sizes(27, 2)
    [27, 14, 7]
    """
    sizes = [kernel_size]
    for _ in range(depth):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def published_coarsest_scale(kernel_size: int, h: int, w: int) -> int:
    """S0 as in the paper's Table 8 (1 for supports up to 27 px, 2 above), lowered
    until the coarsest observed level S0 keeps at least 8 px and twice its kernel.

    >>> published_coarsest_scale(27, 255, 255), published_coarsest_scale(75, 600, 800), published_coarsest_scale(9, 16, 16)
    (1, 2, 0)
    """
    s0 = 1 if kernel_size <= 27 else 2
    while s0 > 0:
        ks = scale_kernel_sizes(kernel_size, s0)[-1]
        side = min(h, w) // 2**s0
        if side >= max(8, 2 * ks):
            break
        s0 -= 1
    return s0


def check_generators(cfg: DeblurConfig, pyramid: str) -> None:
    """Both generators of ``cfg`` must render on ``pyramid`` (one error line otherwise)."""
    for name in (cfg.image.name, cfg.kernel.name):
        try:
            cls = generator_class(name)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if cls.pyramid != pyramid:
            other = "decimate" if pyramid == "cell" else "cell"
            raise InputError(f"generator '{name}' does not work with pyramid = '{pyramid}' (it needs pyramid = '{other}' in the recipe's [schedule])")


COARSE_RENDERS = ("render", "downsample")


def downsample_latent(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` ``(1, C, H, W)`` bilinearly resampled to ``size`` (half-pixel centres, no anti-aliasing):
    the coarse latent image of the direct-down-sampling ablation (``[schedule] coarse_render = "downsample"``)."""
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def decimation_pyramid(y: torch.Tensor, depth: int) -> dict[int, torch.Tensor]:
    """``{s: y decimated s times}`` (:func:`~cbid_meta.physics.decimate_floor`) for ``s = 0 … depth``."""
    obs = {0: y}
    for s in range(1, depth + 1):
        obs[s] = decimate_floor(obs[s - 1])
    return obs


def roll_changes(history: Sequence[dict], per: int = 1000) -> float:
    """Chatter of the centring layer: changes of the finest rendered kernel's roll between
    consecutive steps of the same stage and scale, per ``per`` steps."""
    n = changes = 0
    prev = None
    for rec in history:
        cur = (rec.get("stage"), rec.get("scale"), rec.get("roll"))
        if prev is not None and cur[:2] == prev[:2]:
            n += 1
            changes += cur[2] != prev[2]
        prev = cur
    return per * changes / max(n, 1)


def reblur_fit(image: np.ndarray, kernel: np.ndarray, y: np.ndarray, fit: str = "ssim_same") -> float:
    """How well an estimate explains the blurry image, from the outputs alone (no ground truth):
    the fit metric between the estimate re-blurred by its kernel and the observation, on the part of
    ``y`` the cropped estimate determines (``valid`` convolution; ``image`` aligned with ``y`` as
    :meth:`DecimatedProblem.snapshot` returns it, ``kernel`` a convolution kernel)."""
    from ..physics import conv_valid

    x = np.asarray(image, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    x = x[..., None] if x.ndim == 2 else x
    yy = yy[..., None] if yy.ndim == 2 else yy
    k = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float64))[None, None]
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    pred = conv_valid(xt, k)
    c = (k.shape[-1] - 1) // 2
    h, w = pred.shape[-2:]
    obs = torch.from_numpy(np.ascontiguousarray(yy.transpose(2, 0, 1)))[None][..., c : c + h, c : c + w]
    return float(metric(fit)(pred, obs))


def select_by_fit(scores: Sequence[float]) -> int:
    """Index of the lowest fit score (the restarts safeguard: the blurry image alone decides)."""
    return int(np.argmin([s if np.isfinite(s) else math.inf for s in scores]))


@dataclass
class DecimatedProblem:
    """Generators (the batch's template modules), supports and the per-step loss of one shape of problem.

    ``y_t`` is ``(N, C, H, W)``: ``N`` observations of one size, solved together
    (``N = 1`` for a single image).  :meth:`step_loss` is the loss of one problem
    (observations ``obs``: ``{s: (1, C, H_s, W_s)}``); :meth:`batched_loss` maps it
    over the stacked parameters of all ``N``.
    """

    cfg: DeblurConfig
    y_t: torch.Tensor  # (N, C, H, W)
    s0: int
    depth: int
    img_gen: torch.nn.Module
    ker_gen: torch.nn.Module
    obs: dict = field(init=False)

    def __post_init__(self):
        self.ksize = scale_kernel_sizes(self.cfg.kernel_size, self.depth)
        self.obs = decimation_pyramid(self.y_t[:, None], self.depth)  # {s: (N, 1, C, H_s, W_s)}
        self.fit_m, self.cross_m = metric(self.cfg.loss.fit), metric(self.cfg.loss.cross)
        self.coarse_render = getattr(self.cfg.schedule, "coarse_render", "render")
        if self.coarse_render not in COARSE_RENDERS:
            raise InputError(f"unknown coarse_render '{self.coarse_render}' in [schedule] (choose {' or '.join(COARSE_RENDERS)})")

    @property
    def n(self) -> int:
        return self.y_t.shape[0]

    def latent_size(self, s: int) -> tuple[int, int]:
        h, w = self.obs[s].shape[-2:]
        return h + self.ksize[s] - 1, w + self.ksize[s] - 1

    def functional_render(self, params: dict[str, torch.Tensor]):
        """``render(s) -> (x_s, k_s, roll_s)`` for ONE problem's parameters: latent image
        (1, C, H_s + K_s - 1, …), correlation kernel (1, 1, K_s, K_s) and its centring roll.

        With ``[schedule] coarse_render = "downsample"`` (the direct-down-sampling ablation) the
        latent image of a scale s > 0 is the scale-0 render bilinearly down-sampled to the latent
        size of scale s (:func:`downsample_latent`) instead of the generator's render of that grid;
        the kernel is rendered on its own support either way."""
        from torch.func import functional_call

        img_p, ker_p = sub_params(params, "image"), sub_params(params, "kernel")

        fine: list[torch.Tensor] = []  # the scale-0 render, made once per step when coarse scales are down-sampled from it

        def image(s: int) -> torch.Tensor:
            if s > 0 and self.coarse_render == "downsample":
                if not fine:
                    fine.append(image(0))
                return downsample_latent(fine[0], self.latent_size(s))
            return functional_call(self.img_gen, img_p, (self.img_gen.encoding(*self.latent_size(s)),))

        def render(s: int):
            size = self.ksize[s]
            k, roll = functional_call(self.ker_gen, ker_p, (self.ker_gen.coords(size), size), {"with_shift": True})
            return image(s), k, roll

        return render

    def step_loss(self, st: Stage, render, obs: dict[int, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Loss of one step of stage ``st`` for one problem; parts ``fit``, ``cross``, ``prior`` (0)
        and ``roll`` (the centring shift of the finest kernel rendered, coded ``1000·dy + dx``)."""
        zero = obs[0].new_zeros(())
        l_fit, l_cross, roll = zero, zero, zero
        for s in st.scales:
            x_s, k_s, r_s = render(s)
            if (st.pair or st.cross) and s + 1 <= self.depth:
                y_c = obs[s + 1]
                l_fit = l_fit + self.fit_m(decimate_floor(corr_valid(x_s, k_s)), y_c)
                if st.cross:
                    x_c, k_c, _ = render(s + 1)
                    l_cross = l_cross + self.cross_m(cross_scale_prediction(x_s, k_s, x_c, k_c, model="corr"), y_c)
            else:
                l_fit = l_fit + self.fit_m(corr_valid(x_s, k_s), obs[s])
            if s == min(st.scales):
                roll = (1000 * r_s[..., 0] + r_s[..., 1]).reshape(()).to(zero.dtype)
        total = l_fit + self.cfg.loss.cross_weight * l_cross
        return total, {"fit": l_fit, "cross": l_cross, "prior": zero, "roll": roll}

    def batched_loss(self, params: dict[str, torch.Tensor], st: Stage) -> tuple[torch.Tensor, dict]:
        """Totals ``(N,)`` and parts of all problems at the stacked ``params`` (leading axis N)."""
        if self.n == 1:  # one problem: no mapping (the plain modules, as fast as a single run can be)
            total, parts = self.step_loss(st, self.functional_render({k: v[0] for k, v in params.items()}), {s: o[0] for s, o in self.obs.items()})
            return total[None], {k: v[None] for k, v in parts.items()}
        from torch.func import vmap

        return vmap(lambda p, o: self.step_loss(st, self.functional_render(p), o), in_dims=(0, 0), randomness="error")(params, self.obs)

    @torch.no_grad()
    def snapshot(self, params: dict[str, torch.Tensor], i: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Scale-0 estimate of problem ``i``: sharp image (H, W[, C]) aligned with ``y`` and the
        convolution kernel (K, K) summing to 1 (the correlation kernel flipped)."""
        x0, k0, _ = self.functional_render({k: v[i] for k, v in params.items()})(0)
        h, w = self.y_t.shape[-2:]
        c = (self.ksize[0] - 1) // 2
        img = x0[0, :, c : c + h, c : c + w].permute(1, 2, 0).float().cpu().numpy()
        k = k0[0, 0].flip(0, 1).double().cpu().numpy()
        return (img[:, :, 0] if img.shape[-1] == 1 else img), k / max(k.sum(), 1e-12)


def _fingerprint(cfg: DeblurConfig, y_t: torch.Tensor, seeds: Sequence[int], init: dict | None = None, lrs: dict | None = None) -> str:
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    h.update(y_t.detach().cpu().numpy().tobytes())
    h.update(json.dumps(list(seeds)).encode())
    if init is not None:  # a meta-learned start (absent for a run from scratch: older checkpoints stay valid)
        for k in sorted(init):
            h.update(k.encode())
            h.update(init[k].detach().cpu().float().numpy().tobytes())
        h.update(json.dumps(lrs or {}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def start_from(params: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stacked parameters ``(N, …)`` replaced by θ (one problem's shapes) for every problem; θ must name
    exactly the generators' parameters, with their shapes (one error line otherwise)."""
    missing = sorted(set(params) - set(theta))
    extra = sorted(set(theta) - set(params))
    if missing or extra:
        what = f"missing {', '.join(missing[:3])}" if missing else f"unknown {', '.join(extra[:3])}"
        raise InputError(f"the initialiser does not fit these generators ({what}); use the recipe it was trained with")
    out = {}
    for k, v in params.items():
        t = theta[k]
        if tuple(t.shape) != tuple(v.shape[1:]):
            raise InputError(f"the initialiser does not fit these generators ({k}: {tuple(t.shape)} vs {tuple(v.shape[1:])}); use the recipe it was trained with")
        out[k] = t.detach().to(device=v.device, dtype=v.dtype).expand_as(v).clone()
    return out


def _pick(rec: dict, i: int) -> dict:
    """Problem ``i``'s record out of a batched record (lists of values)."""
    return {k: (v[i] if isinstance(v, list) else v) for k, v in rec.items()}


class PublishedRun:
    """Runs the published method on one image (called by :meth:`cbid_meta.optim.Deblurrer.run`) or on
    a batch of same-size problems (:meth:`run_batch`)."""

    def __init__(self, cfg: DeblurConfig, device: torch.device):
        self.cfg, self.device = cfg, device

    def _generators(self, channels: int, seed: int, batched: bool):
        cfg = self.cfg
        torch.manual_seed(seed)
        image_cfg = cfg.image
        if batched and getattr(image_cfg, "channels_last", False):
            # vmap over channels-last convolutions gives wrong weight gradients for 1x1 convolutions
            # (torch 2.x, seen on the CPU; tests/test_published.py): batches use the contiguous layout
            image_cfg = replace(image_cfg, channels_last=False)
        img_gen = create_generator(cfg.image.name, image_cfg, channels=channels).to(self.device)
        # BatchNorm normalises by the batch statistics (the generator is always in training mode);
        # without running statistics it is a pure function of the parameters, as torch.func needs
        torch.func.replace_all_batch_norm_modules_(img_gen)
        ker_gen = create_generator(cfg.kernel.name, cfg.kernel, kernel_size=cfg.kernel_size).to(self.device)
        return img_gen, ker_gen

    def setup(self, y_t: torch.Tensor, s0: int, seeds: Sequence[int] | None = None,
              init: dict[str, torch.Tensor] | None = None) -> tuple[DecimatedProblem, dict, dict]:
        """The problem of the ``(N, C, H, W)`` observations ``y_t`` and the stacked initial parameters
        (problem ``i`` initialised from ``seeds[i]``; default: the recipe's seed for all).  ``init``
        (a meta-learned θ, ``{"image.…"/"kernel.…": tensor}``) starts every problem from θ instead."""
        cfg = self.cfg
        check_generators(cfg, "decimate")
        seeds = list(seeds) if seeds is not None else [cfg.seed] * y_t.shape[0]
        if len(seeds) != y_t.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for {y_t.shape[0]} problems")
        inits, template = [], None
        for sd in seeds:
            img_gen, ker_gen = self._generators(y_t.shape[1], sd, batched=len(seeds) > 1)
            template = template or (img_gen, ker_gen)
            inits.append({**{f"image.{k}": v.detach() for k, v in img_gen.named_parameters()},
                          **{f"kernel.{k}": v.detach() for k, v in ker_gen.named_parameters()}})
        prob = DecimatedProblem(cfg, y_t, s0, s0, *template)
        need = getattr(prob.img_gen, "min_side", 1)
        side = min(prob.latent_size(prob.depth))
        if side < need:
            h, w = y_t.shape[-2:]
            raise InputError(f"image {h}x{w} is too small for the published U-Net: its coarsest scale ({prob.depth}) is {side} px, the network needs {need} (use a larger image, a smaller [image] depth, or --recipe fast)")
        params = {k: torch.stack([d[k] for d in inits]).clone() for k in inits[0]}
        if init is not None:
            params = start_from(params, init)
        group_of = {k: k.split(".", 1)[0] for k in params}
        return prob, params, group_of

    def adapt(self, y_t: torch.Tensor, s0: int, theta: dict[str, torch.Tensor], lrs: dict[str, float] | None = None,
              track_updates: bool = False, record_every: int | None = None) -> tuple[DecimatedProblem, LoopState]:
        """The inner loop of meta-learning: the recipe's schedule on the ``N`` problems of ``y_t`` from θ
        (every problem starts from the same θ), with the per-image loop of :meth:`run_batch`; returns the
        problem and the final loop state (stacked parameters; with ``track_updates`` the summed Adam
        directions of first-order Meta-SGD)."""
        cfg, sch = self.cfg, self.cfg.schedule
        prob, params, group_of = self.setup(y_t, s0, init=theta)
        lrs = lrs or {"image": sch.lr_image, "kernel": sch.lr_kernel}
        if record_every is None:
            record_every = max(sum(st.steps for st in plan_stages(cfg, s0)), 1)  # one read-back at the end
        state = optimise(prob.batched_loss, LoopState(params), group_of, lrs, plan_stages(cfg, s0), sch,
                         track_updates=track_updates, record_every=record_every)
        return prob, state

    def run_batch(
        self,
        y_t: torch.Tensor,
        s0: int,
        seeds: Sequence[int] | None = None,
        callback: Callable[[dict], None] | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 250,
        monitor: Callable[[int, list[np.ndarray], list[np.ndarray]], None] | None = None,
        monitor_every: int = 250,
        record_every: int | None = None,
        init: dict[str, torch.Tensor] | None = None,
        lrs: dict[str, float] | None = None,
    ) -> list[DeblurResult]:
        """Optimise the ``N`` problems of ``y_t`` ``(N, C, H, W)`` together; one result each.

        ``callback`` sees each step's record (lists of N values), ``monitor(step, images,
        kernels)`` the scale-0 estimates every ``monitor_every`` steps.  With ``checkpoint``,
        the state is saved there every ``checkpoint_every`` steps and a run that finds a
        checkpoint of the same configuration, observations and seeds continues from it
        (another run's checkpoint is refused).  ``record_every``: steps between read-backs
        of the losses (default 1 on the CPU, 50 on a GPU).  ``init`` and ``lrs``: a meta-learned start
        (θ for every problem) and its per-group step sizes (default: the recipe's).
        """
        cfg, sch = self.cfg, self.cfg.schedule
        seeds = list(seeds) if seeds is not None else [cfg.seed] * y_t.shape[0]
        prob, params, group_of = self.setup(y_t, s0, seeds, init=init)
        lrs = {"image": sch.lr_image, "kernel": sch.lr_kernel, **(lrs or {})}
        stages = plan_stages(cfg, s0)
        total_steps = sum(st.steps for st in stages)
        if record_every is None:
            record_every = 1 if self.device.type == "cpu" else 50
        for every in (checkpoint_every, monitor_every):
            record_every = math.gcd(record_every, every)  # checkpoints and monitors see a complete history
        fp = _fingerprint(cfg, y_t, seeds, init, lrs)
        state, elapsed = LoopState(params), 0.0
        ckpt = Path(checkpoint) if checkpoint else None
        if ckpt is not None and ckpt.exists():
            saved = torch.load(ckpt, map_location=self.device, weights_only=False)
            if saved.get("fingerprint") != fp:
                raise InputError(f"checkpoint {ckpt} belongs to another image or configuration")
            if saved.get("format") == CHECKPOINT_FORMAT:  # older formats: start over
                state, elapsed = LoopState.from_state_dict(saved["loop"]), saved["elapsed"]
        start = state.t
        t0 = time.perf_counter() - elapsed

        def save(st: LoopState) -> None:
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save({"format": CHECKPOINT_FORMAT, "fingerprint": fp, "elapsed": time.perf_counter() - t0, "loop": st.state_dict()}, tmp)
            os.replace(tmp, ckpt)

        def after_step(step: int, st: LoopState) -> None:
            if monitor is not None and step % monitor_every == 0:
                snaps = [prob.snapshot(st.params, i) for i in range(prob.n)]
                monitor(step, [a for a, _ in snaps], [b for _, b in snaps])
            if ckpt is not None and (step % checkpoint_every == 0 or step == total_steps):
                save(st)

        state = optimise(prob.batched_loss, state, group_of, lrs, stages, sch, callback=callback, after_step=after_step,
                         elapsed=elapsed, record_every=record_every)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        results = []
        for i in range(prob.n):
            image, kernel = prob.snapshot(state.params, i)
            history = [_pick(r, i) for r in state.history]
            info = {
                "coarsest_scale": s0,
                "kernel_size": prob.ksize[0],
                "kernel_sizes": prob.ksize,
                "stages": [st.__dict__ for st in stages],
                "steps": state.t,
                "resumed_from": start,
                "restoration": cfg.restoration.method,
                "device": str(self.device),
                "threads": torch.get_num_threads(),
                "parameters": sum(v[i].numel() for v in state.params.values()),
                "seed": seeds[i],
                "batch": prob.n,
                "roll_changes_per_1000": roll_changes(history),
            }
            results.append(DeblurResult(image=image, kernel=kernel, history=history, seconds=seconds, config=cfg.to_dict(), info=info))
        return results

    def run(self, y_t: torch.Tensor, s0: int, callback: Callable[[dict], None] | None = None, **kw) -> DeblurResult:
        """One image ``(1, C, H, W)``; with ``[schedule] restarts = R > 1`` R seeds of it run as a batch
        and the one with the lowest :func:`reblur_fit` is returned (its info lists every restart's)."""
        restarts = max(int(getattr(self.cfg.schedule, "restarts", 1)), 1)
        seeds = [self.cfg.seed + i for i in range(restarts)]
        cb = None if callback is None else (lambda rec: callback(_pick(rec, 0)))
        mon = kw.pop("monitor", None)
        if mon is not None:
            kw["monitor"] = lambda step, imgs, ks: mon(step, imgs[0], ks[0])
        results = self.run_batch(y_t.expand(restarts, *y_t.shape[1:]), s0, seeds, callback=cb, **kw)
        if restarts == 1:
            return results[0]
        y = y_t[0].permute(1, 2, 0).detach().cpu().double().numpy()
        fits = [reblur_fit(r.image, r.kernel, y, self.cfg.loss.fit) for r in results]
        res = results[select_by_fit(fits)]
        res.info["restarts"] = [{"seed": r.info["seed"], "reblur_fit": f} for r, f in zip(results, fits)]
        res.info["chosen_seed"] = res.info["seed"]
        return res
