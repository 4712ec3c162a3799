"""The meta-learning task distribution: sharp images × motion kernels × noise.

Sharp images come as a Hugging Face :class:`datasets.Dataset` with an
``image`` column:

* :func:`builtin_images` — offline, no download: procedurally generated
  *dead-leaves* images (occluding disks with power-law radii, the classical
  model of natural-image statistics) plus scikit-image's bundled photographs
  that the benchmark's synthetic set does **not** use (moon, page, text,
  cell, hubble_deep_field, retina, colorwheel, …), so training and the
  held-out synthetic benchmark never share an image;
* :func:`folder_images` — any local folder through ``datasets``'
  ``imagefolder`` builder.

Splits are by *source image*: ``split="train"`` and ``split="heldout"``
take disjoint dead-leaves seeds and disjoint photographs.  No Levin file is
ever read here (the Levin folder is refused by :func:`folder_images`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["dead_leaves", "builtin_images", "folder_images", "TaskSampler", "Task", "TRAIN_PHOTOS", "HELDOUT_PHOTOS"]

#: scikit-image photographs used for meta-training / held out from it (all
#: disjoint from the benchmark's synthetic set, :mod:`cbid_meta.evaluation.datasets`).
TRAIN_PHOTOS = ("moon", "page", "text", "cell", "hubble_deep_field", "colorwheel")
HELDOUT_PHOTOS = ("retina", "shepp_logan_phantom")


def dead_leaves(size: int = 256, seed: int = 0, rmin: float = 2.0, rmax: float = 80.0, n: int = 3000) -> np.ndarray:
    """(size, size) dead-leaves image in [0, 1]: disks with density ∝ r⁻³, random gray levels,
    a mild per-disk linear shading; the first disk drawn lies on top."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), np.nan)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    # inverse-CDF sampling of p(r) ∝ r^-3 on [rmin, rmax]
    u = rng.random(n)
    r = 1.0 / np.sqrt(1.0 / rmin**2 - u * (1.0 / rmin**2 - 1.0 / rmax**2))
    cy, cx = rng.uniform(-rmax / 2, size + rmax / 2, (2, n))
    val = rng.random(n)
    grad = rng.normal(0, 0.002, (n, 2))
    for i in range(n):
        y0, y1 = int(max(cy[i] - r[i], 0)), int(min(cy[i] + r[i] + 1, size))
        x0, x1 = int(max(cx[i] - r[i], 0)), int(min(cx[i] + r[i] + 1, size))
        if y0 >= y1 or x0 >= x1:
            continue
        sub = img[y0:y1, x0:x1]
        dy, dx = yy[y0:y1, x0:x1] - cy[i], xx[y0:y1, x0:x1] - cx[i]
        m = (dy**2 + dx**2 <= r[i] ** 2) & np.isnan(sub)
        sub[m] = val[i] + grad[i, 0] * dy[m] + grad[i, 1] * dx[m]
        if not np.isnan(img).any():
            break
    img[np.isnan(img)] = rng.random()
    return np.clip(img, 0.0, 1.0)


def _photo(name: str) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray, rgba2rgb

    a = getattr(skimage.data, name)()
    if a.ndim == 3 and a.shape[-1] == 4:
        a = rgba2rgb(a)
    a = rgb2gray(a) if a.ndim == 3 else a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def builtin_images(split: str = "train", n_leaves: int = 48, size: int = 256, seed: int = 0):
    """The offline source as a ``datasets.Dataset`` (columns ``image`` (PIL), ``source``)."""
    import datasets
    from PIL import Image

    if split not in ("train", "heldout"):
        raise InputError(f"split must be 'train' or 'heldout', got '{split}'")
    photos = TRAIN_PHOTOS if split == "train" else HELDOUT_PHOTOS
    parity = 0 if split == "train" else 1
    imgs, srcs = [], []
    for i in range(n_leaves):
        s = seed * 100003 + 2 * i + parity  # train: even seeds, held-out: odd seeds
        imgs.append(Image.fromarray((dead_leaves(size, s) * 255).round().astype(np.uint8)))
        srcs.append(f"dead_leaves_{s}")
    for name in photos:
        imgs.append(Image.fromarray((_photo(name) * 255).round().astype(np.uint8)))
        srcs.append(f"skimage_{name}")
    features = datasets.Features({"image": datasets.Image(), "source": datasets.Value("string")})
    return datasets.Dataset.from_dict({"image": imgs, "source": srcs}, features=features)


def folder_images(path: str | os.PathLike):
    """A local image folder through ``datasets``' ``imagefolder`` builder (offline)."""
    import datasets

    p = Path(path)
    if not p.is_dir():
        raise InputError(f"image folder not found: {p}")
    if any(p.glob("im*_kernel*_img.png")) or p.resolve().name == "levin":
        raise InputError(f"{p} looks like the Levin benchmark; it must never be used for meta-training")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        ds = datasets.load_dataset("imagefolder", data_dir=str(p), split="train")
    except Exception as e:  # datasets raises many types for empty/invalid folders
        raise InputError(f"cannot read image folder {p}: {e}") from None
    if len(ds) == 0:
        raise InputError(f"no images in {p}")
    return ds.add_column("source", [f"folder_{i}" for i in range(len(ds))])


@dataclass
class Task:
    blurry: np.ndarray  # (n, n)
    sharp: np.ndarray  # (n, n), aligned with blurry
    kernel: np.ndarray  # (K, K)
    noise: float
    source: str


class TaskSampler:
    """Seeded tasks: a random crop of a random image, a deepinv motion kernel, Gaussian noise.

    ``sample(index)`` is a pure function of ``(seed, index)``, so a resumed or
    sharded run draws exactly the tasks an uninterrupted one would."""

    def __init__(self, dataset, crop: int = 96, kernel_range: tuple[int, int] = (9, 25), noise_range: tuple[float, float] = (0.0, 0.01), seed: int = 0):
        if kernel_range[0] < 3 or kernel_range[1] < kernel_range[0]:
            raise InputError(f"bad kernel-size range {kernel_range}")
        if crop < 2 * kernel_range[1]:
            raise InputError(f"crop {crop} is too small for kernels up to {kernel_range[1]}")
        self.crop, self.kernel_range, self.noise_range, self.seed = crop, kernel_range, noise_range, seed
        self.images = [np.asarray(im.convert("L"), dtype=np.float64) / 255.0 for im in dataset["image"]]
        self.sources = list(dataset["source"])
        if not self.images:
            raise InputError("the task dataset has no images")
        small = [s for s, im in zip(self.sources, self.images) if min(im.shape) < crop + kernel_range[1]]
        if len(small) == len(self.images):
            raise InputError(f"every image is smaller than crop + kernel ({crop + kernel_range[1]} px)")
        self.usable = [i for i, im in enumerate(self.images) if min(im.shape) >= crop + kernel_range[1]]

    def sample(self, index: int, kernel_size: int | None = None) -> Task:
        """Task ``index``; ``kernel_size`` (odd, within the range) fixes its kernel's size (a batch
        of tasks of one size), the rest of the draw is unchanged."""
        from ..data import blur, motion_kernel

        rng = np.random.default_rng([self.seed, index])
        i = self.usable[rng.integers(len(self.usable))]
        lo, hi = self.kernel_range
        ks = int(rng.integers(lo // 2, hi // 2 + 1)) * 2 + 1
        ks = min(max(ks, lo + 1 - lo % 2), hi + 1 - hi % 2)
        if kernel_size is not None:
            if kernel_size % 2 == 0 or not lo <= kernel_size <= hi + 1 - hi % 2:
                raise InputError(f"kernel size {kernel_size} is not an odd size in {lo}..{hi}")
            ks = int(kernel_size)
        k = motion_kernel(ks, seed=int(rng.integers(2**31)))
        img = self.images[i]
        big = self.crop + ks - 1
        top = int(rng.integers(img.shape[0] - big + 1))
        left = int(rng.integers(img.shape[1] - big + 1))
        latent = img[top : top + big, left : left + big]
        if rng.random() < 0.5:
            latent = latent.T.copy()
        noise = float(rng.uniform(*self.noise_range))
        y = blur(np.ascontiguousarray(latent), k, noise=noise, seed=int(rng.integers(2**31)))
        r = (ks - 1) // 2
        return Task(y, latent[r : r + self.crop, r : r + self.crop].copy(), k, noise, self.sources[i])
