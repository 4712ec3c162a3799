r"""The blur operator :math:`A x = k \otimes x`, forward and adjoint, on two boundaries.

One operator serves every part of the package:

* ``boundary="valid"`` — the latent image is larger than the observation by
  the kernel support (``N + K - 1`` samples give ``N``), nothing wraps.  The
  INR losses (:func:`~cbid_meta.physics.conv_valid`) and the synthetic data
  (:func:`cbid_meta.data.blur`) use it.
* ``boundary="periodic"`` — image and observation share one canvas on which the
  convolution is circular; in the Fourier domain :math:`A` is the product by
  the optical transfer function :attr:`BlurOperator.otf`.  The non-blind
  solvers and L0 MAP (:mod:`cbid_meta.pipeline`) work on such a canvas
  (symmetric-padded and edge-tapered, :func:`cbid_meta.pipeline.nonblind.pad_and_taper`).

The kernel is a true convolution kernel indexed from its top-left tap; on the
periodic canvas its tap ``(⌊K_h/2⌋, ⌊K_w/2⌋)`` sits at the origin, the
convention of MATLAB's ``psf2otf``, scikit-image's ``uft.ir2tf`` and deepinv's
``filter_fft`` (:func:`psf2otf` is scikit-image's).  Both boundaries satisfy
:math:`\langle A x, y\rangle = \langle x, A^\top y\rangle` (tested).
"""
from __future__ import annotations

import numpy as np
import torch

from .blur import conv_full, conv_valid

__all__ = ["BlurOperator", "psf2otf", "gradient_otfs"]


def psf2otf(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    r"""Optical transfer function of the kernel ``k`` on a periodic ``shape`` canvas (complex, full ``shape``).

    scikit-image's ``restoration.uft.ir2tf``: ``k`` zero-padded to ``shape``
    and rolled so that tap ``(⌊K_h/2⌋, ⌊K_w/2⌋)`` is at the origin, then
    ``fft2``.  For an odd kernel, :math:`\mathcal F^{-1}(\mathrm{OTF}\cdot\mathcal F x)`
    equals ``scipy.signal.convolve2d(x, k, mode="same", boundary="wrap")``.

    >>> otf = psf2otf(np.array([[0.0, 1.0, 0.0]]), (4, 4))  # the identity
    >>> bool(np.allclose(otf, 1.0))
    True
    """
    from skimage.restoration import uft

    return uft.ir2tf(np.asarray(k, dtype=np.float64), tuple(shape), is_real=False)


def gradient_otfs(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Transfer functions of the periodic backward differences ``x[i, j] - x[i, j-1]`` and
    ``x[i, j] - x[i-1, j]`` on ``shape``.

    Both differences of a pixel meet at that pixel, which matters to the
    isotropic L0 threshold on ``(∂h x)² + (∂v x)²`` (the 3-tap filters put the
    centre tap on the ``1``).
    """
    return psf2otf(np.array([[0.0, 1.0, -1.0]]), shape), psf2otf(np.array([[0.0], [1.0], [-1.0]]), shape)


class BlurOperator:
    r"""The linear map :math:`x \mapsto k \otimes x` and its adjoint.

    Parameters
    ----------
    kernel : (K_h, K_w) array or (B or 1, 1, K_h, K_w) tensor.
    boundary : ``"valid"`` or ``"periodic"`` (module docstring).
    shape : canvas ``(H, W)``; required for ``"periodic"``.

    ``"valid"`` takes numpy arrays (float64, through the same torch code) or
    ``(B, C, H, W)`` tensors; ``"periodic"`` takes 2-D numpy arrays.

    Examples
    --------
    >>> k = np.full((3, 3), 1 / 9)
    >>> BlurOperator(k, "valid").forward(np.ones((6, 6))).shape
    (4, 4)
    >>> A = BlurOperator(k, "periodic", (8, 8))
    >>> bool(np.allclose(A.forward(np.ones((8, 8))), 1.0))
    True
    """

    def __init__(self, kernel, boundary: str = "valid", shape: tuple[int, int] | None = None):
        if boundary not in ("valid", "periodic"):
            raise ValueError(f"unknown boundary {boundary!r} (valid, periodic)")
        if boundary == "periodic" and shape is None:
            raise ValueError("a periodic blur needs the canvas shape")
        self.kernel, self.boundary, self.shape = kernel, boundary, shape
        self._otf = None

    @property
    def otf(self) -> np.ndarray:
        """Transfer function on the periodic canvas (:func:`psf2otf`)."""
        if self._otf is None:
            if self.shape is None:
                raise ValueError("a transfer function needs the canvas shape")
            self._otf = psf2otf(np.asarray(self.kernel), self.shape)
        return self._otf

    def forward(self, x):
        """:math:`A x`: ``valid`` shrinks each side by ``K - 1``; ``periodic`` keeps the canvas."""
        if self.boundary == "periodic":
            return np.real(np.fft.ifft2(self.otf * np.fft.fft2(x)))
        return self._torch(conv_valid, x)

    def adjoint(self, y):
        r""":math:`A^\top y`: the correlation with ``k`` (``valid``: grows each side by ``K - 1``)."""
        if self.boundary == "periodic":
            return np.real(np.fft.ifft2(np.conj(self.otf) * np.fft.fft2(y)))
        return self._torch(lambda t, k: conv_full(t, torch.flip(k, dims=(-2, -1))), y)

    def _torch(self, fn, x):
        k = self.kernel
        if isinstance(x, torch.Tensor):
            return fn(x, torch.as_tensor(k, dtype=x.dtype, device=x.device).reshape(-1, 1, *k.shape[-2:]))
        xt = torch.from_numpy(np.asarray(x, dtype=np.float64))[None, None]
        kt = torch.as_tensor(k, dtype=torch.float64).reshape(1, 1, *k.shape[-2:])
        return fn(xt, kt)[0, 0].numpy()
