"""Built-in data that needs no download: the demo image and synthetic blur pairs.

Sharp images come from scikit-image's bundled photographs; motion-blur
kernels from deepinv's :class:`~deepinv.physics.generator.MotionBlurGenerator`
(random camera-shake trajectories), drawn with an explicit seed.
"""
from __future__ import annotations

import numpy as np
import torch

from ..physics import BlurOperator

__all__ = ["motion_kernel", "sharp_image", "blur", "demo_pair"]


def motion_kernel(size: int, seed: int = 0, length: float = 0.3, sigma: float = 0.25) -> np.ndarray:
    """(size, size) motion-blur kernel (sum 1) from deepinv's MotionBlurGenerator."""
    from deepinv.physics.generator import MotionBlurGenerator  # heavy import: only when needed

    gen = MotionBlurGenerator((size, size), rng=torch.Generator().manual_seed(seed), l=length, sigma=sigma)
    k = gen.step(batch_size=1, seed=seed)["filter"][0, 0].double().numpy()
    return k / k.sum()


def sharp_image(name: str = "camera", size: int = 128, top: int = 60, left: int = 150) -> np.ndarray:
    """A gray crop of one of scikit-image's bundled images, float64 in [0, 1]."""
    import skimage.data
    from skimage.color import rgb2gray

    img = getattr(skimage.data, name)()
    img = rgb2gray(img) if img.ndim == 3 else img.astype(np.float64) / 255.0
    h, w = img.shape
    top, left = min(top, h - size), min(left, w - size)
    if top < 0 or left < 0:
        raise ValueError(f"{name} is smaller than {size}px")
    return np.ascontiguousarray(img[top : top + size, left : left + size])


def blur(x: np.ndarray, k: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """'Valid' blur of a latent ``x`` (N+K-1) by ``k`` (K) plus Gaussian noise σ=``noise``."""
    y = BlurOperator(k, "valid").forward(x)
    if noise > 0:
        y = y + np.random.default_rng(seed).normal(0.0, noise, y.shape)
    return np.clip(y, 0.0, 1.0)


def demo_pair(size: int = 128, kernel_size: int = 15, noise: float = 0.0, seed: int = 0):
    """The embedded demo: (blurry y, sharp x, kernel k), all float64.

    ``x`` is a ``size``×``size`` crop of scikit-image's *camera*; ``y`` is
    its 'valid' blur by a seeded motion kernel, so ``y`` and ``x`` are aligned.
    """
    k = motion_kernel(kernel_size, seed=seed)
    r = (kernel_size - 1) // 2
    big = sharp_image("camera", size + kernel_size - 1, top=60 - r, left=150 - r)
    y = blur(big, k, noise, seed)
    x = big[r : r + size, r : r + size]
    return y, x, k
