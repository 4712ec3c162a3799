"""Forward model: uniform blur, dyadic decimation and Proposition 1 (QMF identity)."""
from .blur import (
    conv_full,
    conv_valid,
    cross_scale_prediction,
    cross_scale_target,
    decimate,
    prop1_lhs,
    prop1_rhs,
    qmf_filters,
)

__all__ = [
    "conv_full",
    "conv_valid",
    "cross_scale_prediction",
    "cross_scale_target",
    "decimate",
    "prop1_lhs",
    "prop1_rhs",
    "qmf_filters",
]
