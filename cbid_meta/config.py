"""Typed configuration of a per-image deblurring run, and recipe files.

A recipe is a TOML file whose tables mirror these dataclasses::

    [image]      # ImageGeneratorConfig
    [kernel]     # KernelGeneratorConfig
    [loss]         # LossConfig
    [schedule]     # ScheduleConfig: the INR method's schedule
    [estimation]   # EstimationConfig: kernel candidates
    [selection]    # SelectionConfig: one of them
    [restoration]  # RestorationConfig: the final image

Named recipes live in ``recipes/`` (``paper_w32_hybrid``: the default of ``cbid deblur``,
``cbid demo`` and the API, :data:`DEFAULT_RECIPE`; ``fast``: the older default, ``paper``: the
published method, ``paper_*``: its ablations).  The dataclass defaults are the
``fast`` recipe (a test checks it).  Unknown keys are an error, so a typo in a
recipe never silently falls back to a default.

A recipe may start from another: a top-level ``base = "NAME"`` (a named recipe, or a
path relative to the file) loads that recipe first and overlays the file's keys on it,
table by table (a key of the file replaces the base's, keys it does not name are the
base's).  The ablations of the published method are such files (``recipes/paper_no_cross.toml``:
``base = "paper"`` plus ``[schedule] use_cross = false``).
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = [
    "ImageGeneratorConfig",
    "KernelGeneratorConfig",
    "LossConfig",
    "ScheduleConfig",
    "EstimationConfig",
    "SelectionConfig",
    "RestorationConfig",
    "DeblurConfig",
    "DEFAULT_RECIPE",
    "load_recipe",
    "resolve_seed",
    "recipe_dir",
    "available_recipes",
]


@dataclass
class ImageGeneratorConfig:
    """Image generator Φx, by registered ``name``.

    ``fourier_unet`` (published, :class:`~cbid_meta.generators.FourierUNet`) reads
    ``width``, ``depth``, ``skip``, ``n_freqs`` and two speed options that do not
    change the maths: ``channels_last`` (memory layout) and ``autocast``
    (``"bf16"``: forward pass in bfloat16; ``"none"``: float32); ``grid``
    (:class:`~cbid_meta.generators.ImageINR`) reads the other fields.
    """

    name: str = "grid"
    width: int = 128
    depth: int = 5
    skip: int = 16
    n_freqs: int = 16
    channels_last: bool = True
    autocast: str = "none"
    levels: int = 6
    features: int = 2
    coarsest: int = 8
    finest: int = 0  # cells along the longer side; 0: finest_ratio × latent size
    finest_ratio: float = 1.0
    hidden: int = 32
    hidden_layers: int = 1
    init_scale: float = 1e-4
    band: float = 1.0  # levels with cells finer than band × sample pitch are off (0: always on)


@dataclass
class KernelGeneratorConfig:
    """Kernel generator Φk, by registered ``name``.

    ``siren`` (published, :class:`~cbid_meta.generators.SirenKernel`) reads
    ``hidden``, ``layers``, ``omega0``, ``centre``, ``centring`` (the centring
    layer's rule, :func:`cbid_meta.physics.roll_to_centre`) and ``coarse`` (how a
    coarser scale's kernel is made: ``"render"``, the network on that support's
    grid, as published; ``"pool"``, the full support rendered and 2×2 sum-pooled,
    as the ``mlp_kernel`` ablation must); ``fourier_mlp``
    (:class:`~cbid_meta.generators.KernelINR`) reads ``hidden`` and the
    fields from ``fourier_features`` on.
    """

    name: str = "fourier_mlp"
    layers: int = 3
    omega0: float = 30.0
    centre: bool = True
    centring: str = "public"
    coarse: str = "render"
    fourier_features: int = 32
    fourier_sigma: float = 1.5
    hidden: int = 64
    hidden_layers: int = 2
    init_sigma: float = 0.3  # std of the initial Gaussian kernel, in units of the kernel radius
    band: float = 1.0  # Fourier features above band × Nyquist of the tap spacing are off (0: always on)


@dataclass
class LossConfig:
    """Fitting metric M_f, cross-scale metric M_c and weights.

    ``fit`` / ``cross``: ``l2`` (mean squared error, the default), ``l1``,
    ``charbonnier``, ``ssim`` (1 − SSIM over the valid windows), ``ssim_same`` (1 − SSIM
    with zero-padded windows: the published fit, as the authors' code) or ``dft_l1`` (ℓ1 of
    the DFT difference: the published cross term).  ``cross_weight`` is λ.  ``prior`` names a standard image
    prior (``tv``: total variation, ``l1l2``: normalised gradient sparsity)
    added with weight ``prior_weight`` during stages 1–2 and
    ``final_prior_weight`` during the final stage (0 disables it).
    """

    fit: str = "l2"
    cross: str = "l2"
    cross_weight: float = 0.1
    prior: str = "l1l2"
    prior_weight: float = 0.001
    final_prior_weight: float = 0.001
    prior_eps: float = 1e-3


@dataclass
class ScheduleConfig:
    """The progressive coarse-to-fine schedule of the INR method.

    Stage 1: ``stage1_steps`` at scale S0 with L_fit only.
    Stage 2: ``stage2_steps`` at each scale S0, S0-1, …, 0 with L_fit + λ·L_cross.
    Final:   ``final_steps`` at scale 0 with L_fit only — run only when the image
             comes from the generator (``[restoration] method = "inr"``).

    ``pyramid = "decimate"`` is the published model (``docs/design.md``,
    :mod:`cbid_meta.optim.published`): scale s observes ``y`` decimated s times
    (⌊N/2⌋ samples per step), its kernel has ⌈K/2^s⌉ taps, blur is the
    authors' correlation; stage 2 is S0 pairs (S0, S0−1), …, (1, 0), the pair
    ending at scale s fits (x⁽ˢ⁾⋆k⁽ˢ⁾)↓2 to y⁽ˢ⁺¹⁾ plus λ times the cross term
    :func:`cbid_meta.physics.cross_scale_prediction` against y⁽ˢ⁺¹⁾;
    ``restarts`` > 1 runs that many seeds of the image as one batch and keeps
    the one with the lowest final fit loss.
    ``"cell"``: block means on a shared kernel lattice, stage 2 at S0, …, 0.
    ``total_steps`` > 0 sets the final stage to the steps left of that total;
    ``lr_milestones`` / ``lr_gamma`` are a step decay of both learning rates
    (the published 2000, 4000 and 0.5); ``lr_decay``: the learning rates are
    multiplied by this factor (cosine) over the final stage.

    ``coarsest_scale`` = -1 picks S0 from the kernel and image size.
    ``use_cross`` / ``progressive`` / ``multiscale`` switch off parts of the
    method for the ablations.  ``coarse_render`` (decimation pyramid only): how the
    latent image of a scale s > 0 is made — ``"render"`` (the published model: the
    image generator renders that scale's own grid) or ``"downsample"`` (the
    direct-down-sampling ablation: the full-resolution render, bilinearly
    down-sampled to the scale's latent size).
    """

    pyramid: str = "cell"
    coarsest_scale: int = -1
    total_steps: int = 0
    lr_milestones: list = field(default_factory=list)
    lr_gamma: float = 0.5
    stage1_steps: int = 10
    stage2_steps: int = 10
    final_steps: int = 100
    lr_image: float = 1e-2
    lr_kernel: float = 1e-3
    lr_decay: float = 0.1
    use_cross: bool = True
    progressive: bool = True
    multiscale: bool = True
    restarts: int = 1
    coarse_render: str = "render"


@dataclass
class EstimationConfig:
    """Kernel candidates (:mod:`cbid_meta.pipeline.estimation`), by name, in order.

    ``inr``: the INR method's kernel; ``polish``: L0 alternating MAP started from it
    on the ``polish_levels`` finest levels of its √2 pyramid (a number ≥ its depth:
    every level), after cutting its support to the taps above ``polish_trim`` × max
    (+2 px; 0: no cut); ``l0_map``: L0 MAP from scratch on the full support.  ``iters``:
    L0 iterations per level.  With ``alt_prune`` > 0 each L0 estimator also runs with
    that prune fraction when the support is at least ``alt_min_size`` px.
    """

    estimators: list = field(default_factory=lambda: ["polish", "l0_map"])
    polish_levels: int = 12
    polish_trim: float = 0.1
    iters: int = 10
    alt_prune: float = 0.02
    alt_min_size: int = 25


@dataclass
class SelectionConfig:
    """How one kernel is chosen among several candidates (:mod:`cbid_meta.pipeline.selection`).

    ``sparsity``: the candidate whose hyper-Laplacian deconvolution has the lowest
    ‖∇x‖₁/‖∇x‖₂; candidates with more than ``max_taps`` × support side non-zero taps
    are passed over unless all are (0: no such guard).
    """

    method: str = "sparsity"
    max_taps: float = 8.0


@dataclass
class RestorationConfig:
    """The final image (:mod:`cbid_meta.pipeline.restoration`).

    ``method``: ``inr`` (the generator's output: the paper), ``hyper_laplacian``,
    ``wiener`` or ``tiled``; ``lam``: the non-blind data weight (scaled down for
    noisy input by ``--noise``); ``tile`` / ``wiener_above_mp``: the tiled restorer's
    tile side and the size above which its tiles use the Wiener filter.
    """

    method: str = "hyper_laplacian"
    lam: float = 5000.0
    tile: int = 512
    wiener_above_mp: float = 2.0


@dataclass
class DeblurConfig:
    """Everything that defines a per-image run."""

    kernel_size: int = 31
    seed: int = 0
    image: ImageGeneratorConfig = field(default_factory=ImageGeneratorConfig)
    kernel: KernelGeneratorConfig = field(default_factory=KernelGeneratorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    estimation: EstimationConfig = field(default_factory=EstimationConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    restoration: RestorationConfig = field(default_factory=RestorationConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeblurConfig":
        return _build(cls, data, "recipe")

    def with_total_steps(self, steps: int, n_scales: int) -> "DeblurConfig":
        """Copy with every stage scaled so the whole schedule has about ``steps`` steps."""
        sch = self.schedule
        if sch.total_steps > 0:
            final = sch.total_steps - sch.stage1_steps - sch.stage2_steps * n_scales
            sch = dataclasses.replace(sch, final_steps=max(final, 0), total_steps=0)
        final = sch.final_steps if self.restoration.method == "inr" or sch.pyramid == "decimate" else 0  # as plan_stages runs it
        cur = sch.stage1_steps + sch.stage2_steps * n_scales + final
        f = steps / max(cur, 1)
        new = dataclasses.replace(
            sch,
            stage1_steps=max(1, round(sch.stage1_steps * f)),
            stage2_steps=max(1, round(sch.stage2_steps * f)) if sch.stage2_steps else 0,
            final_steps=max(1, round(sch.final_steps * f)),
            lr_milestones=[max(1, round(m * f)) for m in sch.lr_milestones],
        )
        return dataclasses.replace(self, schedule=new)


_SECTIONS = {
    "image": ImageGeneratorConfig,
    "kernel": KernelGeneratorConfig,
    "loss": LossConfig,
    "schedule": ScheduleConfig,
    "estimation": EstimationConfig,
    "selection": SelectionConfig,
    "restoration": RestorationConfig,
}


def _build(cls, data: dict[str, Any], where: str):
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise InputError(f"unknown key '{key}' in {where} (allowed: {', '.join(sorted(known))})")
        if key in _SECTIONS and cls is DeblurConfig:
            if not isinstance(value, dict):
                raise InputError(f"'{key}' in {where} must be a table")
            kwargs[key] = _build(_SECTIONS[key], value, f"{where}[{key}]")
        else:
            default = getattr(cls(), key)
            if isinstance(default, list) and not isinstance(value, list):
                raise InputError(f"'{key}' in {where} must be a list, got {value!r}")
            if isinstance(default, bool) and not isinstance(value, bool):
                raise InputError(f"'{key}' in {where} must be true/false, got {value!r}")
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InputError(f"'{key}' in {where} must be a number, got {value!r}")
                value = type(default)(value) if isinstance(default, float) else value
            kwargs[key] = value
    return cls(**kwargs)


def recipe_dir() -> Path:
    """Folder of the named recipes shipped with the package."""
    return Path(__file__).resolve().parent / "recipes"


def available_recipes() -> list[str]:
    return sorted(p.stem for p in recipe_dir().glob("*.toml"))


def read_recipe_toml(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> tuple[Path, dict]:
    """``(path, data)`` of a named recipe in ``recipes/`` or a TOML file path (``description`` dropped;
    a ``base`` recipe resolved: its data with this file's tables overlaid key by key)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = recipe_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise InputError(f"unknown recipe '{name_or_path}' (available: {', '.join(available_recipes())})")
    if not path.is_file():
        raise InputError(f"recipe file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"recipe {path} is not valid TOML: {exc}") from None
    data.pop("description", None)
    base = data.pop("base", None)
    if base is None:
        return path, data
    if not isinstance(base, str) or not base:
        raise InputError(f"'base' in {path} must be a recipe name or file, got {base!r}")
    here = path.resolve()
    if here in _seen:
        raise InputError(f"recipe {path}: 'base' loops back to itself")
    base_ref = Path(base)
    if base_ref.suffix and not base_ref.is_absolute():
        base_ref = path.parent / base_ref
    _, merged = read_recipe_toml(base_ref if base_ref.suffix else base, (*_seen, here))
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return path, merged


#: the recipe ``cbid deblur``, ``cbid demo`` and :func:`cbid_meta.api.deblur` use unless told otherwise: the best
#: measured on all 32 Levin images within 2 minutes and 2 GiB per image on a 2-core CPU, as users run it
#: (``benchmarks/results/default_choice.md``)
DEFAULT_RECIPE = "paper_w32_hybrid"


def load_recipe(name_or_path: str | Path = "fast") -> DeblurConfig:
    """Load a named recipe (``fast``, ``paper``, …) or a TOML file path."""
    _, data = read_recipe_toml(name_or_path)
    data.pop("meta", None)
    return DeblurConfig.from_dict(data)


def resolve_seed(recipe: str | Path = "fast", seed: int | None = None) -> int:
    """The seed a run uses: ``seed`` when given, else the recipe's ``seed`` (0 when it sets none).

    The one rule of ``cbid deblur``, ``demo``, ``bench``, ``compare``, the API and the benchmark
    scripts (``recipes/paper.toml`` sets 2024, ``fast`` none).

    >>> resolve_seed("paper"), resolve_seed("paper", 1), resolve_seed("fast")
    (2024, 1, 0)
    """
    if seed is not None:
        if isinstance(seed, bool) or not hasattr(seed, "__index__"):
            raise InputError(f"--seed must be an integer, got {seed!r}")
        return int(seed)
    return int(load_recipe(recipe).seed)
