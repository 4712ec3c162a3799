"""Benchmark datasets: Levin, any folder of (blurry, sharp[, kernel]) triples, a seeded synthetic set.

Every loader returns a list of :class:`BenchItem` (gray float64 arrays in [0, 1]).

Folder layout (``cbid bench folder --data DIR``)::

    DIR/<name>_blurry.png     required
    DIR/<name>_sharp.png      required (same size as the blurry image)
    DIR/<name>_kernel.png     optional (any size; normalised to sum 1)

``cbid_meta.evaluation.datasets.write_folder`` writes that layout, so a
synthetic set can be frozen to disk and shared.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["BenchItem", "load_dataset", "load_folder", "synthetic_set", "write_folder", "DATASETS"]

DATASETS = ("levin", "synthetic", "folder")


@dataclass
class BenchItem:
    name: str
    blurry: np.ndarray
    sharp: np.ndarray | None
    kernel: np.ndarray | None
    noise: float = 0.0


def _read(path: Path, what: str) -> np.ndarray:
    from ..io import load_image

    try:
        return load_image(path, gray=True).astype(np.float64)
    except InputError as e:
        raise InputError(f"{what}: {e}") from None


def load_folder(root: str | os.PathLike) -> list[BenchItem]:
    """Read ``<name>_blurry.png`` / ``<name>_sharp.png`` [/ ``<name>_kernel.png``] triples."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    blurry = sorted(root.glob("*_blurry.*"))
    if not blurry:
        raise InputError(f"no '<name>_blurry.<ext>' files in {root}")
    items = []
    for b in blurry:
        name = b.name[: b.name.rindex("_blurry.")]
        sharp = sorted(root.glob(f"{name}_sharp.*"))
        if not sharp:
            raise InputError(f"{b.name} has no matching '{name}_sharp' image in {root}")
        kern = sorted(root.glob(f"{name}_kernel.*"))
        y, x = _read(b, b.name), _read(sharp[0], sharp[0].name)
        if y.shape != x.shape:
            raise InputError(f"{name}: blurry {y.shape} and sharp {x.shape} differ in size")
        k = None
        if kern:
            k = _read(kern[0], kern[0].name)
            if k.sum() <= 0:
                raise InputError(f"{kern[0].name} is an all-zero kernel")
            k = k / k.sum()
        items.append(BenchItem(name, y, x, k))
    return items


#: (scikit-image image name, top, left) crops used by the synthetic set: varied
#: natural content (faces, text, textures, objects) that ships with scikit-image.
_SOURCES = [
    ("camera", 40, 120), ("astronaut", 30, 150), ("coffee", 100, 200), ("chelsea", 20, 100),
    ("rocket", 100, 180), ("brick", 50, 50), ("grass", 80, 80), ("gravel", 60, 60),
    ("astronaut", 100, 300), ("coins", 30, 40), ("immunohistochemistry", 200, 200), ("clock", 40, 100),
    ("camera", 250, 250), ("astronaut", 250, 250), ("coffee", 150, 350), ("chelsea", 60, 220),
    ("chelsea", 150, 280), ("cat", 50, 150), ("brick", 300, 300), ("coffee", 50, 50),
    ("coins", 100, 180), ("clock", 60, 180), ("camera", 300, 30), ("astronaut", 300, 10),
]


def synthetic_set(
    n: int = 24,
    size: int = 160,
    kernel_sizes: tuple[int, ...] = (13, 17, 21, 25, 29, 33, 37, 41),
    noise: float = 0.01,
    seed: int = 0,
) -> list[BenchItem]:
    """Seeded synthetic benchmark: scikit-image crops × deepinv motion kernels + Gaussian noise.

    Image ``i`` uses the crop ``_SOURCES[i % 24]`` and a kernel of size
    ``kernel_sizes[i % len(kernel_sizes)]`` drawn with seed ``seed + i``;
    the blurry image is the 'valid' blur of a latent larger by the kernel
    support, so blurry and sharp are aligned pixel for pixel.  No download.
    """
    from ..data import blur, motion_kernel, sharp_image

    if n < 1:
        raise InputError("synthetic set needs n >= 1")
    items = []
    for i in range(n):
        src, top, left = _SOURCES[i % len(_SOURCES)]
        ks = int(kernel_sizes[i % len(kernel_sizes)])
        k = motion_kernel(ks, seed=seed + i)
        r = (ks - 1) // 2
        big = sharp_image(src, size + ks - 1, top=top, left=left)
        y = blur(big, k, noise=noise, seed=seed + 1000 + i)
        items.append(BenchItem(f"syn{i:02d}_{src}_k{ks}", y, big[r : r + size, r : r + size].copy(), k, noise))
    return items


def write_folder(items: list[BenchItem], root: str | os.PathLike) -> Path:
    """Freeze ``items`` as a folder readable by :func:`load_folder` (16-bit PNGs)."""
    from ..io import save_image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for it in items:
        save_image(root / f"{it.name}_blurry.png", it.blurry, bits=16)
        if it.sharp is not None:
            save_image(root / f"{it.name}_sharp.png", it.sharp, bits=16)
        if it.kernel is not None:
            save_image(root / f"{it.name}_kernel.png", it.kernel / it.kernel.max(), bits=16)
    return root


def load_dataset(name: str, data: str | os.PathLike | None = None, limit: int | None = None, **synthetic_kw) -> list[BenchItem]:
    """``levin`` (``data`` or ``../shared/data/levin``), ``synthetic`` (generated) or ``folder`` (``data``)."""
    if name == "levin":
        from .levin import load_levin

        try:
            items = [BenchItem(d.name, d.blurry, d.sharp, d.kernel) for d in load_levin(data)]
        except (FileNotFoundError, ValueError) as e:
            raise InputError(f"cannot load the Levin set: {e}") from None
    elif name == "synthetic":
        items = synthetic_set(**synthetic_kw)
    elif name == "folder":
        if data is None:
            raise InputError("dataset 'folder' needs --data PATH")
        items = load_folder(data)
    elif Path(name).is_dir():
        items = load_folder(name)
    else:
        raise InputError(f"unknown dataset '{name}' (choose levin, synthetic, folder, or give a folder path)")
    return items[:limit] if limit else items
