"""Evaluation: Levin-protocol metrics, non-blind deconvolution, dataset loader."""
from .levin import LEVIN_ROTATED_KERNELS, LevinImage, default_levin_root, load_levin
from .metrics import MAXSHIFT, MAXSHIFT_LEVIN, align_upto_shift, error_ratio, kernel_similarity, levin_row_scores, levin_scores, psnr, ssim
from ..physics import psf2otf
from ..pipeline.nonblind import deconvolve, pad_and_taper, simple_wiener

__all__ = [
    "LEVIN_ROTATED_KERNELS",
    "LevinImage",
    "default_levin_root",
    "load_levin",
    "align_upto_shift",
    "error_ratio",
    "kernel_similarity",
    "levin_scores",
    "levin_row_scores",
    "MAXSHIFT",
    "MAXSHIFT_LEVIN",
    "psnr",
    "ssim",
    "deconvolve",
    "pad_and_taper",
    "psf2otf",
    "simple_wiener",
]
