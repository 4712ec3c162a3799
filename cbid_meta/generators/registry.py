"""One registry of generators, one factory (timm's ``create_model`` pattern).

Recipes name their generators (``[image] name = "fourier_unet"``,
``[kernel] name = "siren"``); the optimiser builds them with
:func:`create_generator` instead of an if/else ladder.

>>> from cbid_meta.generators import available_generators
>>> sorted(available_generators())
['fourier_mlp', 'fourier_unet', 'grid', 'mlp_kernel', 'noise_unet', 'siren']
"""
from __future__ import annotations

from typing import Callable

__all__ = ["register_generator", "create_generator", "generator_class", "available_generators"]

_REGISTRY: dict[str, Callable] = {}


def register_generator(name: str):
    """Class decorator: make ``cls`` (with a ``from_config`` classmethod) buildable as ``create_generator(name, ...)``."""

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"generator '{name}' registered twice")
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return deco


def generator_class(name: str):
    """The class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown generator '{name}' (choose from {', '.join(sorted(_REGISTRY))})") from None


def create_generator(name: str, config, **context):
    """Build the generator registered as ``name`` from its config section
    (``ImageGeneratorConfig`` / ``KernelGeneratorConfig``) and the run's context
    (channels, extent, radius, seed: whatever that class's ``from_config`` takes)."""
    return generator_class(name).from_config(config, **context)


def available_generators() -> list[str]:
    return list(_REGISTRY)
