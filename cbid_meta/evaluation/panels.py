"""One panel renderer: images side by side, kernels stacked in a column at the right.

Used by ``cbid deblur --panels`` (input | output | estimated kernel) and by
``cbid bench`` (blurry | estimate | truth | estimated and true kernels).  The
report of ``cbid compare`` draws a matplotlib grid of many images instead.
"""
from __future__ import annotations

import numpy as np

__all__ = ["panel"]


def _rgb(im: np.ndarray) -> np.ndarray:
    im = np.clip(np.asarray(im, dtype=np.float64), 0, 1)
    if im.ndim == 2:
        im = im[:, :, None]
    return np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im[:, :, :3]


def panel(images, kernels=(), gap: int = 8, max_width: int | None = 1600) -> np.ndarray:
    """(H, W, 3) array in [0, 1]: ``images`` left to right on white, then ``kernels``
    (each scaled to its maximum, nearest-neighbour enlarged) stacked in a column of
    half the image height; shrunk to ``max_width`` pixels if wider.

    >>> panel([np.zeros((20, 30)), np.ones((20, 30, 3))], [np.eye(5)]).shape
    (20, 84, 3)
    """
    from skimage.transform import resize

    imgs = [_rgb(i) for i in images]
    h = max(i.shape[0] for i in imgs)
    row = []
    for im in imgs:
        pad = np.ones((h, im.shape[1], 3))
        pad[: im.shape[0]] = im
        row += [pad, np.ones((h, gap, 3))]
    ks = [k for k in kernels if k is not None]
    if ks:
        side = max(8, h // 2 - gap)
        col = np.ones((h, side, 3))
        y = 0
        for k in ks:
            if y + side > h:
                break
            kk = resize(np.asarray(k, dtype=np.float64) / max(float(np.max(k)), 1e-12), (side, side), order=0)
            col[y : y + side] = kk[:, :, None]
            y += side + gap
        row.append(col)
    else:
        row = row[:-1]
    p = np.concatenate(row, axis=1)
    if max_width and p.shape[1] > max_width:
        f = max_width / p.shape[1]
        p = resize(p, (max(1, round(p.shape[0] * f)), max_width), anti_aliasing=True)
    return p
