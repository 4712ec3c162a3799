"""The two generators (image Φx and kernel Φk), by name.

* ``fourier_unet`` / ``siren``: the published generators (U-Net on a Fourier
  encoding of the pixel coordinates; SIREN + softmax + centring).
* ``grid`` / ``fourier_mlp``: the multi-resolution feature-grid image INR and
  Fourier-feature MLP kernel of the fast recipe and the ``paper_grid``
  recipe, kept while measured tables use them.
"""
from .fourier_unet import FourierUNet, fourier_encoding
from .grids import Pyramid, auto_coarsest_scale, internal_kernel_size
from .image_inr import ImageINR, interp_matrix
from .kernel_inr import KernelINR
from .registry import available_generators, create_generator, generator_class, register_generator
from .siren import SirenKernel

__all__ = [
    "FourierUNet",
    "ImageINR",
    "KernelINR",
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
