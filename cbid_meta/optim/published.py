r"""The published per-image method (Zhang, Quan, Ji, NeurIPS 2024): decimation pyramid, two generators, SSIM fit.

Scale :math:`s` observes :math:`y^{(s)} = y\downarrow_2^{\,s}` (plain decimation,
top-left phase), its kernel has :math:`K_s = \lceil K_{s-1}/2\rceil` taps and
its latent image :math:`x^{(s)}` has :math:`|y^{(s)}| + K_s - 1` samples per
side ('valid' blur model).  One image generator renders every scale (the
encoding of that scale's grid changes, the weights do not) and one kernel
generator renders every support.  With the stages of
:func:`~cbid_meta.optim.plan_stages`:

* stage 1, scale :math:`S_0`: :math:`\mathcal M_f(x^{(S_0)}\otimes k^{(S_0)},\, y^{(S_0)})`;
* stage 2, scale :math:`s = S_0, …, 0`:
  :math:`\mathcal M_f\big((x^{(s)}\otimes k^{(s)})\downarrow_2,\, y^{(s+1)}\big)
  + \lambda\,\mathcal M_c\big(\hat y^{(s+1)},\, y^{(s+1)}\big)` with
  :math:`\hat y^{(s+1)}` the Proposition-1 prediction
  (:func:`cbid_meta.physics.cross_scale_prediction`);
* final stage, scale 0: :math:`\mathcal M_f(x^{(0)}\otimes k^{(0)},\, y)`.

A run can be checkpointed every ``checkpoint_every`` steps and resumed from
the file (:meth:`PublishedRun.run`), so multi-hour CPU runs survive a stop.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import DeblurConfig
from ..errors import InputError
from ..generators import create_generator, generator_class
from ..losses import metric
from ..physics import conv_valid, cross_scale_prediction, decimate, observation_pyramid
from .deblur import DeblurResult, Stage, plan_stages
from .loop import LoopState, explicit_params, optimise, sub_params

CHECKPOINT_FORMAT = 2  # the per-image loop's state (parameters, Adam moments, step, history)

__all__ = ["checkpoint_step", "check_generators", "published_coarsest_scale", "scale_kernel_sizes", "DecimatedProblem", "PublishedRun"]


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
    until the coarsest observed level (S0 + 1) keeps at least 8 px and twice its kernel.

    >>> published_coarsest_scale(27, 255, 255), published_coarsest_scale(75, 600, 800), published_coarsest_scale(9, 24, 24)
    (1, 2, 0)
    """
    s0 = 1 if kernel_size <= 27 else 2
    while s0 > 0:
        ks = scale_kernel_sizes(kernel_size, s0 + 1)[-1]
        side = math.ceil(min(h, w) / 2 ** (s0 + 1))
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


@dataclass
class DecimatedProblem:
    """Generators, observations and supports of one image; the per-step loss."""

    cfg: DeblurConfig
    y_t: torch.Tensor  # (1, C, H, W)
    s0: int
    depth: int
    img_gen: torch.nn.Module
    ker_gen: torch.nn.Module

    def __post_init__(self):
        self.ksize = scale_kernel_sizes(self.cfg.kernel_size, self.depth)
        self.obs = observation_pyramid(self.y_t, self.depth, "decimate")
        self.fit_m, self.cross_m = metric(self.cfg.loss.fit), metric(self.cfg.loss.cross)

    def latent_size(self, s: int) -> tuple[int, int]:
        h, w = self.obs[s].shape[-2:]
        return h + self.ksize[s] - 1, w + self.ksize[s] - 1

    def initial_params(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Both generators' parameters as an explicit dict (detached copies), grouped image / kernel."""
        return explicit_params({prefix: {f"{prefix}.{k}": v for k, v in mod.named_parameters()}
                                for prefix, mod in (("image", self.img_gen), ("kernel", self.ker_gen))})

    def functional_render(self, params: dict[str, torch.Tensor]):
        """``render(s) -> (x_s, k_s)``: latent image (1, C, H_s + K_s - 1, …) and kernel
        (1, 1, K_s, K_s) with the generators evaluated at ``params``."""
        from torch.func import functional_call

        img_p, ker_p = sub_params(params, "image"), sub_params(params, "kernel")

        def render(s: int):
            size = self.ksize[s]
            x = functional_call(self.img_gen, img_p, (self.img_gen.encoding(*self.latent_size(s)),))
            return x, functional_call(self.ker_gen, ker_p, (self.ker_gen.coords(size), size))

        return render

    def step_loss(self, st: Stage, render) -> tuple[torch.Tensor, dict]:
        zero = self.y_t.new_zeros(())
        l_fit, l_cross = zero, zero
        for s in st.scales:
            x_s, k_s = render(s)
            if st.cross and s + 1 <= self.depth:
                y_c = self.obs[s + 1]
                l_fit = l_fit + self.fit_m(decimate(conv_valid(x_s, k_s)), y_c)
                x_c, k_c = render(s + 1)
                l_cross = l_cross + self.cross_m(cross_scale_prediction(x_s, k_s, x_c, k_c), y_c)
            else:
                l_fit = l_fit + self.fit_m(conv_valid(x_s, k_s), self.obs[s])
        total = l_fit + self.cfg.loss.cross_weight * l_cross
        return total, {"fit": l_fit, "cross": l_cross, "prior": zero}

    @torch.no_grad()
    def snapshot(self, params: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """Scale-0 estimate at ``params``: sharp image (H, W[, C]) aligned with ``y``, kernel (K, K) summing to 1."""
        x0, k0 = self.functional_render(params)(0)
        h, w = self.y_t.shape[-2:]
        c = (self.ksize[0] - 1) // 2
        img = x0[0, :, c : c + h, c : c + w].permute(1, 2, 0).float().cpu().numpy()
        k = k0[0, 0].double().cpu().numpy()
        return (img[:, :, 0] if img.shape[-1] == 1 else img), k / max(k.sum(), 1e-12)


def _fingerprint(cfg: DeblurConfig, y_t: torch.Tensor) -> str:
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    h.update(y_t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class PublishedRun:
    """Runs the published method on one image (called by :meth:`cbid_meta.optim.Deblurrer.run`)."""

    def __init__(self, cfg: DeblurConfig, device: torch.device):
        self.cfg, self.device = cfg, device

    def setup(self, y_t: torch.Tensor, s0: int) -> DecimatedProblem:
        cfg = self.cfg
        depth = s0 + 1 if (cfg.schedule.use_cross and s0 > 0) else s0
        check_generators(cfg, "decimate")
        torch.manual_seed(cfg.seed)
        img_gen = create_generator(cfg.image.name, cfg.image, channels=y_t.shape[1]).to(self.device)
        # BatchNorm normalises by the batch statistics (the generator is always in training mode);
        # without running statistics it is a pure function of the parameters, as torch.func needs
        torch.func.replace_all_batch_norm_modules_(img_gen)
        ker_gen = create_generator(cfg.kernel.name, cfg.kernel).to(self.device)
        prob = DecimatedProblem(cfg, y_t, s0, depth, img_gen, ker_gen)
        need = getattr(img_gen, "min_side", 1)
        side = min(prob.latent_size(depth))
        if side < need:
            h, w = y_t.shape[-2:]
            raise InputError(f"image {h}x{w} is too small for the published U-Net: its coarsest scale ({depth}) is {side} px, the network needs {need} (use a larger image or a smaller [image] depth)")
        return prob

    def run(
        self,
        y_t: torch.Tensor,
        s0: int,
        callback: Callable[[dict], None] | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 250,
        monitor: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
        monitor_every: int = 250,
    ) -> DeblurResult:
        """Optimise; ``monitor(step, image, kernel)`` sees the scale-0 estimate every ``monitor_every`` steps.

        With ``checkpoint``, the state is saved there every ``checkpoint_every``
        steps and a run that finds a checkpoint of the same configuration and
        image continues from it (another run's checkpoint is refused).
        """
        cfg, sch = self.cfg, self.cfg.schedule
        prob = self.setup(y_t, s0)
        params, group_of = prob.initial_params()
        lrs = {"image": sch.lr_image, "kernel": sch.lr_kernel}
        stages = plan_stages(cfg, s0)
        total_steps = sum(st.steps for st in stages)
        fp = _fingerprint(cfg, y_t)
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
                monitor(step, *prob.snapshot(st.params))
            if ckpt is not None and (step % checkpoint_every == 0 or step == total_steps):
                save(st)

        state = optimise(lambda p, st: prob.step_loss(st, prob.functional_render(p)), state, group_of, lrs, stages, sch,
                         callback=callback, after_step=after_step, elapsed=elapsed)
        history, step = state.history, state.t
        image, kernel = prob.snapshot(state.params)
        seconds = time.perf_counter() - t0
        info = {
            "coarsest_scale": s0,
            "kernel_size": prob.ksize[0],
            "kernel_sizes": prob.ksize,
            "stages": [st.__dict__ for st in stages],
            "steps": step,
            "resumed_from": start,
            "restoration": cfg.restoration.method,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in state.params.values()),
        }
        return DeblurResult(image=image, kernel=kernel, history=history, seconds=seconds, config=cfg.to_dict(), info=info)
