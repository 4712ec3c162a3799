"""The two INR generators (image Φx and kernel Φk) and their shared coordinate grids."""
from .grids import Pyramid, auto_coarsest_scale, internal_kernel_size
from .image_inr import ImageINR, interp_matrix
from .kernel_inr import KernelINR

__all__ = ["ImageINR", "KernelINR", "Pyramid", "auto_coarsest_scale", "internal_kernel_size", "interp_matrix"]
