r"""Losses of the method: L_fit, L_cross (Proposition 1) and optional image priors.

.. math::
   L_{fit}^{(s)} = \mathcal M_f\big(k^{(s)}\otimes x^{(s)},\, y^{(s)}\big)

   L_{cross}^{(s)} = \mathcal M_c\Big(4\,x^{(s+1)}\otimes \tilde k^{(s+1)},\;
       (x^{(s)}\otimes k^{(s)})\downarrow_2 + \textstyle\sum_{d}(x^{(s)}\otimes g^{(s)}_d)\downarrow_2\Big)

The paper's ``k^{(s+1)} = k^{(s)}↓2`` carries a quarter of the mass of
``k^{(s)}`` (for a kernel spread over several taps), hence its factor 4.  Our
kernel generator outputs a kernel that sums to 1 at *every* scale (it must:
``y^{(s)}`` is a block mean of ``y`` and keeps its brightness), i.e.
``k^{(s+1)} = 4\tilde k^{(s+1)}`` and the left side is simply
``x^{(s+1)} ⊗ k^{(s+1)}``.  The right side is evaluated, averaged over the
four decimation phases, by :func:`cbid_meta.physics.cross_scale_target`.
A delta kernel keeps all its mass under decimation, so the right side is
then 4× too bright: L_cross penalises the trivial no-blur solution.
"""
from __future__ import annotations

import torch

from ..physics import conv_valid, cross_scale_target, gradient_sparsity
from .structural import dft_l1, ssim, ssim_loss, ssim_same_loss

__all__ = ["dft_l1", "ssim", "ssim_loss", "METRICS", "PRIORS", "metric", "fit_loss", "cross_scale_loss", "total_variation", "normalized_sparsity", "prior"]


def _l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mean((a - b) ** 2)


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(a - b))


def _charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.mean(torch.sqrt((a - b) ** 2 + eps**2) - eps)


def _grad_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L2 distance between finite-difference gradients (edges weigh more than flat areas)."""
    d = a - b
    return torch.mean((d[..., 1:, :] - d[..., :-1, :]) ** 2) + torch.mean((d[..., :, 1:] - d[..., :, :-1]) ** 2)


METRICS = {"l2": _l2, "l1": _l1, "charbonnier": _charbonnier, "grad_l2": _grad_l2, "ssim": ssim_loss, "ssim_same": ssim_same_loss, "dft_l1": dft_l1}


def metric(name: str):
    """The distance ``M(a, b)`` called ``name`` (``l2``, ``l1``, ``charbonnier``, ``grad_l2``, ``ssim`` = 1 − SSIM over valid windows, ``ssim_same`` = 1 − SSIM with zero-padded windows, ``dft_l1``)."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric '{name}' (choose from {', '.join(METRICS)})") from None


def fit_loss(x: torch.Tensor, k: torch.Tensor, y: torch.Tensor, m=_l2) -> torch.Tensor:
    """L_fit: ``M_f(valid(x ⊗ k), y)`` with x (B,C,H+K-1,W+K-1), k (1,1,K,K), y (B,C,H,W)."""
    return m(conv_valid(x, k), y)


def cross_scale_loss(
    x_fine: torch.Tensor, k_fine: torch.Tensor, x_coarse: torch.Tensor, k_coarse: torch.Tensor, m=_l2
) -> torch.Tensor:
    """L_cross^(s) between scale s (fine) and s+1 (coarse); kernels sum to 1 at both scales."""
    target = cross_scale_target(x_fine, k_fine)
    pred = conv_valid(x_coarse, k_coarse)
    assert pred.shape == target.shape, f"cross-scale grids misaligned: {pred.shape} vs {target.shape}"
    return m(pred, target)


def total_variation(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    r"""Isotropic, smoothed TV: mean of :math:`\sqrt{|\partial_h x|^2 + |\partial_w x|^2 + \epsilon^2}`."""
    dh = x[..., 1:, :-1] - x[..., :-1, :-1]
    dw = x[..., :-1, 1:] - x[..., :-1, :-1]
    return torch.mean(torch.sqrt(dh**2 + dw**2 + eps**2))


def normalized_sparsity(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    r"""Normalised sparsity of the gradients, :math:`\|\nabla x\|_1 / \|\nabla x\|_2`
    (Krishnan, Tay, Fergus, CVPR 2011): :func:`cbid_meta.physics.gradient_sparsity`.
    Unlike TV it is scale-invariant and *lower* for a sharp image than for its
    blurred version, so it pushes away from the trivial no-blur solution."""
    return gradient_sparsity(x, eps=eps)


PRIORS = {"tv": total_variation, "l1l2": normalized_sparsity}


def prior(name: str):
    """The image prior called ``name`` (``tv`` or ``l1l2``)."""
    try:
        return PRIORS[name]
    except KeyError:
        raise ValueError(f"unknown prior '{name}' (choose from {', '.join(PRIORS)})") from None
