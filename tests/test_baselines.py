"""The SelfDeblur peer (cbid_meta/baselines/selfdeblur.py) and its `cbid bench` method."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from cbid_meta.baselines import SelfDeblurSettings, selfdeblur
from cbid_meta.evaluation.bench import DEFAULT_METHODS, METHODS, BenchSettings, run_bench
from cbid_meta.evaluation.datasets import BenchItem
from cbid_meta.evaluation.metrics import levin_row_scores
from cbid_meta.physics import conv_valid


def _cartoon(n: int = 48, ksize: int = 9, seed: int = 0):
    """Piecewise-constant rectangles blurred ('valid') by a bent motion kernel: (blurry, sharp, kernel)."""
    rng = np.random.default_rng(seed)
    size = n + ksize - 1
    x = np.full((size, size), 0.2)
    for _ in range(6):
        r0, c0 = rng.integers(0, size - 12, 2)
        hh, ww = rng.integers(8, 24, 2)
        x[r0 : r0 + hh, c0 : c0 + ww] = rng.uniform(0.1, 0.9)
    x = gaussian_filter(x, 0.7)
    k = np.zeros((ksize, ksize))
    k[ksize // 2, :] = 1
    k[ksize // 2 - 1, -3:] = 1
    k = gaussian_filter(k, 0.5)
    k /= k.sum()
    y = conv_valid(torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None])[0, 0].numpy()
    c = (ksize - 1) // 2
    return y, x[c : c + n, c : c + n], k


def test_selfdeblur_improves_on_the_blurry_input():
    y, sharp, _ = _cartoon()
    st = SelfDeblurSettings(steps=600, width=16, depth=3)  # a short budget: MSE for 120 iterations, then 1 - SSIM
    est, k, info = selfdeblur(y, 9, st)
    assert info["steps"] == 600 and info["switch_at"] == 120
    assert est.shape == y.shape and k.shape == (9, 9) and abs(k.sum() - 1) < 1e-9 and k.min() >= 0
    gain = levin_row_scores(est, sharp, None)["psnr"] - levin_row_scores(y.astype(np.float64), sharp, None)["psnr"]
    assert gain > 3.0, gain


def test_selfdeblur_settings_follow_the_paper():
    st = SelfDeblurSettings()
    assert (st.steps, st.switch_at, st.lr_image, st.lr_kernel, st.lr_milestones) == (5000, 1000, 1e-2, 1e-4, [2000, 3000, 4000])
    with pytest.raises(ValueError, match="gray"):
        selfdeblur(np.zeros((40, 40, 3)), 9, SelfDeblurSettings(steps=1, width=8, depth=3))


def test_selfdeblur_is_a_bench_method_outside_the_default_suite(tmp_path):
    y, sharp, k = _cartoon(n=40, ksize=7)
    items = [BenchItem("cartoon", y.astype(np.float64), sharp, k)]
    df = run_bench(items, ("selfdeblur", "blurry"), tmp_path / "b", BenchSettings(steps=3, kernel_margin=2), panels=False)
    row = df[df.method == "selfdeblur"].iloc[0]
    assert row["steps"] == 3 and row["kernel_size"] == 9 and np.isfinite(row["psnr"])
    assert "selfdeblur" in METHODS and "selfdeblur" not in DEFAULT_METHODS
