"""Every bad input of benchmarks/bad_inputs.py, in-process: one `error:` line, exit != 0, nothing half-written."""
import errno
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbid_meta.cli.main import main
from cbid_meta.errors import InputError

spec = importlib.util.spec_from_file_location("bad_inputs", Path(__file__).resolve().parents[1] / "benchmarks" / "bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bad_inputs)

SLOW = {"batch with one bad file", "disk full on write", "output dir is a file", "output dir not creatable"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return d, bad_inputs.make_cases(d)


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    return e.value.code, err


N_CASES = 47
BATCHES = {"batch with one bad file", "unwritable output mid-batch"}  # one line per failed input + the batch summary


@pytest.mark.parametrize("idx", range(N_CASES))
def test_bad_input_case(idx, cases, capsys, monkeypatch):
    d, all_cases = cases
    assert len(all_cases) == N_CASES
    label, argv, env, code = all_cases[idx]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if code is not None:  # disk full: every image write fails with ENOSPC
        import PIL.Image

        def full(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(PIL.Image.Image, "save", full)
    before = set(bad_inputs.files_left(d))
    rc, err = _run(argv, capsys)
    assert rc != 0, label
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    if label == "no command":  # the help, and no empty error line
        assert not any(line.strip() == "error:" for line in err.splitlines())
    else:
        assert lines, (label, err)
    if label not in BATCHES and label != "no command":
        assert len(lines) == 1, (label, lines)  # one clear line, not a cascade
    new = [f for f in bad_inputs.files_left(d) if f not in before]
    # only complete outputs of the good file in the batch cases; never a temporary/partial file
    assert all(f.startswith(("batch/good", "midbatch/good2")) for f in new), (label, new)
    assert not any(".part" in f or f.endswith(".tmp") for f in new)


# -- property-based tests of the API's input validation ---------------------------
from cbid_meta.config import load_recipe  # noqa: E402
from cbid_meta.optim import Deblurrer  # noqa: E402
from cbid_meta.optim.photo import deblur_photo  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(0, 40), w=st.integers(0, 40), k=st.integers(-3, 60))
def test_deblurrer_rejects_too_small_images_cleanly(h, w, k):
    cfg = load_recipe("fast").with_total_steps(3, 1)
    cfg.kernel_size = k
    y = np.full((h, w), 0.5, dtype=np.float32)
    small = k < 3 or min(h, w) < max(2 * (k + 1 - k % 2), 16)
    if small:
        with pytest.raises(InputError):
            Deblurrer(cfg).run(y)
    else:
        res = Deblurrer(cfg).run(y)
        assert res.image.shape == (h, w) and np.isfinite(res.image).all()


@settings(max_examples=30, deadline=None)
@given(bad=st.sampled_from([np.nan, np.inf, -np.inf]), i=st.integers(0, 31), j=st.integers(0, 31), ndim=st.sampled_from([2, 3]))
def test_nonfinite_values_are_rejected(bad, i, j, ndim):
    y = np.full((32, 32) if ndim == 2 else (32, 32, 3), 0.5)
    y[i, j] = bad
    cfg = load_recipe("fast")
    cfg.kernel_size = 9
    with pytest.raises(InputError, match="NaN or Inf"):
        Deblurrer(cfg).run(y)
    with pytest.raises(InputError, match="NaN or Inf"):
        deblur_photo(y, cfg)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=4).filter(lambda s: len(s) not in (2, 3) or 0 in s))
def test_bad_shapes_are_rejected(shape):
    cfg = load_recipe("fast")
    with pytest.raises(InputError):
        Deblurrer(cfg).run(np.zeros(shape))
