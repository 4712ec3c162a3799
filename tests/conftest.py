"""Shared fixtures of the test suite."""
from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: the cores are shared, not oversubscribed
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = str(_threads)  # for the subprocesses the tests start
    import torch

    torch.set_num_threads(_threads)

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.signal import convolve2d


@pytest.fixture
def fake_levin(tmp_path) -> Path:
    """A Levin-layout folder with one 72 x 72 image and a 5 x 5 kernel (im1_kernel4: kernel 4 is not rotated)."""
    root = tmp_path / "levin"
    (root / "gt").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sharp = ndimage.gaussian_filter(rng.random((72, 72)), 1.5)
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    k = np.zeros((5, 5))
    k[2, :] = 1.0
    k[1, 3] = 0.5
    k /= k.sum()
    blurry = convolve2d(sharp, k, mode="same", boundary="symm")
    Image.fromarray(np.round(sharp * 255).astype(np.uint8)).save(root / "gt" / "im1.png")
    Image.fromarray(np.round(k / k.max() * 255).astype(np.uint8)).save(root / "gt" / "kernel4.png")
    Image.fromarray(np.round(blurry * 255).astype(np.uint8)).save(root / "im1_kernel4_img.png")
    return root
