"""Baselines the INR method is compared with: a classical blind estimator (L0-gradient alternating MAP)."""
from .l0_map import L0Config, l0_deblur, l0_kernel

__all__ = ["L0Config", "l0_deblur", "l0_kernel"]
