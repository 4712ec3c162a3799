"""cbid_meta: cross-scale self-supervised blind deblurring with implicit neural representations.

>>> import cbid_meta
>>> callable(cbid_meta.deblur)
True

``cbid_meta.deblur(image, ...)`` (:mod:`cbid_meta.api`) is what ``cbid deblur`` runs.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("cbid_meta")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0.1.0"


from .api import deblur  # noqa: E402

__all__ = ["deblur", "__version__"]
