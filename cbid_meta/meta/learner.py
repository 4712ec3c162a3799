r"""Meta-learners for the INR initialisation, written with :mod:`torch.func`.

(``learn2learn`` does not build on Python 3.11; ``torch.func`` gives the
same building blocks: :func:`torch.func.functional_call` evaluates a module
with an explicit parameter dict and :func:`torch.func.grad` differentiates a
function of that dict.)

What is meta-learned and what adapts
------------------------------------
* **Shared (meta-learned) θ**: the image decoder MLP of Φx, the whole kernel
  MLP of Φk and its Fourier frequency matrix (a fixed buffer, stored so the
  MLP sees the frequencies it was trained with).  These do not depend on the
  image size: kernel coordinates are in units of the support radius.
* **Per-image only**: the feature grids of Φx (their shape follows the image
  size and their content is the image itself); they start from the recipe's
  tiny random init every time.
* **Meta-SGD step sizes**: one learned Adam step size per parameter group
  (``image_grids``, ``image_mlp``, ``kernel``), stored as log step sizes.
* At test time *every* parameter adapts, with the same progressive
  L_fit + λ·L_cross loop as the from-scratch method (``Deblurrer.run(init=…)``).

Inner loop
----------
The test-time objective itself — :meth:`cbid_meta.optim.deblur.Problem.step_loss`
over the recipe's progressive schedule shortened to ``inner_steps`` — run by
the same per-image loop as ``cbid deblur`` (:func:`cbid_meta.optim.loop.optimise`:
explicit parameters through :func:`torch.func.functional_call`, the update of :class:`torch.optim.Adam`).

Outer updates
-------------
* ``reptile`` (Nichol et al., 2018): meta-gradient θ − φ_K, averaged over the meta-batch;
* ``fomaml`` (first-order MAML, Finn et al., 2017): ∇_φ L_out(φ_K), where
  L_out uses the ground truth a synthetic task has: image MSE at scale 0 plus
  ``kernel_weight`` × kernel SSD;
* Meta-SGD step sizes (Li et al., 2017), first-order: with
  φ_K = φ_0 − Σ_t α_g u_{t,g} (u: Adam directions),
  ∂L_out/∂log α_g ≈ −α_g ⟨∇_{φ_g} L_out, Σ_t u_{t,g}⟩.
Second-order MAML would back-propagate through every inner step of the
FFT convolutions of all scales; its memory grows with the inner steps
(≈ 60 here) and it is not offered.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import DeblurConfig
from ..optim.deblur import GROUPS, Deblurrer, Problem, plan_stages
from ..optim.loop import LoopState, optimise
from ..physics import fit_support

__all__ = ["SHARED_PREFIXES", "shared_state", "build_problem", "adapt", "outer_loss", "AdaptResult", "ALGORITHMS"]

ALGORITHMS = ("reptile", "fomaml")
#: parameter-name prefixes of θ (everything else is per-image)
SHARED_PREFIXES = ("image.mlp.", "kernel.mlp.")


def shared_state(prob: Problem) -> dict[str, torch.Tensor]:
    """θ as found in a freshly built problem (plus the kernel frequency buffer)."""
    out = {}
    for g in GROUPS:
        for k, v in prob.param_groups()[g].items():
            if k.startswith(SHARED_PREFIXES):
                out[k] = v.detach().clone()
    out["kernel.freqs"] = prob.ker_gen.freqs.detach().clone()
    return out


def build_problem(cfg: DeblurConfig, y: np.ndarray, device="cpu") -> Problem:
    from ..optim.deblur import _as_tensor

    deb = Deblurrer(cfg, device)
    return deb.setup(_as_tensor(y).to(deb.device))


@dataclass
class AdaptResult:
    params: dict[str, torch.Tensor]
    update_sums: dict[str, dict[str, torch.Tensor]]  # Σ_t u_t per group, per parameter
    history: list[dict] = field(default_factory=list)


def adapt(prob: Problem, theta: dict[str, torch.Tensor], lrs: dict[str, float]) -> AdaptResult:
    """Run the (shortened) test-time schedule of ``prob.cfg`` from θ with the per-image loop
    (:func:`cbid_meta.optim.loop.optimise`, the one ``cbid deblur`` runs).

    Per-image parameters (feature grids) start from the module's own init."""
    params, group_of = prob.initial_params()
    params = {k: (theta[k].detach().clone() if k in theta else v) for k, v in params.items()}
    if "kernel.freqs" in theta:  # a meta-learned buffer: passed to the generator, not trained
        params["kernel.freqs"] = theta["kernel.freqs"].detach().clone()
    state = optimise(lambda p, st: prob.step_loss(st, prob.functional_render(p)), LoopState(params), group_of, lrs,
                     plan_stages(prob.cfg, prob.s0), prob.cfg.schedule, track_updates=True)
    sums = {g: {k: state.update_sums[k] for k in group_of if group_of[k] == g} for g in GROUPS}
    return AdaptResult(state.params, sums, state.history)


def outer_loss(prob: Problem, params: dict[str, torch.Tensor], sharp: np.ndarray, kernel: np.ndarray, kernel_weight: float = 1.0):
    """Supervised loss of adapted parameters: image MSE at scale 0 + w · kernel SSD (centred)."""
    x0, k0 = prob.functional_render(params)(0)
    h, w = sharp.shape
    c0 = prob.pyr.half(0)
    x = x0[0, 0, c0 : c0 + h, c0 : c0 + w]
    xs = torch.as_tensor(sharp, dtype=x.dtype, device=x.device)
    r = (prob.kernel_size - 1) // 2
    k = k0[0, 0, c0 - r : c0 + r + 1, c0 - r : c0 + r + 1]
    k = k / k.sum()
    kt = fit_support(torch.as_tensor(kernel, dtype=k.dtype, device=k.device), (prob.kernel_size, prob.kernel_size))
    mse = torch.mean((x - xs) ** 2)
    return mse + kernel_weight * torch.sum((k - kt) ** 2), mse
