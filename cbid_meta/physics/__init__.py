"""The physics layer: the blur operator (valid and periodic, forward and adjoint),
dyadic decimation and Proposition 1, the image pyramids, kernel centring and
the gradient-sparsity measure.  Every other part of the package takes these
from here."""
from .blur import (
    conv_full,
    conv_valid,
    corr_valid,
    cross_scale_prediction,
    cross_scale_target,
    decimate,
    decimate_floor,
    prop1_lhs,
    prop1_rhs,
    qmf_filters,
)
from .gradients import forward_differences, gradient_sparsity
from .kernels import centre_kernel, centroid_shift, fit_support, roll_to_centre
from .operator import BlurOperator, gradient_otfs, psf2otf
from .pyramid import PYRAMIDS, downscale, observation_pyramid

__all__ = [
    "BlurOperator",
    "PYRAMIDS",
    "centre_kernel",
    "centroid_shift",
    "conv_full",
    "conv_valid",
    "corr_valid",
    "cross_scale_prediction",
    "cross_scale_target",
    "decimate",
    "decimate_floor",
    "downscale",
    "fit_support",
    "forward_differences",
    "gradient_otfs",
    "gradient_sparsity",
    "observation_pyramid",
    "prop1_lhs",
    "prop1_rhs",
    "psf2otf",
    "roll_to_centre",
    "qmf_filters",
]
