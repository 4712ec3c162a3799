"""A meta-learned initialiser: θ, per-group step sizes and the settings it was trained with.

Stored as one safetensors file (tensors + string metadata: the generator
config it must be used with, the learned step sizes, the recommended test
budget, the training-data fingerprint) and a JSON sidecar with the same
metadata for humans.  ``cbid deblur --init PATH`` and
:meth:`cbid_meta.optim.Deblurrer.run` (``init=``) consume it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import InputError

__all__ = ["MetaInit", "default_init_path", "load_default_init", "default_mode"]


#: packaged initialisers by the per-image recipe they were meta-trained for
PACKAGED = {"fast": "default_init.safetensors", "paper_grid": "paper_grid_init.safetensors", "paper_w32": "paper_w32_init.safetensors",
            "paper_w32_hybrid": "paper_w32_init.safetensors"}  # the hybrid runs the same generators


#: packaged initialisers a run does not start from unless ``--mode meta`` asks: on the fast recipe a random
#: start is the better one as users run it (all 32 Levin images: 30.36 dB from scratch against 29.75 from
#: ``default_init``, ``benchmarks/results/default_choice.md``)
SCRATCH_BY_DEFAULT = frozenset({PACKAGED["fast"]})


def default_mode(recipe: str = "fast") -> str:
    """The mode a run of ``recipe`` takes when none is given: ``"meta"`` when an initialiser is packaged for it
    and measured the better start, else ``"scratch"``.

    >>> default_mode("paper_w32_hybrid"), default_mode("fast"), default_mode("paper")
    ('meta', 'scratch', 'scratch')
    """
    p = _packaged_path(recipe)
    return "scratch" if p is None or p.name in SCRATCH_BY_DEFAULT else "meta"


def default_init_path(recipe: str = "fast") -> Path:
    """The initialiser shipped inside the package for ``recipe`` (``fast``, ``paper_grid``, ``paper_w32`` or
    ``paper_w32_hybrid``).

    A recipe given as a TOML path gets the fast recipe's initialiser; the file
    may be absent in a source checkout."""
    return Path(__file__).resolve().parent / PACKAGED.get(str(recipe), PACKAGED["fast"])


@dataclass
class MetaInit:
    params: dict[str, torch.Tensor]
    lrs: dict[str, float]
    image_config: dict
    kernel_config: dict
    steps: int = 80  # recommended test-time budget
    kernel_margin: int = 10
    info: dict = field(default_factory=dict)

    #: generator settings that do not change θ's meaning (initial values, speed options)
    FREE_KEYS = ("init_scale", "band", "finest", "finest_ratio", "coarsest", "init_sigma", "channels_last", "autocast")

    def check(self, image_cfg, kernel_cfg) -> None:
        """One error line unless the generator configs (dataclasses) are the ones θ was trained with."""
        from dataclasses import asdict

        for name, want, got in (("image", self.image_config, asdict(image_cfg)), ("kernel", self.kernel_config, asdict(kernel_cfg))):
            keys = [k for k in want if k not in self.FREE_KEYS]
            diff = [k for k in keys if want.get(k) != got.get(k)]
            if diff:
                raise InputError(f"initialiser was trained with a different {name} generator ({', '.join(f'{k}={want[k]}' for k in diff)}); use the recipe it was trained with")

    @property
    def published(self) -> bool:
        """θ of the published generators (U-Net Φx and SIREN Φk, all their parameters)."""
        return self.info.get("method") == "published"

    def apply(self, img_gen, ker_gen) -> None:
        """Copy θ into freshly built generators (configs must match the training ones)."""
        self.check(img_gen.cfg, ker_gen.cfg)
        with torch.no_grad():
            img = dict(img_gen.named_parameters())
            ker = dict(ker_gen.named_parameters())
            for k, v in self.params.items():
                if k == "kernel.freqs":
                    ker_gen.freqs.copy_(v.to(ker_gen.freqs))
                elif k.startswith("image."):
                    img[k[6:]].copy_(v.to(img[k[6:]]))
                elif k.startswith("kernel."):
                    ker[k[7:]].copy_(v.to(ker[k[7:]]))

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = self._meta()
        tmp = path.with_name(path.name + ".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.params.items()}, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
        os.replace(tmp, path)
        side = path.with_suffix(".json")
        side.with_name(side.name + ".tmp").write_text(json.dumps(meta, indent=2))
        side.with_name(side.name + ".tmp").replace(side)
        return path

    def _meta(self) -> dict:
        return {
            "format": "cbid_meta.init/1",
            "lrs": self.lrs,
            "image_config": self.image_config,
            "kernel_config": self.kernel_config,
            "steps": self.steps,
            "kernel_margin": self.kernel_margin,
            "info": self.info,
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MetaInit":
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError(f"initialiser not found: {path}")
        try:
            with safe_open(str(path), "pt") as f:
                raw = f.metadata() or {}
            params = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise InputError(f"{path} is not a safetensors initialiser: {e}") from None
        try:
            meta = {k: json.loads(v) for k, v in raw.items()}
            assert meta.get("format") == "cbid_meta.init/1"
            return cls(params, {k: float(v) for k, v in meta["lrs"].items()}, meta["image_config"], meta["kernel_config"], int(meta["steps"]), int(meta["kernel_margin"]), {**meta.get("info", {}), "path": str(path)})
        except (AssertionError, KeyError, ValueError, TypeError):
            raise InputError(f"{path} is a safetensors file but not a cbid_meta initialiser") from None


def load_default_init(recipe: str = "fast") -> MetaInit | None:
    """The packaged initialiser for ``recipe``, or None (none is packaged for it, e.g. the published ``paper``
    recipe at width 128).  A recipe file gets the fast recipe's initialiser when it runs the grid generators
    and none when it runs the published ones (their initialiser fits one width only)."""
    p = _packaged_path(recipe)
    return MetaInit.load(p) if p is not None else None


def _packaged_path(recipe) -> Path | None:
    """The file :func:`load_default_init` loads for ``recipe``, or None."""
    if not Path(str(recipe)).suffix and str(recipe) not in PACKAGED:
        return None
    if Path(str(recipe)).suffix:
        from ..config import load_recipe

        if load_recipe(recipe).schedule.pyramid == "decimate":
            return None
    p = default_init_path(recipe)
    return p if p.is_file() else None
