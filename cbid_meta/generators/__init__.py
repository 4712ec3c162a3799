"""The two generators (image Φx and kernel Φk), by name.

* ``fourier_unet`` / ``siren``: the published generators (U-Net on a Fourier
  encoding of the pixel coordinates; SIREN + softmax + centring).
* ``grid`` / ``fourier_mlp``: the multi-resolution feature-grid image INR and
  Fourier-feature MLP kernel of the fast recipe and the ``paper_grid``
  recipe, kept while measured tables use them.
* ``mlp_kernel`` / ``noise_unet``: the generators of the paper's ablations
  (SelfDeblur's fully connected kernel network; the U-Net on a Deep-Image-Prior
  noise input), ``recipes/paper_mlp_kernel.toml`` / ``paper_cnn_image.toml``.
"""
from .fourier_unet import FourierUNet, fourier_encoding
from .grids import Pyramid, auto_coarsest_scale, internal_kernel_size
from .image_inr import ImageINR, interp_matrix
from .kernel_inr import KernelINR
from .mlp_kernel import MLPKernel
from .noise_unet import NoiseUNet
from .registry import available_generators, create_generator, generator_class, register_generator
from .siren import SirenKernel

__all__ = [
    "FourierUNet",
    "ImageINR",
    "KernelINR",
    "MLPKernel",
    "NoiseUNet",
    "Pyramid",
    "SirenKernel",
    "auto_coarsest_scale",
    "available_generators",
    "create_generator",
    "fourier_encoding",
    "generator_class",
    "internal_kernel_size",
    "interp_matrix",
    "register_generator",
]
