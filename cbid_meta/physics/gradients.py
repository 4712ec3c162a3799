r"""Image gradients and the one gradient-sparsity measure of the package.

:func:`gradient_sparsity` is Krishnan, Tay & Fergus's (CVPR 2011) normalised
sparsity :math:`\|\nabla x\|_1 / \|\nabla x\|_2` of the forward differences,
written with means so that it does not grow with the image size:

.. math:: S(x) = \frac{\operatorname{mean}|g|}{\sqrt{\operatorname{mean} g^2 + \epsilon^2}},
          \qquad g = (\partial_h x, \partial_v x)

(``∈ (0, 1]``; lower = sharper: blur and ringing both raise it).  It is the
image prior ``l1l2`` of the INR losses (differentiable, ``eps`` = 1e-3) and
the score of the kernel selector (``eps`` = 0, borders cropped).
"""
from __future__ import annotations

import math

__all__ = ["forward_differences", "gradient_sparsity"]


def forward_differences(x):
    """Horizontal and vertical forward differences of ``x`` (numpy array or tensor, last two axes)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def gradient_sparsity(x, crop: int = 0, eps: float = 0.0):
    """:math:`S(x)` of the module docstring over the last two axes of ``x``
    (numpy array → float, tensor → differentiable 0-d tensor), leaving out
    ``crop`` px of every border of the difference images.

    >>> import numpy as np
    >>> step = np.zeros((8, 8)); step[:, 4:] = 1.0
    >>> round(gradient_sparsity(step), 4)  # one edge: sparse
    0.2673
    """
    gh, gv = forward_differences(x)
    if crop > 0:
        gh, gv = gh[..., crop:-crop, crop:-crop], gv[..., crop:-crop, crop:-crop]
    n = math.prod(gh.shape) + math.prod(gv.shape)
    l1 = (abs(gh).sum() + abs(gv).sum()) / n
    l2 = ((gh**2).sum() + (gv**2).sum()) / n + eps**2
    if hasattr(l2, "requires_grad"):
        return l1 / l2**0.5
    return float(l1 / max(float(l2), 1e-60) ** 0.5)  # a flat image: 0, not 0 / 0
