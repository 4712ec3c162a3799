"""``--kernel-size auto`` on synthetic images whose kernels are known (13, 25 and 41 px)."""
import sys
from pathlib import Path

import numpy as np
import pytest

from cbid_meta.errors import InputError
from cbid_meta.evaluation.datasets import synthetic_set
from cbid_meta.optim.photo import KERNEL_SIZE_METHODS, auto_kernel_size

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from kernel_size_auto import kernel_extent  # noqa: E402

ITEMS = synthetic_set(n=8, size=255, kernel_sizes=(13, 17, 21, 25, 29, 33, 37, 41), noise=0.01)


@pytest.mark.parametrize("i", [0, 3, 7])  # kernels of 13, 25 and 41 px
def test_auto_size_covers_the_kernel_without_a_gross_over_estimate(i):
    item = ITEMS[i]
    ext = kernel_extent(item.kernel)  # what a centroid-centred estimate needs (deepinv kernels fill part of their array)
    size = auto_kernel_size(item.blurry)
    assert size % 2 == 1 and 11 <= size <= 61
    assert ext <= size <= 2 * ext + 4, (item.name, ext, size)


def test_kernel_extent_of_a_centred_and_an_off_centre_line():
    k = np.zeros((15, 15))
    k[7, 3:12] = 1  # a 9-tap line through the centre
    assert kernel_extent(k) == 9
    k = np.zeros((15, 15))
    k[2, 0:5] = 1  # a 5-tap line in a corner: its centred extent ignores the empty array
    assert kernel_extent(k) == 5


def test_every_method_runs_and_an_unknown_one_is_refused():
    y = ITEMS[0].blurry
    for m in KERNEL_SIZE_METHODS:
        assert auto_kernel_size(y, method=m) % 2 == 1
    with pytest.raises(InputError, match="unknown kernel-size method"):
        auto_kernel_size(y, method="nope")


def test_benchmark_lists_real_photos_by_chosen_size_only(tmp_path, monkeypatch):
    """``benchmarks/kernel_size_auto.py --sets real``: photos with no known kernel get the chosen size, no ratio,
    and stay out of the summary over known kernels."""
    import pandas as pd
    from PIL import Image

    import kernel_size_auto as ksa

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((96, 112, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{name}.jpg")
    monkeypatch.setenv("CBID_REAL_DIR", str(tmp_path))
    assert ksa.main(["--sets", "real", "--methods", "acorr", "--out", str(tmp_path / "ks")]) == 0
    df = pd.read_csv(tmp_path / "ks.csv", comment="#")
    assert df.image.tolist() == ["a", "b"] and (df.chosen % 2 == 1).all() and "ratio" not in df
    md = (tmp_path / "ks.md").read_text()
    assert "## Real photos (no known kernel)" in md and ksa.summarise(df).empty


def test_a_kernel_reaching_the_edge_of_its_support_gets_a_note():
    from cbid_meta.optim.photo import EDGE_MASS_WARN, edge_note, kernel_edge_mass

    compact = np.zeros((31, 31))
    compact[15, 8:23] = 1.0  # a 15-px line in the middle of a 31-px support
    assert kernel_edge_mass(compact) == 0.0 and edge_note(compact) is None
    wide = compact.copy()
    wide[15, 0:8] = 1.0  # its tail runs into the edge
    share = kernel_edge_mass(wide)
    assert share > EDGE_MASS_WARN
    assert edge_note(wide) == (f"the kernel has {share:.0%} of its mass within 2 px of the edge of its 31-px support: "
                               "the blur may be wider; try --kernel-size 41")


def test_the_cli_prints_and_records_the_edge_note(tmp_path, monkeypatch, capsys):
    import json

    from cbid_meta.cli.main import main
    from cbid_meta.io import save_image
    from cbid_meta.optim import photo

    monkeypatch.setattr(photo, "EDGE_MASS_WARN", -1.0)  # every kernel "reaches the edge"
    save_image(tmp_path / "y.png", ITEMS[0].blurry[:96, :96])
    main(["deblur", str(tmp_path / "y.png"), "-o", str(tmp_path / "o"), "-r", "fast", "-k", "9", "--steps", "6"])
    err = capsys.readouterr().err
    rec = json.loads((tmp_path / "o" / "y.json").read_text())
    assert any(n.startswith("the kernel has") and "try --kernel-size 19" in n for n in rec["notes"])
    assert "note: y.png: the kernel has" in err and rec["photo"]["kernel_edge_mass"] >= 0


def test_the_lag2_autocorrelation_reading_does_not_shrink_with_noise():
    """White noise adds to the gradients' autocorrelation at lags 0 and 1 only: measured against the zero-lag peak
    (``mass_acorr``'s reading) a noisy image reads a smaller blur, measured against ring 2 (``mass_acorr2``) it does not."""
    from scipy.signal import fftconvolve
    from skimage import data

    from cbid_meta.optim.photo import acorr_kernel_size

    x = data.camera()[::2, ::2].astype(float) / 255
    k = np.zeros((21, 21))
    k[10, :] = 1 / 21  # a 21-px horizontal line
    y = fftconvolve(x, k, mode="valid")
    noisy = y + 0.04 * np.random.default_rng(0).standard_normal(y.shape)
    clean2, noisy2 = acorr_kernel_size(y, rel=0.2, lag=2), acorr_kernel_size(noisy, rel=0.2, lag=2)
    assert noisy2 >= 21 and abs(noisy2 - clean2) <= 2, (clean2, noisy2)
    assert acorr_kernel_size(noisy) < 21 <= acorr_kernel_size(y)  # the zero-lag reading falls below the kernel
