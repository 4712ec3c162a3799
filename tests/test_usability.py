"""What a first-time user meets: file modes, early output checks, batches that go on, one
progress bar with a real total, --version, devices, known kernels, option names and help,
and the Python API giving what the CLI gives."""
import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

import cbid_meta
from cbid_meta.cli.main import app, main
from cbid_meta.data import demo_pair
from cbid_meta.errors import InputError


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    y, _, k = demo_pair(size=64, kernel_size=7)
    d = tmp_path_factory.mktemp("in")
    Image.fromarray((y * 255 + 0.5).astype(np.uint8)).save(d / "a.png")
    np.save(d / "k.npy", k)
    return d / "a.png"


def _deblur(*args):
    main(["deblur", *map(str, args)])


def test_outputs_honour_the_umask(png, tmp_path):
    old = os.umask(0o022)
    try:
        _deblur(png, "-o", tmp_path / "o", "-k", "7", "--steps", "6", "--mode", "scratch")
    finally:
        os.umask(old)
    files = list((tmp_path / "o").iterdir())
    assert len(files) == 4
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, (f.name, oct(f.stat().st_mode))


def test_output_that_is_a_file_is_refused_before_any_work(png, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as e:
        _deblur(png, "-o", target, "-k", "7", "--steps", "6")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: -o {target}: exists and is not a folder"]
    assert target.read_text() == "keep me"


def test_a_write_error_on_one_input_does_not_stop_the_batch(png, tmp_path, capsys):
    b = tmp_path / "b.png"
    b.write_bytes(png.read_bytes())
    out = tmp_path / "o"
    (out / "a_deblurred.png").mkdir(parents=True)  # writing a's output fails with an OSError
    with pytest.raises(SystemExit) as e:
        _deblur(png, b, "-o", out, "-k", "7", "--steps", "6", "--mode", "scratch")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "a.png" in err and "1 of 2 input(s) failed" in err and "Traceback" not in err
    assert (out / "b_deblurred.png").is_file() and (out / "b_kernel.npy").is_file()


def test_progress_has_a_real_total_and_reaches_it(png):
    from cbid_meta.api import as_image, plan, run

    img = as_image(png)
    calls = []
    p = plan(img, kernel_size=7, steps=9, mode="scratch", noise=None)
    res = run(img, p, lambda done, total, phase: calls.append((done, total, phase)))
    totals = {t for _, t, _ in calls}
    assert totals == {p.total} and calls[-1][0] == p.total
    assert [d for d, _, _ in calls] == list(range(1, p.total + 1))
    phases = [ph for _, _, ph in calls]
    assert "polish" in phases and phases[-1] == "restore"  # the bar spans polish and restoration
    assert res.image.shape == img.shape


def test_version_and_bare_command(capsys):
    try:
        main(["--version"])
    except SystemExit as e:  # pragma: no cover - depends on the click version
        assert e.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith(f"cbid_meta {cbid_meta.__version__} (torch ")
    with pytest.raises(SystemExit):
        main([])
    captured = capsys.readouterr()
    assert "Usage" in captured.out + captured.err
    assert not any(ln.strip() == "error:" for ln in captured.err.splitlines())


@pytest.mark.parametrize("device,ok", [("cpu", True), ("CPU", True), ("cuda:x", False), ("tpu", False), ("cuda:0", None), ("mps", None)])
def test_device_names(device, ok):
    import torch

    from cbid_meta.api import parse_device

    if ok is None:  # depends on the machine: a clear refusal where the device is absent
        present = torch.cuda.is_available() if device.startswith("cuda") else torch.backends.mps.is_available()
        ok = present
    if ok:
        assert parse_device(device) == device.lower()
    else:
        with pytest.raises(InputError, match="--device"):
            parse_device(device)


def test_known_kernel_restores_without_estimating(png, tmp_path):
    k = np.load(png.parent / "k.npy")
    _deblur(png, "-o", tmp_path / "o", "--kernel", png.parent / "k.npy")
    saved = np.load(tmp_path / "o" / "a_kernel.npy")
    np.testing.assert_allclose(saved, k / k.sum(), atol=1e-12)
    rec = json.loads((tmp_path / "o" / "a.json").read_text())
    assert rec["mode"] == "non-blind (given kernel)" and rec["photo"]["kernel"] == "given"
    # a PNG kernel (max-scaled, as Levin ships them) is read back normalised
    Image.fromarray((k / k.max() * 255).astype(np.uint8)).save(tmp_path / "k.png")
    from cbid_meta.io import load_kernel

    kp = load_kernel(tmp_path / "k.png")
    assert abs(kp.sum() - 1) < 1e-12 and kp.shape == k.shape


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda d: d / "none.npy", "kernel file not found"),
        (lambda d: (d / "bad.npy").write_text("nope") and d / "bad.npy", "not a kernel"),
        (lambda d: np.save(d / "neg.npy", -np.ones((3, 3))) or d / "neg.npy", "negative"),
        (lambda d: np.save(d / "zero.npy", np.zeros((3, 3))) or d / "zero.npy", "all zero"),
        (lambda d: np.save(d / "big.npy", np.ones((41, 41))) or d / "big.npy", "too small"),
    ],
)
def test_bad_kernel_files_are_one_line(png, tmp_path, capsys, make, expect):
    path = make(tmp_path)
    with pytest.raises(SystemExit) as e:
        _deblur(png, "-o", tmp_path / "o", "--kernel", path)
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_kernel_outputs_and_json_provenance(png, tmp_path):
    _deblur(png, "-o", tmp_path / "o", "-k", "7", "--steps", "6", "--mode", "scratch")
    k = np.load(tmp_path / "o" / "a_kernel.npy")
    assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-9 and (k >= 0).all()
    with Image.open(tmp_path / "o" / "a_kernel.png") as im:
        assert im.size[0] >= 7 * 30  # drawn large enough to see
    v = json.loads((tmp_path / "o" / "a.json").read_text())["versions"]
    assert v["cbid_meta"] == cbid_meta.__version__ and v["torch"] and v["date"][:2] == "20"


def test_api_gives_what_the_cli_gives(png, tmp_path):
    _deblur(png, "-o", tmp_path / "o", "-k", "7", "--steps", "9", "--mode", "scratch", "--seed", "3")
    from cbid_meta.io import load_image

    res = cbid_meta.deblur(load_image(png, gray=False), kernel_size=7, steps=9, mode="scratch", seed=3)
    np.testing.assert_allclose(res.kernel, np.load(tmp_path / "o" / "a_kernel.npy"), atol=1e-6)
    res_path = cbid_meta.deblur(png, kernel_size=7, steps=9, mode="scratch", seed=3)
    np.testing.assert_allclose(res_path.kernel, res.kernel, atol=1e-6)
    import torch

    t = torch.from_numpy(load_image(png, gray=True))
    assert cbid_meta.deblur(t, kernel_size=7, steps=9, mode="scratch", seed=3).image.shape == (64, 64)


def _options(command_name):
    import typer.main

    click_app = typer.main.get_command(app)
    cmd = click_app.commands[command_name]
    return {opt: p for p in cmd.params for opt in getattr(p, "opts", [])}, cmd


@pytest.mark.parametrize("command", ["deblur", "demo", "bench", "meta-train", "compare"])
def test_every_option_has_help(command):
    opts, cmd = _options(command)
    missing = sorted({o for o, p in opts.items() if p.param_type_name == "option" and not (p.help or "").strip()})
    assert not missing, missing


def test_option_names_mean_one_thing():
    # --noise is the input's noise level (deblur only); the synthetic / training noise have their own names
    assert "--noise" in _options("deblur")[0] and "--noise" not in _options("bench")[0] and "--noise" not in _options("meta-train")[0]
    assert "--synthetic-noise" in _options("bench")[0] and "--noise-max" in _options("meta-train")[0]
    # --recipe is always a per-image recipe; meta-training recipes are --meta-recipe
    assert "--recipe" not in _options("meta-train")[0] and "--meta-recipe" in _options("meta-train")[0]
    for command in ("deblur", "demo", "bench", "meta-train", "compare"):
        dev = _options(command)[0]["--device"]
        assert "cuda:N" in dev.help
    meta_help = " ".join(p.help for p in _options("meta-train")[0].values() if p.help)
    assert meta_help.count("Default:") >= 8  # meta-train shows its defaults


def test_wording_is_consistent():
    import pathlib

    root = pathlib.Path(cbid_meta.__file__).parent
    hits = [p.name for p in root.rglob("*.py") if "initializer" in p.read_text().lower()]
    assert not hits, hits


def test_kernel_size_means_the_same_in_every_command():
    from cbid_meta.evaluation.bench import BenchSettings, _support
    from cbid_meta.evaluation.datasets import BenchItem

    for command in ("deblur", "bench", "compare"):
        assert "'auto'" in _options(command)[0]["--kernel-size"].help
    y, x, k = demo_pair(size=96, kernel_size=9)
    item = BenchItem("demo", y, x, k)
    n = _support(item, BenchSettings(kernel_size="auto"), 10)
    assert n % 2 == 1 and 11 <= n <= 61
    assert _support(item, BenchSettings(kernel_size=15), 10) == 15
    assert _support(item, BenchSettings(), 10) == 9 + 10


def test_published_recipe_writes_the_generator_image_on_a_whole_gray_image():
    """--recipe paper restores with the generator itself (its [restoration] method is "inr"),
    whatever the noise setting, when the kernel was estimated on the whole gray image."""
    from cbid_meta.api import as_image, plan, run

    y, _, _ = demo_pair(size=160, kernel_size=7)
    img = as_image(y)
    p = plan(img, recipe="paper", kernel_size=7, steps=6, noise="auto")
    calls = []
    res = run(img, p, lambda d, t, ph: calls.append(d))
    assert res.info["restoration"] == "inr" and calls[-1] == p.total
    np.testing.assert_array_equal(res.image, res.estimate.image)


def test_api_kernel_arrays_are_checked_like_kernel_files(png):
    from cbid_meta.io import as_kernel

    k = as_kernel(np.ones((4, 6)))
    assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-12 and k[0].sum() == 0  # centred in odd square padding
    for bad, msg in ((np.array(["a", "b"]), "numbers"), (np.full((3, 3), np.nan), "NaN"), (-np.ones((3, 3)), "negative"), (np.zeros((3, 3)), "all zero")):
        with pytest.raises(InputError, match=msg):
            as_kernel(bad)
    with pytest.raises(InputError, match="negative"):
        cbid_meta.deblur(png, kernel=-np.ones((3, 3)))
    res = cbid_meta.deblur(png, kernel=np.ones((3, 3)))
    np.testing.assert_allclose(res.kernel, np.full((3, 3), 1 / 9))


def test_a_refused_resume_prints_one_line_and_no_empty_bar(tmp_path):
    """Resuming a bench folder with other settings: the error line alone (no 0/None progress bar first)."""
    import subprocess
    import sys

    rows = tmp_path / "run" / "rows"
    rows.mkdir(parents=True)
    (rows / "settings.json").write_text(json.dumps({"recipe": "paper", "steps": None, "seed": 0, "kernel_margin": 10, "kernel_size": None}))
    (rows / "blurry__syn00.json").write_text(json.dumps({"method": "blurry", "image": "syn00"}))
    r = subprocess.run([sys.executable, "-c", "import sys; from cbid_meta.cli.main import main; main(sys.argv[1:])",
                        "bench", "synthetic", "--n", "1", "--methods", "blurry", "-o", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"})
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and "recipe 'paper' (now 'fast')" in lines[0], lines
