"""CLI: outputs, and one clear error line (no traceback, no partial output) for bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cbid_meta.data import demo_pair
from cbid_meta.cli.main import main

CBID = [sys.executable, "-m", "cbid_meta.cli.main"]


def run(*args, cwd=None):
    """``cbid`` in a process of its own (exit status and stderr as a user's shell sees them)."""
    return subprocess.run([*CBID, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def run_here(capsys, monkeypatch):
    """``cbid`` in this process (no interpreter start-up), returning what :func:`run` returns."""

    def call(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return call


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
    proc = run("deblur", blurry_png, "-o", out, "--kernel-size", "7", "--steps", "20", "--recipe", "fast")  # 48 px: below the default's minimum
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
def test_bad_files(tmp_path, make, expect, run_here):
    path = make(tmp_path)
    out = tmp_path / "out"
    err = _one_error_line((run if expect == "not found" else run_here)("deblur", path, "-o", out, "--steps", "5"))
    assert expect in err
    assert not out.exists() or not any(out.iterdir())


def test_truncated_and_tiny_images(tmp_path, blurry_png, run_here):
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(blurry_png.read_bytes()[:200])
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tiny)
    err = _one_error_line(run_here("deblur", trunc, tiny, "-o", tmp_path / "o", "--steps", "5"))
    assert "trunc.png" in err and "tiny.png" in err


def test_kernel_larger_than_image(blurry_png, tmp_path, run_here):
    err = _one_error_line(run_here("deblur", blurry_png, "-o", tmp_path / "o", "--kernel-size", "41"))
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
def test_wrong_options(args, expect, tmp_path, run_here):
    err = _one_error_line((run if expect == "bogus" else run_here)(*args, cwd=tmp_path))
    assert expect in err


def test_batch_continues_past_bad_file(blurry_png, tmp_path, run_here):
    out = tmp_path / "out"
    proc = run_here("deblur", tmp_path / "missing.png", blurry_png, "-o", out, "--kernel-size", "7", "--steps", "10", "--recipe", "fast")
    assert proc.returncode != 0
    assert (out / "small_deblurred.png").is_file()
    assert "1 of 2" in proc.stderr


def test_demo_runs_and_reports(tmp_path):
    from cbid_meta.config import DEFAULT_RECIPE
    from cbid_meta.meta import default_init_path

    main(["demo", "-o", str(tmp_path / "d0"), "--steps", "9", "--mode", "scratch"])
    assert json.loads((tmp_path / "d0" / "demo.json").read_text())["mode"] == "scratch"
    out = tmp_path / "demo"
    main(["demo", "-o", str(out), "--steps", "9"])
    rec = json.loads((out / "demo.json").read_text())
    # the default recipe starts from its packaged initialiser when one is packaged
    assert rec["mode"] == ("meta" if default_init_path(DEFAULT_RECIPE).is_file() else "scratch") and rec["info"]["steps"] >= 6
    for f in ("demo_blurry.png", "demo_sharp.png", "demo_deblurred.png", "demo_kernel.png", "demo_true_kernel.png"):
        assert (out / f).is_file()


def test_colour_16bit_input_keeps_depth_and_writes_panel(tmp_path):
    import tifffile

    y, _, _ = demo_pair(size=64, kernel_size=7)
    rgb = np.stack([y, 0.8 * y, 0.6 * y], -1)
    tifffile.imwrite(tmp_path / "c.tif", (rgb * 65535).astype(np.uint16))
    main(["deblur", str(tmp_path / "c.tif"), "-o", str(tmp_path / "o"), "-k", "9", "--steps", "6", "--mode", "scratch", "--panels"])
    rec = json.loads((tmp_path / "o" / "c.json").read_text())
    assert rec["output_bits"] == 16 and rec["input_format"]["channels"] == 3
    assert (tmp_path / "o" / "c_panel.png").is_file()
    from cbid_meta.io import image_info, load_image

    assert image_info(tmp_path / "o" / "c_deblurred.png")["bits"] == 16
    out = load_image(tmp_path / "o" / "c_deblurred.png", gray=False)
    # colour balance kept: channel means in the input's ratios
    m = out.reshape(-1, 3).mean(0)
    assert abs(m[1] / m[0] - 0.8) < 0.05 and abs(m[2] / m[0] - 0.6) < 0.05


def test_packaged_initialiser_follows_the_recipe():
    from cbid_meta.meta import default_init_path

    assert default_init_path().name == "default_init.safetensors"
    assert default_init_path("fast") == default_init_path()
    assert default_init_path("paper_grid").name == "paper_grid_init.safetensors"
    assert default_init_path("recipes/my.toml") == default_init_path()  # a TOML recipe gets the fast one
    from cbid_meta.meta import load_default_init

    assert load_default_init("paper") is None  # none is packaged for the published generators: scratch mode


def test_default_mode_is_meta_only_where_the_packaged_start_is_the_better_one(tmp_path):
    """The measured choice (benchmarks/results/default_choice.md): the fast recipe runs from scratch unless asked,
    the published generators' recipes from their initialiser; a recipe file runs from scratch; --init implies meta."""
    from cbid_meta.api import resolve_init
    from cbid_meta.meta import default_mode

    grid, published = tmp_path / "grid.toml", tmp_path / "published.toml"
    grid.write_text('base = "fast"\n')
    published.write_text('base = "paper_w32"\n')
    assert [default_mode(r) for r in ("fast", "paper_grid", "paper_w32", "paper_w32_hybrid", "paper")] == ["scratch", "meta", "meta", "meta", "scratch"]
    assert default_mode(str(grid)) == default_mode(str(published)) == "scratch"
    assert resolve_init("fast") is None and resolve_init("fast", mode="meta") is not None  # still packaged, on request
    assert resolve_init(str(grid), mode="meta").info["path"].endswith("default_init.safetensors")
    assert resolve_init("paper_w32_hybrid").info["path"].endswith("paper_w32_init.safetensors")
    init = resolve_init("fast", mode="meta")
    assert resolve_init("fast", init=init) is init  # an initialiser given: meta whatever the recipe's default
