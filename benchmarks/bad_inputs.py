"""Feed every kind of bad input to the real `cbid` CLI and record what it says.

    .venv/bin/python benchmarks/bad_inputs.py

Each case runs ``cbid`` in a fresh process; the table records the exit code,
the last stderr line, whether a Python traceback appeared and whether any
output file was left behind.  The interrupt cases send SIGINT / SIGTERM to a
batch once its first image is written.  Written to
``benchmarks/results/bad_inputs.md``.  The test suite checks the same cases
in-process (``tests/test_bad_inputs.py``; the interrupts in
``tests/test_reproducible.py``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, provenance  # noqa: E402

DISK_FULL = (
    "import sys, errno, PIL.Image\n"
    "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
    "PIL.Image.Image.save = full\n"
    "from cbid_meta.cli.main import main\nmain(sys.argv[1:])\n"
)


def make_records(d: Path, good: Path) -> None:
    """Replay records of ``good``: a valid one (not a case), edited into invalid, another package
    version, an older format, not JSON, its input gone, its initialiser changed since."""
    import torch

    from cbid_meta import __version__
    from cbid_meta.api import as_image, plan
    from cbid_meta.io.record import RECORD_FORMAT, sha256_file

    def record(path: Path, **run) -> dict:
        p = plan(as_image(path), kernel_size=9, steps=6, mode="scratch", noise="auto")
        rec = {"format": RECORD_FORMAT, "input": str(path), "versions": {"cbid_meta": __version__, "torch": torch.__version__},
               "run": {"input": str(path), "input_sha256": sha256_file(path), **p.record(), "output_bits": 8, "panels": False, **run},
               "outputs": {}}
        return rec

    def write(name: str, rec) -> None:
        (d / "records" / name).write_text(rec if isinstance(rec, str) else json.dumps(rec, indent=2))

    (d / "records").mkdir()
    ok = record(good)
    write("valid.json", ok)
    write("edited.json", {**ok, "run": {**ok["run"], "seed": "three"}})
    write("other_version.json", {**ok, "versions": {**ok["versions"], "cbid_meta": "0.0.1"}})
    write("older_format.json", {k: v for k, v in ok.items() if k not in ("format", "run")} | {"settings": ok["run"]["config"]})
    write("not_json.json", json.dumps(ok)[:300])
    gone = d / "gone.png"
    gone.write_bytes(good.read_bytes())
    write("input_gone.json", record(gone))
    gone.unlink()
    init = d / "init_then_changed.safetensors"
    init.write_bytes(b"the file the record was made with")
    write("init_changed.json", {**ok, "run": {**ok["run"], "mode": "meta", "init": {"path": str(init), "sha256": sha256_file(init), "packaged": False}}})
    init.write_bytes(b"another file since")


def make_cases(d: Path) -> list[tuple[str, list[str], dict, str | None]]:
    """(label, argv, extra env, runner code or None)."""
    import tifffile

    good = d / "good.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(good)
    (d / "text.png").write_text("this is not an image\n")
    (d / "empty.png").write_bytes(b"")
    raw = good.read_bytes()
    (d / "truncated.png").write_bytes(raw[: len(raw) // 2])
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(d / "one_pixel.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(d / "small.png")
    nan = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    nan[3, 3] = np.nan
    tifffile.imwrite(d / "nan.tif", nan)
    inf = nan.copy()
    inf[3, 3] = np.inf
    tifffile.imwrite(d / "inf.tif", inf)
    (d / "not_init.safetensors").write_text("nope")
    (d / "a_file").write_text("x")
    (d / "midbatch" / "good_deblurred.png").mkdir(parents=True)  # the first input's output cannot be written
    (d / "good2.png").write_bytes(good.read_bytes())
    np.save(d / "negative_kernel.npy", -np.ones((5, 5)))
    np.save(d / "box_kernel.npy", np.ones((5, 5)))
    rows = d / "benchrun" / "rows"  # a bench folder whose rows were made with another recipe
    rows.mkdir(parents=True)
    (rows / "settings.json").write_text('{"recipe": "paper", "steps": null, "seed": 0, "kernel_margin": 10, "kernel_size": null}')
    (rows / "blurry__syn00.json").write_text('{"method": "blurry", "image": "syn00", "psnr": 20.0}')
    make_records(d, good)
    o = str(d / "out")
    g = str(good)
    rec = d / "records"
    return [
        ("missing file", ["deblur", str(d / "missing.png"), "-o", o], {}, None),
        ("a directory", ["deblur", str(d), "-o", o], {}, None),
        ("not an image (text)", ["deblur", str(d / "text.png"), "-o", o], {}, None),
        ("zero-byte file", ["deblur", str(d / "empty.png"), "-o", o], {}, None),
        ("truncated PNG", ["deblur", str(d / "truncated.png"), "-o", o], {}, None),
        ("1x1 image", ["deblur", str(d / "one_pixel.png"), "-o", o], {}, None),
        ("kernel larger than image", ["deblur", str(d / "small.png"), "-k", "31", "-o", o], {}, None),
        ("image too small for the default's U-Net", ["deblur", g, "-k", "31", "-o", o], {}, None),
        ("dimensions over the limit", ["deblur", g, "-o", o], {"CBID_MAX_PIXELS": "1000"}, None),
        ("NaN pixels (float TIFF)", ["deblur", str(d / "nan.tif"), "-o", o], {}, None),
        ("Inf pixels (float TIFF)", ["deblur", str(d / "inf.tif"), "-o", o], {}, None),
        ("negative kernel size", ["deblur", g, "-k", "-5", "-o", o], {}, None),
        ("non-numeric kernel size", ["deblur", g, "-k", "abc", "-o", o], {}, None),
        ("unknown recipe", ["deblur", g, "-r", "nope", "-o", o], {}, None),
        ("too few steps", ["deblur", g, "--steps", "1", "-o", o], {}, None),
        ("unknown option", ["deblur", g, "--frobnicate", "-o", o], {}, None),
        ("CUDA without a GPU", ["deblur", g, "--device", "cuda", "-o", o], {"CUDA_VISIBLE_DEVICES": ""}, None),
        ("bad noise value", ["deblur", g, "--noise", "0.9", "-o", o], {}, None),
        ("bad region", ["deblur", g, "--region", "1,2,3", "-o", o], {}, None),
        ("region outside the image", ["deblur", g, "--region", "50,50,64,64", "-k", "9", "-o", o], {}, None),
        ("bad bit depth", ["deblur", g, "--bits", "12", "-o", o], {}, None),
        ("init file not safetensors", ["deblur", g, "--init", str(d / "not_init.safetensors"), "-o", o], {}, None),
        ("output dir is a file", ["deblur", g, "-k", "9", "--steps", "6", "--mode", "scratch", "-o", str(d / "a_file")], {}, None),
        ("output dir not creatable", ["deblur", g, "-k", "9", "--steps", "6", "--mode", "scratch", "-o", "/proc/cbid_out"], {}, None),
        ("disk full on write", ["deblur", g, "-k", "9", "--steps", "6", "--mode", "scratch", "-o", o], {}, DISK_FULL),
        ("unwritable output mid-batch", ["deblur", g, str(d / "good2.png"), "-k", "9", "--steps", "6", "--mode", "scratch", "-o", str(d / "midbatch")], {}, None),
        ("--kernel file missing", ["deblur", g, "--kernel", str(d / "no_kernel.npy"), "-o", o], {}, None),
        ("--kernel not a kernel", ["deblur", g, "--kernel", str(d / "text.png"), "-o", o], {}, None),
        ("--kernel with negative taps", ["deblur", g, "--kernel", str(d / "negative_kernel.npy"), "-o", o], {}, None),
        ("--kernel with --steps", ["deblur", g, "--kernel", str(d / "box_kernel.npy"), "--steps", "9", "-o", o], {}, None),
        ("unknown device name", ["deblur", g, "--device", "tpu", "-o", o], {}, None),
        ("bad CUDA index", ["deblur", g, "--device", "cuda:x", "-o", o], {}, None),
        ("no command", [], {}, None),
        ("batch with one bad file", ["deblur", g, str(d / "text.png"), "-k", "9", "--steps", "6", "--mode", "scratch", "-o", str(d / "batch")], {}, None),
        ("bench: unknown dataset", ["bench", "nope", "-o", o], {}, None),
        ("bench: unknown method", ["bench", "synthetic", "--n", "1", "--methods", "magic", "-o", o], {}, None),
        ("bench: resume with other settings", ["bench", "synthetic", "--n", "1", "--methods", "blurry", "-o", str(d / "benchrun")], {}, None),
        ("meta-train: bad kernel range", ["meta-train", "--kernel-min", "9", "--kernel-max", "5", "-o", o], {}, None),
        ("compare: bad budgets", ["compare", "levin", "--budgets", "ten", "-o", o], {}, None),
        ("replay: record missing", ["deblur", "--replay", str(rec / "missing.json"), "-o", o], {}, None),
        ("replay: edited record (invalid seed)", ["deblur", "--replay", str(rec / "edited.json"), "-o", o], {}, None),
        ("replay: record of another version", ["deblur", "--replay", str(rec / "other_version.json"), "-o", o], {}, None),
        ("replay: record of an older format", ["deblur", "--replay", str(rec / "older_format.json"), "-o", o], {}, None),
        ("replay: record not JSON (cut short)", ["deblur", "--replay", str(rec / "not_json.json"), "-o", o], {}, None),
        ("replay: input file gone", ["deblur", "--replay", str(rec / "input_gone.json"), "-o", o], {}, None),
        ("replay: initialiser changed", ["deblur", "--replay", str(rec / "init_changed.json"), "-o", o], {}, None),
        ("replay: with other options", ["deblur", "--replay", str(rec / "valid.json"), "--seed", "3", "-o", o], {}, None),
    ]


def interrupt_cases(d: Path) -> list[tuple[str, list[str], int, Path]]:
    """(label, argv, signal, file whose appearance triggers the signal): a batch stopped after its first image."""
    imgs = []
    for i in range(3):
        p = d / f"batch_{i}.png"
        p.write_bytes((d / "good.png").read_bytes())
        imgs.append(str(p))
    slow = ["-k", "9", "--steps", "400", "--mode", "scratch"]  # seconds per image: the signal lands mid-batch
    return [
        ("SIGINT during a batch, after its first image", ["deblur", *imgs, *slow, "-o", str(d / "int")], signal.SIGINT, d / "int" / "batch_0.json"),
        ("SIGTERM during a batch, after its first image", ["deblur", *imgs, *slow, "-o", str(d / "term")], signal.SIGTERM, d / "term" / "batch_0.json"),
        ("SIGINT during bench, after its blurry pairs", ["bench", "synthetic", "--n", "2", "--methods", "blurry,full", "--steps", "400", "-k", "9", "--no-panels", "-o", str(d / "bench_int")],
         signal.SIGINT, d / "bench_int" / "rows" / "blurry__syn01_astronaut_k17.json"),
    ]


def run_interrupted(cmd: list[str], sig: int, trigger: Path) -> subprocess.CompletedProcess:
    """Run ``cmd``, send ``sig`` once ``trigger`` exists; SIGINT is delivered even if this script was started with it ignored."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t = time.monotonic()
    while not trigger.exists() and p.poll() is None and time.monotonic() - t < 600:
        time.sleep(0.05)
    p.send_signal(sig)
    out, err = p.communicate(timeout=600)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _message(stderr: str) -> str:
    """Every ``error:`` / ``interrupted:`` line, else the last line."""
    err = [line for line in stderr.strip().splitlines() if line.strip()]
    errs = [line for line in err if line.startswith(("error:", "interrupted:"))]
    return " / ".join(errs) if errs else (err[-1] if err else "")


def _shown(argv: list[str], d: Path) -> str:
    args = [a.replace(str(d), "…") for a in argv[1:]]
    batch = [i for i, a in enumerate(args) if a.startswith("…/batch_")]
    if len(batch) > 2:  # the interrupted batches: first … last input
        args = args[: batch[0]] + [args[batch[0]], "…", args[batch[-1]]] + args[batch[-1] + 1 :]
    return " ".join(argv[:1] + args)


def files_left(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.parent != d)


def main() -> None:
    rows = []
    cbid = [sys.executable, "-c", "import sys; from cbid_meta.cli.main import main; main(sys.argv[1:])"]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for label, argv, env, code in make_cases(d):
            before = set(files_left(d))
            cmd = [sys.executable, "-c", code] if code else cbid
            r = subprocess.run([*cmd, *argv], capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
            msg = _message(r.stderr)
            new = [f for f in files_left(d) if f not in before and not f.startswith(("batch/good", "midbatch/good2"))]
            rows.append((label, _shown(argv, d), r.returncode, "Traceback" in r.stderr, ", ".join(new) or "none", msg.replace(str(d), "…")))
            print(f"{label}: rc={r.returncode} {msg}", flush=True)
        for label, argv, sig, trigger in interrupt_cases(d):
            before = set(files_left(d))
            r = run_interrupted([*cbid, *argv], sig, trigger)
            msg = _message(r.stderr)
            new = [f for f in files_left(d) if f not in before]
            partial = [f for f in new if ".part" in f or f.endswith(".tmp")]
            left = f"{len(new) - len(partial)} complete file(s)" + (f"; partial: {', '.join(partial)}" if partial else ", no partial file")
            rows.append((label, _shown(argv, d), r.returncode, "Traceback" in r.stderr, left, msg.replace(str(d), "…")))
            print(f"{label}: rc={r.returncode} {msg}", flush=True)
        # file modes of a good run's outputs under umask 022
        r = subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh", *cbid, "deblur", str(d / "good.png"), "-k", "9", "--steps", "6", "--mode", "scratch", "-o", str(d / "modes")],
                           capture_output=True, text=True, timeout=600)
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in sorted((d / "modes").iterdir())} if r.returncode == 0 else {"run failed": r.stderr[-200:]}
    meta = provenance()
    lines = ["# Bad inputs and what `cbid` says", "", *[f"- {k}: {v}" for k, v in meta.items()], "",
             "| case | command | exit code | traceback | new files left | message (every `error:` line) |", "|---|---|---|---|---|---|"]
    for label, cmd, rc, tb, new, msg in rows:
        lines.append(f"| {label} | `cbid {cmd}` | {rc} | {'YES' if tb else 'no'} | {new} | {msg.replace('|', '/')} |")
    lines += ["", "Output files of a good run under `umask 022` (`cbid deblur good.png -k 9 --steps 6 --mode scratch`):", "",
              "| file | mode |", "|---|---|", *[f"| {k} | {v} |" for k, v in modes.items()]]
    out = ROOT / "benchmarks/results/bad_inputs.md"
    out.write_text("\n".join(lines) + "\n")
    bad = [r for r in rows if r[2] == 0 or r[3] or "partial:" in r[4]] + [m for m in modes.values() if m != "0o644"]
    print(f"wrote {out}; {len(bad)} case(s) exited 0 or printed a traceback")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
