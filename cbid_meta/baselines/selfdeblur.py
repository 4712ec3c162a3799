r"""SelfDeblur (Ren, Zhang, Wang, Hu, Zuo; CVPR 2020), written from its paper and public scripts.

The latent image is a Deep-Image-Prior "skip" network on a fixed noise input,
the kernel a fully connected network on a fixed noise vector with a softmax;
both are fitted jointly to the blurry image (``valid`` model, correlation, as
its ``selfdeblur_levin.py``):

.. math:: \min_{\theta_x, \theta_k}\; \mathcal L\big(G_x(z_x)\star G_k(z_k),\; y\big),

with :math:`\mathcal L` the mean squared error for the first 1000 of 5000
iterations and 1 − SSIM (11×11 Gaussian windows, zero-padded: the ``ssim_same``
metric) after; Adam at 1e-2 (image) and 1e-4 (kernel), both halved at 2000, 3000
and 4000; the image input perturbed by Gaussian noise of σ = 0.001 at every
iteration.  With ``steps`` other than 5000 the switch and the milestones scale
with it.  The networks are this package's: :class:`~cbid_meta.generators.NoiseUNet`
with 8 noise channels (``n_freqs = 2``), width 128, depth 5, skips 16 (the
skip network of SelfDeblur's Levin script, our U-Net's layout) and
:class:`~cbid_meta.generators.MLPKernel` (200 → 1000, ReLU6 → K², softmax; no
centring, as SelfDeblur).  The loop is the package's one loop
(:func:`cbid_meta.optim.loop.optimise`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["SelfDeblurSettings", "selfdeblur"]


@dataclass
class SelfDeblurSettings:
    """SelfDeblur's settings (its Levin script's values by default)."""

    steps: int = 5000
    switch_at: int = 1000  # iterations of MSE before 1 - SSIM (scaled with ``steps``)
    lr_image: float = 1e-2
    lr_kernel: float = 1e-4
    lr_milestones: list = field(default_factory=lambda: [2000, 3000, 4000])  # scaled with ``steps``
    lr_gamma: float = 0.5
    input_noise: float = 0.001  # σ of the per-iteration perturbation of the image network's input
    width: int = 128
    depth: int = 5
    skip: int = 16
    input_channels: int = 8
    kernel_hidden: int = 1000
    seed: int = 0


def selfdeblur(y: np.ndarray, kernel_size: int, settings: SelfDeblurSettings | None = None, device: str | torch.device = "cpu",
               callback=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Blind deblurring of the gray image ``y`` ``(H, W)`` in [0, 1]: ``(image (H, W), convolution kernel
    (K, K) summing to 1, info)``; ``callback`` sees every iteration's record."""
    from torch.func import functional_call

    from ..config import ScheduleConfig
    from ..generators import MLPKernel, NoiseUNet
    from ..losses import metric
    from ..optim.deblur import Stage
    from ..optim.loop import LoopState, optimise, sub_params
    from ..physics import corr_valid

    st = settings or SelfDeblurSettings()
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2:
        raise ValueError(f"selfdeblur takes a gray (H, W) image, got shape {y.shape}")
    device = torch.device(device)
    k = int(kernel_size)
    h, w = y.shape
    f = st.steps / 5000
    switch = min(max(round(st.switch_at * f), 0), st.steps)
    stages = [s for s in (Stage("mse", (0,), switch, False, 0.0), Stage("ssim", (0,), st.steps - switch, False, 0.0)) if s.steps > 0]
    schedule = ScheduleConfig(lr_milestones=[max(1, round(m * f)) for m in st.lr_milestones], lr_gamma=st.lr_gamma, lr_decay=1.0)

    torch.manual_seed(st.seed)
    img_gen = NoiseUNet(channels=1, width=st.width, depth=st.depth, skip=st.skip, n_freqs=st.input_channels // 4).to(device)
    torch.func.replace_all_batch_norm_modules_(img_gen)  # batch statistics only: a pure function of the parameters
    ker_gen = MLPKernel(k, hidden=st.kernel_hidden, centre=False).to(device)
    z_x = img_gen.encoding(h + k - 1, w + k - 1)
    z_k = ker_gen.coords(k)
    y_t = torch.from_numpy(y)[None, None].to(device)
    gen = torch.Generator(device=device).manual_seed(st.seed + 1)
    fits = {"mse": metric("l2"), "ssim": metric("ssim_same")}

    params = {**{f"image.{n}": p.detach().clone() for n, p in img_gen.named_parameters()},
              **{f"kernel.{n}": p.detach().clone() for n, p in ker_gen.named_parameters()}}
    group_of = {n: n.split(".", 1)[0] for n in params}

    def render(p: dict, z: torch.Tensor):
        x = functional_call(img_gen, sub_params(p, "image"), (z,))
        kk = functional_call(ker_gen, sub_params(p, "kernel"), (z_k, k))
        return x, kk

    def loss(p: dict, stage: Stage):
        z = z_x + st.input_noise * torch.randn(z_x.shape, generator=gen, device=device, dtype=z_x.dtype) if st.input_noise else z_x
        x, kk = render(p, z)
        fit = fits[stage.name](corr_valid(x, kk), y_t)
        return fit, {"fit": fit}

    t0 = time.perf_counter()
    state = optimise(loss, LoopState(params), group_of, {"image": st.lr_image, "kernel": st.lr_kernel}, stages, schedule,
                     callback=callback, record_every=1 if device.type == "cpu" else 50)
    with torch.no_grad():
        x, kk = render(state.params, z_x)
    c = (k - 1) // 2
    image = x[0, 0, c : c + h, c : c + w].float().cpu().numpy()
    kernel = kk[0, 0].flip(0, 1).double().cpu().numpy()
    info = {"steps": state.t, "switch_at": switch, "seconds": time.perf_counter() - t0, "kernel_size": k,
            "final_fit": state.history[-1]["fit"] if state.history else float("nan")}
    return image.astype(np.float64), kernel / kernel.sum(), info
