"""The Python API: :func:`deblur` does what ``cbid deblur`` does, on an array or a file.

>>> import cbid_meta
>>> from cbid_meta.data import demo_pair
>>> y, x, k = demo_pair(size=64, kernel_size=9)
>>> res = cbid_meta.deblur(y, kernel_size=9, steps=12)
>>> res.image.shape, res.kernel.shape, round(float(res.kernel.sum()), 6)
((64, 64), (9, 9), 1.0)

Everything the command line resolves — recipe, kernel size (``"auto"``),
step budget, initialiser and mode, estimation region, noise level, a known
kernel — is resolved here, by :func:`plan`, before any expensive work, so a
notebook and the CLI give the same result for the same arguments.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .config import DEFAULT_RECIPE
from .errors import InputError

__all__ = ["deblur", "plan", "replay_plan", "run", "Plan", "as_image", "check_options", "parse_device", "parse_kernel_size", "resolve_init", "MODES"]

MODES = ("meta", "scratch")


def parse_device(device: str | None) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked against what this machine has."""
    import torch

    dev = (device or "cpu").strip().lower()
    if dev == "cpu":
        return dev
    if dev == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError("--device mps requested but no MPS device is available")
        return dev
    if dev == "cuda" or dev.startswith("cuda:"):
        idx = dev.partition(":")[2]
        if idx and not idx.isdigit():
            raise InputError(f"--device {device}: expected cuda or cuda:N with N a number")
        if not torch.cuda.is_available():
            raise InputError(f"--device {device} requested but no CUDA device is available")
        if idx and int(idx) >= torch.cuda.device_count():
            raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise InputError(f"--device must be cpu, cuda, cuda:N or mps, got '{device}'")


def as_image(image) -> np.ndarray:
    """A file path, an (H, W) / (H, W, C) array in [0, 1], or a torch tensor (H, W) / (C, H, W) /
    (1, C, H, W) → float64 (H, W) or (H, W, C) array (one-channel images become (H, W))."""
    from .io import load_image

    if isinstance(image, (str, Path)):
        arr = load_image(image, gray=False)
    elif hasattr(image, "detach"):  # torch tensor, channels first
        t = image.detach().cpu().double()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 3:
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    else:
        arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or min(arr.shape[:2]) < 2:
        raise InputError(f"expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("image contains NaN or Inf values")
    return arr


def parse_kernel_size(kernel_size) -> int | str | None:
    """``--kernel-size``: an integer ≥ 3, ``"auto"``, or None (the recipe's)."""
    if kernel_size is None or kernel_size == "auto":
        return kernel_size
    try:
        n = int(kernel_size)
        if isinstance(kernel_size, float) and n != kernel_size:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"--kernel-size must be an integer or 'auto', got '{kernel_size}'") from None
    if n < 3:
        raise InputError(f"--kernel-size must be at least 3, got {n}")
    return n


def check_options(*, recipe=DEFAULT_RECIPE, kernel_size=None, steps=None, noise="auto", kernel=None, init=None, mode=None) -> dict:
    """The settings that need no image, checked and normalised (one error line each): the recipe
    exists, ``kernel_size`` / ``steps`` / ``noise`` are valid, a known ``kernel`` is read and checked
    and excludes the estimation's settings.  Returns ``config`` (the recipe), ``kernel_size``,
    ``noise`` and ``kernel``."""
    from .config import load_recipe
    from .io import as_kernel, load_kernel
    from .optim.photo import parse_noise

    out = {"config": load_recipe(recipe), "kernel_size": parse_kernel_size(kernel_size), "noise": parse_noise(noise), "kernel": None}
    if steps is not None and steps < 3:
        raise InputError(f"--steps must be at least 3, got {steps}")
    if kernel is not None:
        out["kernel"] = load_kernel(kernel) if isinstance(kernel, (str, Path)) else as_kernel(kernel)
        if kernel_size is not None or steps is not None or init is not None or mode is not None:
            raise InputError("--kernel restores with a known kernel: drop --kernel-size, --steps, --init and --mode")
    return out


def resolve_init(recipe: str, init=None, mode: str | None = None):
    """The initialiser a run starts from (``None``: from scratch).

    ``mode="scratch"``: none; ``mode="meta"``: ``init`` or the one packaged for
    ``recipe`` (an error when there is none); ``mode=None``: ``init``, else the
    recipe's default mode (:func:`cbid_meta.meta.default_mode`: the packaged
    initialiser where it is measured the better start, else scratch)."""
    from .meta import MetaInit, default_mode, load_default_init

    if mode is not None and mode not in MODES:
        raise InputError(f"--mode must be meta or scratch, got '{mode}'")
    if mode == "scratch":
        if init is not None:
            raise InputError("--init given with --mode scratch; drop one of them")
        return None
    if init is not None:
        return init if isinstance(init, MetaInit) else MetaInit.load(init)
    if mode is None and default_mode(recipe) == "scratch":
        return None
    default = load_default_init(recipe)
    if default is None and mode == "meta":
        raise InputError(f"--mode meta needs --init PATH (no initialiser is packaged for recipe '{recipe}')")
    return default


@dataclass
class Plan:
    """Everything a run will do, resolved and checked before it starts."""

    config: object  # DeblurConfig (kernel_size resolved)
    recipe: str
    init: object | None  # MetaInit or None
    region: tuple[int, int, int, int]
    noise: float | str | None
    device: str
    kernel: np.ndarray | None  # a known kernel: non-blind restoration only
    total: int  # progress units: INR steps + kernel candidates + restored channels
    notes: list = field(default_factory=list)
    seed_source: str = "recipe"  # "recipe" (its ``seed``) or "--seed" (given)
    kernel_size_auto: bool = False  # the kernel size was estimated (``"auto"``)
    region_source: str = "chosen"  # "chosen" (the window with the most edges) or "given"
    kernel_path: str | None = None  # the known kernel's file, when it came from one

    @property
    def mode(self) -> str:
        if self.kernel is not None:
            return "non-blind"
        return "meta" if self.init is not None else "scratch"

    def record(self) -> dict:
        """What the run depends on beyond the image, for the ``run`` section of ``<name>.json``
        (:mod:`cbid_meta.io.record`): recipe values, seed and kernel size with where they came
        from, region, noise setting, initialiser or known kernel (path and sha256), device,
        dtype and threads.  The σ an ``"auto"`` noise setting estimates is added after the run."""
        import torch

        from .io.record import sha256_file

        def ref(path):
            if path is None:
                return None
            return {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}

        init = None
        if self.init is not None:
            path = self.init.info.get("path")
            if path is None:
                raise InputError("the initialiser was given as an object, not a file: a record needs its file (MetaInit.save it first)")
            from .meta.init import default_init_path

            init = {**ref(path), "packaged": Path(path).resolve() == default_init_path(self.recipe).resolve()}
        return {
            "recipe": str(self.recipe),
            "config": self.config.to_dict(),
            "seed": int(self.config.seed),
            "seed_source": self.seed_source,
            "kernel_size": int(self.config.kernel_size),
            "kernel_size_auto": self.kernel_size_auto,
            "mode": self.mode,
            "init": init,
            "kernel": ref(self.kernel_path) if self.kernel is not None else None,
            "region": [int(v) for v in self.region],
            "region_source": self.region_source,
            "noise": self.noise,
            "noise_sigma": self.noise if isinstance(self.noise, float) else None,
            "device": self.device,
            "dtype": str(torch.get_default_dtype()).removeprefix("torch."),
            "autocast": self.config.image.autocast,
            "threads": torch.get_num_threads(),
        }


def plan(
    image: np.ndarray,
    *,
    recipe: str = DEFAULT_RECIPE,
    kernel_size: int | str | None = None,
    steps: int | None = None,
    mode: str | None = None,
    init=None,
    region: tuple[int, int, int, int] | None = None,
    noise: float | str | None = "auto",
    seed: int | None = None,
    device: str = "cpu",
    kernel=None,
    estimate_side: int = 384,
) -> Plan:
    """Resolve and check every setting of a run on ``image`` (an array from :func:`as_image`).

    ``seed``: the generators' seed; None: the recipe's ``seed`` (:func:`cbid_meta.config.resolve_seed`)."""
    from .config import resolve_seed
    from .optim.photo import auto_kernel_size, check_region, choose_region, luminance

    opts = check_options(recipe=recipe, kernel_size=kernel_size, steps=steps, noise=noise, kernel=kernel, init=init, mode=mode)
    ks, sigma, k = opts["kernel_size"], opts["noise"], opts["kernel"]
    dev = parse_device(device)
    cfg = opts["config"]
    cfg.seed = resolve_seed(recipe, seed) if seed is not None else int(cfg.seed)
    given = {"seed_source": "recipe" if seed is None else "--seed", "region_source": "chosen" if region is None else "given"}
    lum = luminance(image)
    h, w = lum.shape
    channels = 1 if image.ndim == 2 else image.shape[2]
    notes: list[str] = []
    region = check_region(region, h, w) if region is not None else choose_region(lum, estimate_side)
    if k is not None:  # non-blind: restoration only
        if min(h, w) < 2 * k.shape[0]:
            raise InputError(f"image {h}x{w} is too small for a {k.shape[0]}x{k.shape[1]} kernel (need at least {2 * k.shape[0]} px per side)")
        cfg.kernel_size = k.shape[0]
        return Plan(cfg, recipe, None, region, sigma, dev, k, channels, notes, **given,
                    kernel_path=str(kernel) if isinstance(kernel, (str, Path)) else None)
    meta_init = resolve_init(recipe, init, mode)
    if ks == "auto":
        cfg.kernel_size = auto_kernel_size(lum)
        notes.append(f"kernel size auto: {cfg.kernel_size}")
    elif ks is not None:
        cfg.kernel_size = ks
    cfg, total = _blind_total(image, cfg, region, sigma, dev, steps if steps is not None else (meta_init.steps if meta_init is not None else None))
    return Plan(cfg, recipe, meta_init, region, sigma, dev, None, total, notes, **given, kernel_size_auto=ks == "auto")


def _blind_total(image: np.ndarray, cfg, region, sigma, dev: str, budget: int | None):
    """``(config, progress units)`` of a blind run: the config rescaled to ``budget`` steps (None: as
    it is); the region checked against the kernel support before any work."""
    from .optim import Deblurrer, plan_stages, stage2_blocks
    from .optim.deblur import runs_pipeline_after
    from .pipeline import progress_units

    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    _, _, rh, rw = region
    deb = Deblurrer(cfg, dev)
    deb.check_input(_shape_tensor(rh, rw))  # too small for the kernel: before any work
    s0 = deb.coarsest_scale(rh, rw)
    if budget is not None:
        cfg = cfg.with_total_steps(budget, stage2_blocks(cfg, s0))
    n_steps = sum(st.steps for st in plan_stages(cfg, s0))
    whole_gray = (rh, rw) == (h, w) and image.ndim == 2 and (sigma is None or cfg.restoration.method == "inr")
    # the estimation's own units (L0 candidates, restoring the crop; the published run's ∆ image),
    # then the full image's channels unless the estimation ran on all of it
    delta = cfg.schedule.pyramid == "decimate" and not runs_pipeline_after(cfg)  # the published run's ∆ image
    units = progress_units(cfg) + (1 if delta else 0) + (0 if whole_gray else channels)
    return cfg, n_steps + units


def _verified(ref: dict, what: str, fallback: Path | None = None) -> Path:
    """The file a record names (``{"path", "sha256"}``), refused when gone or changed."""
    from .io.record import sha256_file

    path = Path(ref["path"])
    if not path.is_file() and fallback is not None and fallback.is_file():
        path = fallback
    if not path.is_file():
        raise InputError(f"the {what} {ref['path']} of the record no longer exists")
    if sha256_file(path) != ref["sha256"]:
        raise InputError(f"the {what} {path} has changed since the record (sha256 {sha256_file(path)[:12]}…, recorded {ref['sha256'][:12]}…)")
    return path


def replay_plan(image: np.ndarray, rec: dict) -> Plan:
    """The :class:`Plan` of a record's ``run`` section (:func:`cbid_meta.io.record.read_record`): its
    recipe values as recorded (seed, kernel size and step schedule included: nothing re-resolved),
    region, noise setting, device, and its initialiser or known kernel, each refused unless its
    sha256 still matches."""
    from .config import DeblurConfig
    from .io import load_kernel
    from .optim.photo import check_region, parse_noise

    try:
        cfg = DeblurConfig.from_dict(rec["config"])
    except InputError as exc:
        raise InputError(f"run.config is not valid ({exc})") from None
    dev = parse_device(rec["device"])
    sigma = parse_noise(rec["noise"])
    h, w = image.shape[:2]
    region = check_region(rec["region"], h, w)
    given = {"seed_source": rec["seed_source"], "region_source": rec["region_source"], "kernel_size_auto": rec["kernel_size_auto"]}
    channels = 1 if image.ndim == 2 else image.shape[2]
    if rec["kernel"] is not None:
        path = _verified(rec["kernel"], "known kernel")
        k = load_kernel(path)
        return Plan(cfg, rec["recipe"], None, region, sigma, dev, k, channels, [], **given, kernel_path=str(path))
    meta_init = None
    if rec["init"] is not None:
        from .meta import MetaInit
        from .meta.init import default_init_path

        fallback = default_init_path(rec["recipe"]) if rec["init"].get("packaged") else None
        meta_init = MetaInit.load(_verified(rec["init"], "initialiser", fallback))
    cfg, total = _blind_total(image, cfg, region, sigma, dev, None)
    return Plan(cfg, rec["recipe"], meta_init, region, sigma, dev, None, total, [], **given)


def _shape_tensor(h: int, w: int):
    import torch

    return torch.empty((1, 1, h, w), device="meta")


def run(image: np.ndarray, p: Plan, progress: Callable[[int, int, str], None] | None = None):
    """Run a resolved :class:`Plan` on ``image``; ``progress(done, total, phase)`` is called as it goes."""
    from .optim.photo import deblur_photo

    done = [0]

    def tick(phase: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0], p.total), p.total, phase)

    return deblur_photo(
        image, copy.deepcopy(p.config), p.device, init=p.init, region=p.region, noise=p.noise,
        callback=lambda rec: tick(rec.get("stage", "inr")), on_phase=tick, kernel=p.kernel,
    )


def deblur(image, *, progress: Callable[[int, int, str], None] | None = None, **settings):
    """Deblur one image, exactly as ``cbid deblur`` does.

    Parameters (``settings`` are the keywords of :func:`plan`)
    ----------
    image : path, (H, W) or (H, W, 3) array in [0, 1], or torch tensor (channels first).
    recipe : a recipe name (``paper_w32_hybrid``: the default, :data:`cbid_meta.config.DEFAULT_RECIPE`; ``fast``: the
        quicker older default, ``paper``: the published method, ``paper_w32``: it at width 32 with a packaged
        initialiser, ``paper_grid``, the ``paper_*`` ablations) or TOML path.
    kernel_size : odd support in px, ``"auto"`` (estimated), or None (the recipe's).
    steps : total optimisation steps (the schedule is rescaled); None: the recipe's, or the
        initialiser's recommended budget in meta mode.
    mode, init : ``"meta"`` / ``"scratch"`` and a :class:`~cbid_meta.meta.MetaInit` or its path;
        by default the initialiser packaged for the recipe when there is one.
    region : (top, left, height, width) of the crop the kernel is estimated on (default: chosen).
    noise : σ of the noise, ``"auto"`` (estimated) or None / ``"none"`` (the recipe's weight as is).
    kernel : a known kernel (array or ``.npy`` / image path): non-blind restoration only.
    seed : seed of the generators' initialisation; None (the default): the recipe's ``seed``
        (``paper`` and the recipes built on it: 2024; ``fast`` sets none: 0).
    device : ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    progress : ``progress(done, total, phase)``, called as the run goes.

    Returns
    -------
    :class:`~cbid_meta.optim.photo.PhotoResult`: ``image``, ``kernel`` (sums to 1), ``info``, ``seconds``.
    """
    img = as_image(image)
    p = plan(img, **settings)
    res = run(img, p, progress)
    res.info.setdefault("notes", []).extend(p.notes)
    res.info["mode"] = p.mode
    res.info["seed"] = int(p.config.seed)
    return res
