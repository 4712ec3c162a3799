"""Every run reproducible from its record: one seed rule, a complete <name>.json, `cbid deblur --replay`,
and interrupted batches that say so (issue 23)."""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import cbid_meta
from cbid_meta.cli.main import main
from cbid_meta.config import DEFAULT_RECIPE, resolve_seed
from cbid_meta.data import demo_pair
from cbid_meta.io.record import RECORD_FORMAT

FAST = ["-k", "7", "--steps", "9"]


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    y, _, _ = demo_pair(size=64, kernel_size=7)
    d = tmp_path_factory.mktemp("in")
    Image.fromarray((y * 255 + 0.5).astype(np.uint8)).save(d / "a.png")
    return d / "a.png"


@pytest.fixture(scope="module")
def seeded_recipe(tmp_path_factory):
    """The fast recipe with a seed of its own and the INR kernel only (so the output depends on the seed)."""
    p = tmp_path_factory.mktemp("recipe") / "seeded.toml"
    p.write_text('seed = 5\n\n[estimation]\nestimators = ["inr"]\n')
    return p


def _cbid(*args, capsys=None):
    try:
        main([*map(str, args)])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


def _bytes(folder, stem="a"):
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.name.startswith(stem + "_")}


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_recipe_seed_unless_seed_is_given(png, seeded_recipe, tmp_path, capsys):
    runs = {"recipe": [], "same": ["--seed", "5"], "other": ["--seed", "6"]}
    for name, extra in runs.items():
        code, err = _cbid("deblur", png, "-o", tmp_path / name, "-r", seeded_recipe, "--mode", "scratch", *FAST, *extra, capsys=capsys)
        assert code == 0, err
    rec = json.loads((tmp_path / "recipe" / "a.json").read_text())
    assert rec["seed"] == rec["run"]["seed"] == rec["run"]["config"]["seed"] == 5 and rec["run"]["seed_source"] == "recipe"
    assert json.loads((tmp_path / "other" / "a.json").read_text())["run"]["seed_source"] == "--seed"
    assert _bytes(tmp_path / "recipe") == _bytes(tmp_path / "same")  # the recipe's seed, given or not: the same run
    assert _bytes(tmp_path / "recipe")["a_deblurred.png"] != _bytes(tmp_path / "other")["a_deblurred.png"]
    # the API and the benchmarks resolve it the same way
    assert cbid_meta.deblur(png, recipe=str(seeded_recipe), mode="scratch", kernel_size=7, steps=9).info["seed"] == 5
    from cbid_meta.api import as_image, plan
    from cbid_meta.config import resolve_seed

    assert plan(as_image(png), recipe="paper", kernel_size=7, steps=6).config.seed == 2024
    assert plan(as_image(png), recipe="paper", kernel_size=7, steps=6, seed=1).config.seed == 1
    assert resolve_seed("fast") == 0 and resolve_seed(seeded_recipe) == 5 and resolve_seed(seeded_recipe, 0) == 0


def test_benchmark_rows_carry_their_seed(seeded_recipe, tmp_path):
    from cbid_meta.evaluation.bench import BenchSettings, run_bench
    from cbid_meta.evaluation.budgets import run_budget
    from cbid_meta.evaluation.datasets import synthetic_set

    items = synthetic_set(n=1, size=64, kernel_sizes=(9,), noise=0.0, seed=3)
    df = run_bench(items, ("blurry",), tmp_path / "b", BenchSettings(recipe=str(seeded_recipe)), panels=False)
    assert list(df["seed"]) == [5]
    assert json.loads((tmp_path / "b" / "rows" / "settings.json").read_text())["seed"] == 5
    assert run_budget(items[0], "scratch", 6, None, recipe=str(seeded_recipe), kernel_size=9)["seed"] == 5
    assert run_budget(items[0], "scratch", 6, None, recipe=str(seeded_recipe), seed=2, kernel_size=9)["seed"] == 2


def test_the_record_holds_everything_the_output_depends_on(png, tmp_path, capsys):
    from cbid_meta.meta.init import default_init_path

    code, err = _cbid("deblur", png, "-o", tmp_path / "auto", "-k", "auto", "--steps", "9", "-r", "fast", "--mode", "meta", capsys=capsys)  # the packaged initialiser
    assert code == 0, err
    rec = json.loads((tmp_path / "auto" / "a.json").read_text())
    run = rec["run"]
    assert rec["format"] == RECORD_FORMAT and rec["versions"]["cbid_meta"] == cbid_meta.__version__
    assert rec["replay"] == f"cbid deblur --replay {tmp_path / 'auto' / 'a.json'}"
    assert run["input"] == str(png.resolve()) and run["input_sha256"] == _sha(png)
    assert run["kernel_size_auto"] is True and run["kernel_size"] == run["config"]["kernel_size"] == len(rec["kernel"])
    assert run["noise"] == "auto" and run["noise_sigma"] == rec["photo"]["noise_estimate"] > 0
    assert run["region"] == [0, 0, 64, 64] and run["region_source"] == "chosen"
    assert run["mode"] == "meta" and run["init"]["packaged"] is True
    assert run["recipe"] == "fast" and run["seed"] == 0 and run["seed_source"] == "recipe"
    assert run["init"]["sha256"] == _sha(default_init_path("fast")) and run["init"]["path"] == str(default_init_path("fast"))
    assert run["device"] == "cpu" and run["dtype"] == "float32" and run["threads"] >= 1
    assert run["config"]["schedule"] == rec["settings"]["schedule"]  # the resolved values, steps rescaled
    assert rec["outputs"]["a_deblurred.png"] == _sha(tmp_path / "auto" / "a_deblurred.png")

    code, err = _cbid("deblur", png, "-o", tmp_path / "given", *FAST, "-r", "fast", "--mode", "scratch", "--noise", "0.01", "--region", "4,4,56,56", "--seed", "2", capsys=capsys)
    assert code == 0, err
    run = json.loads((tmp_path / "given" / "a.json").read_text())["run"]
    assert run["kernel_size_auto"] is False and run["kernel_size"] == 7
    assert run["noise"] == run["noise_sigma"] == 0.01
    assert run["region"] == [4, 4, 56, 56] and run["region_source"] == "given"
    assert run["init"] is None and run["mode"] == "scratch" and run["seed"] == 2 and run["seed_source"] == "--seed"


def test_the_default_run_is_the_default_recipe_from_its_packaged_initialiser(tmp_path, capsys):
    """No --recipe, no --mode: DEFAULT_RECIPE, meta mode from its packaged initialiser, the recipe's seed.
    Its published U-Net needs a larger image than the fast recipe (112 px here, kernel 9 px); a smaller one
    is one error line that names the way out."""
    from cbid_meta.meta import default_mode
    from cbid_meta.meta.init import default_init_path

    y, _, _ = demo_pair(size=112, kernel_size=7)
    big = tmp_path / "big.png"
    Image.fromarray((y * 255 + 0.5).astype(np.uint8)).save(big)
    code, err = _cbid("deblur", big, "-o", tmp_path / "o", "-k", "9", "--steps", "6", capsys=capsys)
    assert code == 0, err
    run = json.loads((tmp_path / "o" / "big.json").read_text())["run"]
    assert run["recipe"] == DEFAULT_RECIPE and default_mode(DEFAULT_RECIPE) == run["mode"] == "meta"
    assert run["init"]["packaged"] is True and run["init"]["sha256"] == _sha(default_init_path(DEFAULT_RECIPE))
    assert run["seed"] == resolve_seed(DEFAULT_RECIPE) and run["seed_source"] == "recipe"
    small = tmp_path / "small.png"
    Image.fromarray((y[:48, :48] * 255 + 0.5).astype(np.uint8)).save(small)
    code, err = _cbid("deblur", small, "-o", tmp_path / "s", "-k", "9", capsys=capsys)
    assert code == 2 and "too small for the published U-Net" in err and "--recipe fast" in err
    assert not (tmp_path / "s" / "small_deblurred.png").exists()


def test_replay_reproduces_the_output_bit_for_bit(png, tmp_path, capsys):
    first = tmp_path / "first"
    code, err = _cbid("deblur", png, "-o", first, "-k", "auto", "--steps", "9", "--noise", "auto", "--panels", capsys=capsys)
    assert code == 0, err
    code, err = _cbid("deblur", "--replay", first / "a.json", capsys=capsys)  # default: replay/ beside the record
    assert code == 0, err
    assert "outputs identical to the record's" in err
    again = _bytes(first / "replay")
    assert again == _bytes(first) and set(again) == {"a_deblurred.png", "a_kernel.png", "a_kernel.npy", "a_panel.png"}
    code, err = _cbid("deblur", "--replay", first / "a.json", "-o", tmp_path / "elsewhere", capsys=capsys)
    assert code == 0 and _bytes(tmp_path / "elsewhere") == _bytes(first)
    replayed = json.loads((tmp_path / "elsewhere" / "a.json").read_text())
    assert replayed["run"] == json.loads((first / "a.json").read_text())["run"]


@pytest.fixture(scope="module")
def record(png, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec")
    main_code = _cbid("deblur", png, "-o", out, *FAST, "--mode", "scratch")[0]
    assert main_code == 0
    return json.loads((out / "a.json").read_text())


def _edited(rec, **run):
    return {**rec, "run": {**rec["run"], **run}}


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda rec: json.dumps(rec)[:400], "not a valid JSON record"),
        (lambda rec: json.dumps({**rec, "versions": {**rec["versions"], "cbid_meta": "0.0.1"}}), "written by cbid_meta 0.0.1"),
        (lambda rec: json.dumps({**rec, "format": 1}), "record format 1"),
        (lambda rec: json.dumps({k: v for k, v in rec.items() if k not in ("format", "run")}), "older format"),
        (lambda rec: json.dumps(_edited(rec, seed="three")), "run.seed must be an integer"),
        (lambda rec: json.dumps(_edited(rec, seed=rec["run"]["seed"] + 1)), "run.config.seed"),
        (lambda rec: json.dumps(_edited(rec, region=[0, 0, 640, 64])), "not inside"),
        (lambda rec: json.dumps(_edited(rec, input_sha256="0" * 64)), "has changed since the record"),
        (lambda rec: json.dumps(_edited(rec, input="/nonexistent/a.png")), "no longer exists"),
        (lambda rec: json.dumps({k: v for k, v in _edited(rec).items() if k != "run"}), "no 'run' section"),
    ],
)
def test_a_bad_record_is_one_line(record, tmp_path, capsys, make, expect):
    path = tmp_path / "a.json"
    path.write_text(make(record))
    code, err = _cbid("deblur", "--replay", path, "-o", tmp_path / "out", capsys=capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], lines
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_replay_takes_no_other_option(record, tmp_path, capsys):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(record))
    code, err = _cbid("deblur", "--replay", path, "--seed", "3", capsys=capsys)
    assert code == 2 and err.strip() == "error: --replay runs the record as it is: drop --seed (only -o goes with it)"
    code, err = _cbid("deblur", "--replay", path, "-o", tmp_path, capsys=capsys)
    assert code == 2 and "the record's own folder" in err


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_batch_says_so(png, tmp_path, sig, code):
    inputs = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        p.write_bytes(png.read_bytes())
        inputs.append(str(p))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "cbid_meta.cli.main", "deblur", *inputs, "-o", str(out), "-k", "7", "--steps", "400", "-r", "fast", "--mode", "scratch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t = time.monotonic()
    while not (out / "im0.json").exists() and proc.poll() is None and time.monotonic() - t < 300:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1 and re.fullmatch(rf"interrupted: ([12]) of 3 images written to {re.escape(str(out))}/", lines[0]), err
    n = int(lines[0].split()[1])
    files = sorted(f.name for f in out.iterdir())
    assert not any(".part" in f or f.endswith(".tmp") for f in files), files  # nothing half-written
    assert len(files) == 4 * n  # every written image complete: deblurred, kernel png / npy, record
