r"""Loader for the Levin et al. (CVPR 2009) blind-deconvolution benchmark.

Expected layout (the PNG export distributed with SelfDeblur)::

    <root>/im{i}_kernel{j}_img.png     blurry, 255 x 255, i = 1..4, j = 1..8
    <root>/gt/im{i}.png                sharp, 255 x 255
    <root>/gt/kernel{j}.png            kernel, sizes 13..27, max scaled to 255

Kernel orientation and alignment (measured on this data)
--------------------------------------------------------
Levin's blurry images are *real captures* (a camera shaken in front of a
printed image, kernels recorded from point lights), so no kernel orientation
reproduces them exactly and each image also carries its own small
translation with respect to the sharp capture.  We estimated, per image, the
kernel that best maps ``sharp`` to ``blurry`` by regularised Fourier
division, and compared it (max normalised cross-correlation over shifts)
with the stored PNG and with its 180° rotation; we also checked
``convolve2d(sharp, k, "same")`` against ``blurry`` under all 8 flips /
rotations of ``k`` with an integer-shift search of +-8 px.  The kernel
estimates of all four images agree for every kernel (the convolution check
agrees too, except near-ties of kernels 1 and 3 on one image each):

* kernels 1, 2, 3, 5, 6, 7 are stored **rotated by 180°** (the PNG is the
  correlation kernel): the convolution kernel is ``png[::-1, ::-1]``
  (NCC to the estimated kernel 0.72-0.97 rotated vs 0.53-0.78 as stored);
* kernels 4 and 8 are stored **as convolution kernels**
  (NCC 0.71-0.94 as stored vs 0.44-0.56 rotated).

Non-blind deconvolution with the true kernel confirms it: with the other
orientation the results of kernels 2, 4, 6, 8 lose 7-14 dB (Levin protocol,
8 px search, measured with an earlier parameter setting of ``deconvolve``).

With these orientations ``convolve2d(sharp, kernel, "same")`` matches
``blurry`` at 35-48 dB PSNR on the interior *after* a translation of up to
~5 px (kernel off-centring plus the per-image misregistration; e.g. kernel
6 needs 2-5 px along each axis); without the translation the 'same' and 'valid'
alignments are equally poor, so neither is "the" alignment: compare with
:func:`cbid_meta.evaluation.metrics.align_upto_shift`.  The kernels are
returned uncentred, exactly as stored (up to the rotation), so that results
stay comparable with published numbers.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["LevinImage", "load_levin", "default_levin_root", "LEVIN_ROTATED_KERNELS"]

#: Kernel indices whose PNG must be rotated by 180° to act as a convolution kernel.
LEVIN_ROTATED_KERNELS: frozenset[int] = frozenset({1, 2, 3, 5, 6, 7})

_BLURRY_RE = re.compile(r"^im(\d+)_kernel(\d+)_img\.png$")


@dataclass
class LevinImage:
    """One Levin test case.

    Attributes
    ----------
    name : str
        ``"im{i}_kernel{j}"``.
    blurry, sharp : (H, W) float64 arrays in ``[0, 1]``.
    kernel : (K, K) float64 array summing to 1, oriented so that
        ``blurry ≈ scipy.signal.convolve2d(sharp, kernel, "same")`` up to a
        small translation (see the module docstring).
    image_index, kernel_index : int
        ``i`` and ``j``.
    """

    name: str
    blurry: np.ndarray
    sharp: np.ndarray
    kernel: np.ndarray
    image_index: int
    kernel_index: int


def default_levin_root() -> Path | None:
    """Default data folder: ``$CBID_LEVIN_DIR``, else ``../shared/data/levin``
    relative to the working directory, else ``/work/shared/data/levin``;
    ``None`` if none of these exists (the environment variable, when set,
    is returned even if missing, so that the error names it)."""
    env = os.environ.get("CBID_LEVIN_DIR")
    if env:
        return Path(env)
    for cand in (Path.cwd().parent / "shared" / "data" / "levin", Path("/work/shared/data/levin")):
        if cand.is_dir():
            return cand
    return None


def _read_gray(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode != "L":
            im = im.convert("L")
        return np.asarray(im, dtype=np.float64) / 255.0


def load_levin(root: str | os.PathLike | None = None) -> list[LevinImage]:
    """Load the 32 Levin images, sorted ``im1_kernel1 .. im4_kernel8``.

    Parameters
    ----------
    root : path or None
        Data folder (layout in the module docstring); default
        :func:`default_levin_root`.

    Raises
    ------
    FileNotFoundError
        If the folder or a needed file is missing.
    """
    base = Path(root) if root is not None else default_levin_root()
    if base is None or not base.is_dir():
        raise FileNotFoundError(
            f"Levin data not found at {base or '$CBID_LEVIN_DIR, ../shared/data/levin or /work/shared/data/levin'}"
            " (set CBID_LEVIN_DIR to the folder holding im*_kernel*_img.png and gt/)"
        )
    cases = []
    for p in base.iterdir():
        m = _BLURRY_RE.match(p.name)
        if m:
            cases.append((int(m.group(1)), int(m.group(2)), p))
    if not cases:
        raise FileNotFoundError(f"no im*_kernel*_img.png files in {base}")
    cases.sort()
    sharp_cache: dict[int, np.ndarray] = {}
    kernel_cache: dict[int, np.ndarray] = {}
    out = []
    for i, j, p in cases:
        if i not in sharp_cache:
            sp = base / "gt" / f"im{i}.png"
            if not sp.is_file():
                raise FileNotFoundError(f"missing sharp image {sp}")
            sharp_cache[i] = _read_gray(sp)
        if j not in kernel_cache:
            kp = base / "gt" / f"kernel{j}.png"
            if not kp.is_file():
                raise FileNotFoundError(f"missing kernel {kp}")
            k = _read_gray(kp)
            if j in LEVIN_ROTATED_KERNELS:
                k = k[::-1, ::-1]
            kernel_cache[j] = np.ascontiguousarray(k / k.sum())
        out.append(
            LevinImage(
                name=f"im{i}_kernel{j}",
                blurry=_read_gray(p),
                sharp=sharp_cache[i].copy(),
                kernel=kernel_cache[j].copy(),
                image_index=i,
                kernel_index=j,
            )
        )
    return out
