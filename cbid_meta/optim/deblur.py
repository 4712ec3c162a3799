"""The per-image optimiser: the progressive coarse-to-fine schedule of the paper.

Stage 1 (initialisation) fits scale S0 with L_fit only; stage 2 walks the
scales S0, S0-1, …, 0 with L_fit + λ·L_cross; the final stage tunes scale 0
with L_fit only.  Both generators are trained jointly with Adam.

The ablations of the paper are switches of :class:`~cbid_meta.config.ScheduleConfig`:

* ``use_cross = false`` — λ = 0 (w/o L_cross; on the decimation pyramid the pairs' fit stays);
* ``multiscale = false`` — everything at scale 0 (single-scale);
* ``progressive = false`` — all scales' losses summed from the first step
  instead of visiting them coarse-to-fine (w/o progressive).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from ..config import DeblurConfig, RestorationConfig
from ..errors import InputError
from ..generators import ImageINR, KernelINR, Pyramid, auto_coarsest_scale, create_generator
from ..losses import cross_scale_loss, fit_loss, metric, prior
from ..physics import observation_pyramid
from ..pipeline import check_components, finish, restore
from .loop import LoopState, explicit_params, optimise, sub_params

__all__ = ["Deblurrer", "DeblurResult", "Problem", "Stage", "GROUPS", "plan_stages", "stage2_blocks"]


@dataclass(frozen=True)
class Stage:
    """One block of steps: its name, the scales whose L_fit it uses, whether L_cross is on, and
    (decimation pyramid) whether each scale s below the coarsest is fitted as a pair, its blur
    decimated against y⁽ˢ⁺¹⁾ — the published stage 2, kept when L_cross is switched off."""

    name: str
    scales: tuple[int, ...]
    steps: int
    cross: bool
    prior_weight: float
    pair: bool = False


@dataclass
class DeblurResult:
    """Output of a run: sharp image (H, W[, C]), kernel (N, N), per-step history, timings."""

    image: np.ndarray
    kernel: np.ndarray
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    config: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    restored: np.ndarray | None = None  # published method: hyper-Laplacian deconvolution of y with the estimated kernel (the ∆ protocol)

    @property
    def final_losses(self) -> dict:
        return {k: v for k, v in self.history[-1].items() if k in ("fit", "cross", "prior", "total")} if self.history else {}


def stage2_blocks(cfg: DeblurConfig, s0: int) -> int:
    """Number of stage-2 blocks for coarsest scale ``s0``: ``s0`` pairs (S0, S0−1), …, (1, 0) in the
    published model (``pyramid = "decimate"``, the authors' schedule), ``s0 + 1`` on the cell pyramid
    (scales S0, …, 0, each with the level above it)."""
    return s0 if cfg.schedule.pyramid == "decimate" else s0 + 1


def plan_stages(cfg: DeblurConfig, s0: int) -> list[Stage]:
    """The list of stages for coarsest scale ``s0`` (ablation switches included).

    Published model: 500 steps at S0 (fit only), one 500-step pair per step down,
    the rest at scale 0 — for S0 = 2 (the authors' demo) 500, (2, 1), (1, 0), 3500;
    for S0 = 1 (Levin) 500, (1, 0), 4000.  A pair (s+1, s) is listed as the stage-2
    block of scale ``s``: its fit compares (x⁽ˢ⁾⊗k⁽ˢ⁾)↓2 with y⁽ˢ⁺¹⁾.
    """
    sch, loss = cfg.schedule, cfg.loss
    blocks = stage2_blocks(cfg, s0)
    n2 = sch.stage2_steps * blocks
    if sch.total_steps > 0:
        sch = replace(sch, final_steps=max(sch.total_steps - sch.stage1_steps - n2, 0))
    if cfg.restoration.method != "inr" and sch.pyramid != "decimate":
        # the image is restored non-blind: no image-only final stage (the published final stage also
        # refines the kernel, so a hybrid recipe on the published method keeps it)
        sch = replace(sch, final_steps=0)
    cross = sch.use_cross and loss.cross_weight > 0
    pair = sch.pyramid == "decimate"  # the published pairs fit (x⁽ˢ⁾⋆k⁽ˢ⁾)↓2 to y⁽ˢ⁺¹⁾ with or without L_cross
    if not sch.multiscale or s0 == 0:
        total = sch.stage1_steps + n2 + sch.final_steps
        return [
            Stage("single-scale", (0,), total - sch.final_steps, False, loss.prior_weight),
            Stage("final", (0,), sch.final_steps, False, loss.final_prior_weight),
        ]
    if not sch.progressive:
        return [
            Stage("all-scales", tuple(range(s0, -1, -1)), sch.stage1_steps + n2, cross, loss.prior_weight, pair),
            Stage("final", (0,), sch.final_steps, False, loss.final_prior_weight),
        ]
    stages = [Stage("stage1", (s0,), sch.stage1_steps, False, loss.prior_weight)]
    for s in range(blocks - 1, -1, -1):
        stages.append(Stage("stage2", (s,), sch.stage2_steps, cross, loss.prior_weight, pair))
    stages.append(Stage("final", (0,), sch.final_steps, False, loss.final_prior_weight))
    return [st for st in stages if st.steps > 0]


def runs_pipeline_after(cfg: DeblurConfig) -> bool:
    """Whether a published-method recipe continues with estimate -> select -> restore (a hybrid recipe)
    instead of returning the INR image and kernel with the ∆ image."""
    return list(cfg.estimation.estimators) != ["inr"] or cfg.restoration.method != "inr"


def _as_tensor(y) -> torch.Tensor:
    """(H, W) or (H, W, C) array in [0, 1] → (1, C, H, W) float32 tensor."""
    arr = np.asarray(y, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InputError(f"expected an (H, W) or (H, W, C) image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("image contains NaN or Inf values")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


GROUPS = ("image_grids", "image_mlp", "kernel")


@dataclass
class Problem:
    """Everything one image needs: generators, pyramid, observations, grids; and the per-step loss.

    :meth:`step_loss` takes a ``render(s) -> (x_s, k_s)`` function, so the
    same loss serves the module-based optimiser here and the functional
    (``torch.func``) inner loop of meta-learning (:mod:`cbid_meta.meta`)."""

    cfg: DeblurConfig
    y_t: torch.Tensor
    pyr: Pyramid
    s0: int
    depth: int
    kernel_size: int
    img_gen: ImageINR
    ker_gen: KernelINR
    device: torch.device

    def __post_init__(self):
        d, dev, dt = self.depth, self.device, self.y_t.dtype
        self.obs = observation_pyramid(self.y_t, d, "mean")
        self.axes = {s: self.pyr.latent_axes(s, dev, dt) for s in range(d + 1)}
        self.kax = {s: self.pyr.kernel_axis(s, dev, dt) for s in range(d + 1)}
        self.kmask = {s: self.pyr.kernel_mask(s, dev, dt) for s in range(d + 1)}
        self.fit_m, self.cross_m = metric(self.cfg.loss.fit), metric(self.cfg.loss.cross)
        self.prior_fn = prior(self.cfg.loss.prior)

    def param_groups(self) -> dict[str, dict[str, torch.nn.Parameter]]:
        """Named parameters by group: image feature grids, image decoder MLP, kernel MLP."""
        img = dict(self.img_gen.named_parameters())
        return {
            "image_grids": {f"image.{k}": v for k, v in img.items() if k.startswith("grids.")},
            "image_mlp": {f"image.{k}": v for k, v in img.items() if not k.startswith("grids.")},
            "kernel": {f"kernel.{k}": v for k, v in self.ker_gen.named_parameters()},
        }

    def initial_params(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The modules' parameters as an explicit dict (detached copies) and the group of each."""
        return explicit_params(self.param_groups())

    def functional_render(self, params: dict[str, torch.Tensor]):
        """``render(s)`` with the generators evaluated at ``params`` (``torch.func.functional_call``;
        buffers missing from ``params`` come from the modules)."""
        from torch.func import functional_call

        img_p, ker_p = sub_params(params, "image"), sub_params(params, "kernel")

        def ig(*a, **kw):
            return functional_call(self.img_gen, img_p, a, kw)

        def kg(*a, **kw):
            return functional_call(self.ker_gen, ker_p, a, kw)

        return lambda s: self.render(s, img_gen=ig, ker_gen=kg)

    def render(self, s: int, img_gen=None, ker_gen=None):
        """``(x_s, k_s)`` at scale ``s`` (callables default to the modules)."""
        pitch = float(2**s)
        ig = img_gen or self.img_gen
        kg = ker_gen or self.ker_gen
        return ig(*self.axes[s], pitch=pitch), kg(self.kax[s], self.kmask[s], pitch=pitch)

    def step_loss(self, st: Stage, render) -> tuple[torch.Tensor, dict]:
        """Total loss of one step of stage ``st``: L_fit + λ·L_cross + w·prior over its scales."""
        zero = self.y_t.new_zeros(())
        l_fit, l_cross, l_prior = zero, zero, zero
        for s in st.scales:
            x_s, k_s = render(s)
            l_fit = l_fit + fit_loss(x_s, k_s, self.obs[s], self.fit_m)
            if st.cross and s + 1 <= self.depth:
                x_c, k_c = render(s + 1)
                l_cross = l_cross + cross_scale_loss(x_s, k_s, x_c, k_c, self.cross_m)
            if st.prior_weight > 0:
                l_prior = l_prior + self.prior_fn(x_s, self.cfg.loss.prior_eps)
        total = l_fit + self.cfg.loss.cross_weight * l_cross + st.prior_weight * l_prior
        return total, {"fit": l_fit, "cross": l_cross, "prior": l_prior}

    def kernel_estimate(self, k0: torch.Tensor) -> np.ndarray:
        """The user-size kernel (sum 1) cut from the scale-0 kernel lattice."""
        c0 = self.pyr.half(0)
        r = (self.kernel_size - 1) // 2
        k = k0[0, 0, c0 - r : c0 + r + 1, c0 - r : c0 + r + 1].detach().cpu().double().numpy()
        return k / max(k.sum(), 1e-12)


class Deblurrer:
    """Self-supervised blind deblurring of one image with two INR generators.

    Parameters
    ----------
    config : DeblurConfig
    device : ``"cpu"``, ``"cuda"`` or a torch.device.

    Examples
    --------
    >>> from cbid_meta.config import load_recipe
    >>> from cbid_meta.data import demo_pair
    >>> cfg = load_recipe("fast").with_total_steps(30, 3)
    >>> cfg.kernel_size = 9
    >>> y, x, k = demo_pair(size=48, kernel_size=9)
    >>> res = Deblurrer(cfg).run(y)
    >>> res.image.shape, res.kernel.shape
    ((48, 48), (9, 9))
    """

    def __init__(self, config: DeblurConfig, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)

    # -- building blocks -------------------------------------------------
    def check_input(self, y_t: torch.Tensor) -> None:
        check_components(self.config)
        h, w = y_t.shape[-2:]
        n = self.config.kernel_size
        if n < 3:
            raise InputError(f"kernel size must be at least 3, got {n}")
        n += 1 - n % 2  # the odd support setup() will use
        if min(h, w) < 2 * n or min(h, w) < 16:
            raise InputError(f"image {h}x{w} is too small for a {n}x{n} kernel (need at least {max(2 * n, 16)} px per side)")

    def coarsest_scale(self, h: int, w: int) -> int:
        sch = self.config.schedule
        if not sch.multiscale:
            return 0
        if sch.coarsest_scale >= 0:
            return sch.coarsest_scale
        if sch.pyramid == "decimate":
            from .published import published_coarsest_scale

            return published_coarsest_scale(self.config.kernel_size + (1 - self.config.kernel_size % 2), h, w)
        return auto_coarsest_scale(self.config.kernel_size, h, w)

    def setup(self, y_t: torch.Tensor) -> "Problem":
        """Build generators, pyramid, observations and grids for the (1, C, H, W) tensor ``y_t``."""
        cfg = self.config
        self.check_input(y_t)
        kernel_size = cfg.kernel_size + (1 - cfg.kernel_size % 2)  # odd support
        _, c, h, w = y_t.shape
        s0 = self.coarsest_scale(h, w)
        depth = s0 + 1 if (cfg.schedule.use_cross and s0 > 0) else max(s0, 0)
        pyr = Pyramid(h, w, kernel_size, depth)
        from .published import check_generators

        check_generators(cfg, "cell")
        torch.manual_seed(cfg.seed)
        img_gen = create_generator(cfg.image.name, cfg.image, extent=pyr.extent, channels=c).to(self.device)
        # coordinates and the initial width are relative to the user support, not the
        # (larger) internal lattice that keeps the taps of every scale aligned
        ker_gen = create_generator(cfg.kernel.name, cfg.kernel, radius=(kernel_size - 1) / 2, seed=cfg.seed).to(self.device)
        return Problem(cfg, y_t, pyr, s0, depth, kernel_size, img_gen, ker_gen, self.device)

    def run(self, y, callback: Callable[[dict], None] | None = None, init=None, on_phase: Callable[[str], None] | None = None, **published) -> DeblurResult:
        """Deblur ``y`` ((H, W) or (H, W, C) array in [0, 1]).

        ``callback`` receives the history record of every step (for progress bars),
        ``on_phase(name)`` each later unit of work (a polished kernel candidate, a
        restored channel).
        ``init`` (a :class:`cbid_meta.meta.MetaInit`) starts the shared parameters
        from a meta-learned initialisation and uses its per-group step sizes.
        Colour images are restored per channel with one shared kernel.
        With ``[schedule] pyramid = "decimate"`` the published method runs
        (:class:`~cbid_meta.optim.published.PublishedRun`); it also takes
        ``checkpoint``, ``checkpoint_every``, ``monitor`` and ``monitor_every``.
        """
        cfg = self.config
        y_t = _as_tensor(y).to(self.device)
        if cfg.schedule.pyramid not in ("cell", "decimate"):
            raise InputError(f"unknown pyramid '{cfg.schedule.pyramid}' (choose cell or decimate)")
        if cfg.schedule.pyramid == "decimate":
            from .published import PublishedRun

            if init is not None:
                if not init.published:
                    raise InputError("this initialiser was trained for the grid generators, not the published ones: use --mode scratch or a published initialiser")
                init.check(cfg.image, cfg.kernel)
                published = {**published, "init": init.params, "lrs": init.lrs}
            self.check_input(y_t)
            res = PublishedRun(cfg, self.device).run(y_t, self.coarsest_scale(*y_t.shape[-2:]), callback=callback, **published)
            y_np = y_t[0].permute(1, 2, 0).detach().cpu().double().numpy()
            if not runs_pipeline_after(cfg):  # the ∆ protocol: hyper-Laplacian deconvolution of y with the estimated kernel
                delta = RestorationConfig(method="hyper_laplacian", lam=cfg.restoration.lam)
                res.restored = restore(y_np[:, :, 0] if y_np.shape[-1] == 1 else y_np, res.kernel, delta, on_phase=on_phase).astype(np.float32)
            else:
                # a hybrid recipe: estimate -> select -> restore after the published INR method (cbid_meta.pipeline);
                # its own restoration replaces the ∆ image
                x_np = res.image if res.image.ndim == 3 else res.image[:, :, None]
                image, kernel, pipe = finish(y_np, x_np, res.kernel, cfg, on_phase)
                res.info.update(inr_kernel=res.kernel, candidates=pipe["candidates"], chosen=pipe["chosen"], selection=pipe["selection"],
                                estimate_seconds=pipe["estimate_seconds"], restore_seconds=pipe["restore_seconds"])
                res.image, res.kernel = (image[:, :, 0] if image.shape[-1] == 1 else image), kernel
                res.seconds += pipe["estimate_seconds"] + pipe["restore_seconds"]
            return res
        if published:
            raise InputError(f"{', '.join(published)}: only for pyramid = 'decimate'")
        if cfg.schedule.coarse_render != "render":
            raise InputError(f"coarse_render = '{cfg.schedule.coarse_render}': only for pyramid = 'decimate'")
        prob = self.setup(y_t)
        img_gen, ker_gen, pyr, s0, kernel_size = prob.img_gen, prob.ker_gen, prob.pyr, prob.s0, prob.kernel_size
        _, c, h, w = y_t.shape
        lrs = {"image_grids": cfg.schedule.lr_image, "image_mlp": cfg.schedule.lr_image, "kernel": cfg.schedule.lr_kernel}
        if init is not None:
            if init.published:
                raise InputError("this initialiser was trained for the published generators: use it with the recipe it was trained with (pyramid = 'decimate')")
            init.apply(img_gen, ker_gen)
            lrs.update(init.lrs)
        params, group_of = prob.initial_params()
        stages = plan_stages(cfg, s0)
        t0 = time.perf_counter()
        state = optimise(lambda p, st: prob.step_loss(st, prob.functional_render(p)), LoopState(params), group_of, lrs,
                         stages, cfg.schedule, callback=callback)
        history, step = state.history, state.t
        with torch.no_grad():
            x0, k0 = prob.functional_render(state.params)(0)
        c0 = pyr.half(0)
        # estimate -> select -> restore (cbid_meta.pipeline)
        y_np = y_t[0].permute(1, 2, 0).detach().cpu().double().numpy()
        x_np = x0[0, :, c0 : c0 + h, c0 : c0 + w].permute(1, 2, 0).cpu().numpy()
        image, kernel, pipe = finish(y_np, x_np, prob.kernel_estimate(k0), cfg, on_phase)
        seconds = time.perf_counter() - t0
        info = {
            "coarsest_scale": s0,
            "internal_kernel_size": pyr.k0,
            "kernel_size": kernel_size,
            "stages": [st.__dict__ for st in stages],
            "steps": step,
            "restoration": cfg.restoration.method,
            "candidates": pipe["candidates"],
            "chosen": pipe["chosen"],
            "selection": pipe["selection"],
            "estimate_seconds": pipe["estimate_seconds"],
            "device": str(self.device),
            "threads": torch.get_num_threads(),
        }
        return DeblurResult(
            image=image[:, :, 0] if c == 1 else image,
            kernel=kernel,
            history=history,
            seconds=seconds,
            config=cfg.to_dict(),
            info=info,
        )

