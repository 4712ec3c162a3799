"""CLI: outputs, and one clear error line (no traceback, no partial output) for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbid_meta.data import demo_pair

CBID = [sys.executable, "-m", "cbid_meta.cli.main"]


def run(*args, cwd=None):
    return subprocess.run([*CBID, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def blurry_png(tmp_path_factory):
    y, _, _ = demo_pair(size=48, kernel_size=7)
    p = tmp_path_factory.mktemp("in") / "small.png"
    Image.fromarray((y * 255).astype(np.uint8)).save(p)
    return p


def _one_error_line(proc):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert any(ln.startswith("error:") for ln in lines), proc.stderr
    return proc.stderr


def test_deblur_writes_outputs(blurry_png, tmp_path):
    out = tmp_path / "out"
    proc = run("deblur", blurry_png, "-o", out, "--kernel-size", "7", "--steps", "20")
    assert proc.returncode == 0, proc.stderr
    assert (out / "small_deblurred.png").is_file() and (out / "small_kernel.png").is_file()
    rec = json.loads((out / "small.json").read_text())
    assert abs(rec["info"]["steps"] - 20) <= 3
    assert {"fit", "cross"} <= set(rec["final_losses"]) and rec["seconds"] > 0


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda d: d / "missing.png", "not found"),
        (lambda d: (d / "text.png").write_text("hello") and d / "text.png", "not an image"),
        (lambda d: d, "directory"),
    ],
)
def test_bad_files(tmp_path, make, expect):
    path = make(tmp_path)
    out = tmp_path / "out"
    err = _one_error_line(run("deblur", path, "-o", out, "--steps", "5"))
    assert expect in err
    assert not out.exists() or not any(out.iterdir())


def test_truncated_and_tiny_images(tmp_path, blurry_png):
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(blurry_png.read_bytes()[:200])
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tiny)
    err = _one_error_line(run("deblur", trunc, tiny, "-o", tmp_path / "o", "--steps", "5"))
    assert "trunc.png" in err and "tiny.png" in err


def test_kernel_larger_than_image(blurry_png, tmp_path):
    err = _one_error_line(run("deblur", blurry_png, "-o", tmp_path / "o", "--kernel-size", "41"))
    assert "too small" in err


@pytest.mark.parametrize(
    "args,expect",
    [
        (["deblur", "x.png", "--device", "tpu"], "tpu"),
        (["deblur", "x.png", "--bogus"], "bogus"),
        (["deblur", "x.png", "--recipe", "nope"], "unknown recipe"),
        (["deblur", "x.png", "--steps", "0"], "--steps"),
    ],
)
def test_wrong_options(args, expect, tmp_path):
    err = _one_error_line(run(*args, cwd=tmp_path))
    assert expect in err


def test_batch_continues_past_bad_file(blurry_png, tmp_path):
    out = tmp_path / "out"
    proc = run("deblur", tmp_path / "missing.png", blurry_png, "-o", out, "--kernel-size", "7", "--steps", "10")
    assert proc.returncode != 0
    assert (out / "small_deblurred.png").is_file()
    assert "1 of 2" in proc.stderr
