"""The ``cbid`` command line: a thin shell over the Python API.

Every error a user can cause ends in one line on stderr and exit code 2;
outputs are written only after a run succeeds, each atomically.
"""
from __future__ import annotations

import platform
import sys
import time
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..config import DEFAULT_RECIPE
from ..errors import CbidError, InputError

try:  # typer ≥ 0.2x vendors its own click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as _cx

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Self-supervised blind image deblurring with cross-scale implicit neural representations.",
)
console = Console(stderr=True, emoji=False)  # ":x:" in a message is text, not an emoji


def _version_callback(value: bool) -> None:
    if value:
        import torch

        from .. import __version__

        print(f"cbid_meta {__version__} (torch {torch.__version__}, python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")):
    """Self-supervised blind image deblurring with cross-scale implicit neural representations."""


DEVICE_HELP = "cpu, cuda, cuda:N or mps."
SEED_HELP = "Seed of the generators' initialisation. Default: the recipe's `seed` (paper and the recipes built on it: 2024; fast sets none: 0). Same seed, same machine: same result."


def _check_device(device: str) -> str:
    from ..api import parse_device

    return parse_device(device)


def _check_output_dir(path: Path) -> None:
    """The output folder must be a folder we can write (created if missing): checked before any work."""
    import tempfile

    if path.exists() and not path.is_dir():
        raise InputError(f"-o {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"-o {path}: cannot write there ({exc.strerror or exc})") from None


class Mode(str, Enum):
    meta = "meta"
    scratch = "scratch"


def _versions() -> dict:
    import datetime as dt

    import torch

    from .. import __version__

    return {"cbid_meta": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "date": dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def _run_one(path: Path, outdir: Path, progress: Progress, make_plan, panels=False, bits=None, written: list | None = None, kernel_path=None) -> dict:
    """Deblur one input with the plan ``make_plan(image)`` and write its outputs and record;
    a SIGINT / SIGTERM during the writes is held until every file of this input is written."""
    from ..api import as_image, run
    from ..io import image_info, save_image, save_json, save_kernel, save_kernel_npy
    from ..io.record import RECORD_FORMAT, sha256_file

    img = as_image(path)  # validates first: missing, directory, not an image, NaN, ...
    info = image_info(path)
    p = make_plan(img)  # every setting resolved and checked before the run
    if kernel_path is not None:
        p.kernel_path = str(kernel_path)
    run_rec = {"input": str(Path(path).resolve()), "input_sha256": sha256_file(path), **p.record()}
    notes = list(p.notes)
    if info["alpha"]:
        notes.append("alpha channel dropped (deblurring acts on the colour channels)")
    task = None

    def tick(done, total, phase):
        nonlocal task
        label = {"polish": "polishing kernel", "restore": "restoring"}.get(phase, "estimating kernel")
        if task is None:
            task = progress.add_task(f"{path.name}", total=total)
        progress.update(task, completed=done, total=total, description=f"{path.name}: {label}")

    try:
        res = run(img, p, tick)
    except BaseException:
        if task is not None:
            progress.remove_task(task)  # no stale bar after the error line
        raise
    stem = path.stem
    out_bits = bits or info["bits"]
    if run_rec["noise"] == "auto":
        run_rec["noise_sigma"] = res.info.get("noise_estimate")
    run_rec.update(output_bits=out_bits, panels=bool(panels))
    notes += res.info.get("notes", [])  # what the run found (a kernel reaching the edge of its support)
    est = res.estimate
    with _held_signals():
        outdir.mkdir(parents=True, exist_ok=True)
        files = [save_image(outdir / f"{stem}_deblurred.png", res.image, bits=out_bits),
                 save_kernel(outdir / f"{stem}_kernel.png", res.kernel, zoom=0),
                 save_kernel_npy(outdir / f"{stem}_kernel.npy", res.kernel)]
        if panels:
            from ..evaluation.panels import panel

            files.append(save_image(outdir / f"{stem}_panel.png", panel([img, res.image], [res.kernel])))
        record = {
            "format": RECORD_FORMAT,
            "input": str(path),
            "input_format": info,
            "output_bits": out_bits,
            "recipe": str(p.recipe),
            "mode": "non-blind (given kernel)" if p.kernel is not None else p.mode,
            "init": (p.init.info.get("path") if p.init is not None else None),
            "seed": int(p.config.seed),
            "seconds": round(res.seconds, 3),
            "notes": notes,
            "photo": res.info,
            "final_losses": est.final_losses if est is not None else {},
            "info": est.info if est is not None else {},
            "settings": est.config if est is not None else p.config.to_dict(),
            "kernel": res.kernel.tolist(),
            "run": run_rec,
            "outputs": {f.name: sha256_file(f) for f in files},
            "replay": f"cbid deblur --replay {outdir / (stem + '.json')}",
            "versions": _versions(),
        }
        save_json(outdir / f"{stem}.json", record)
        if written is not None:
            written.append(path)
    if "kernel_size_auto" in res.info:
        progress.console.print(f"{path.name}: kernel size auto → {res.info['kernel_size_auto']} px", highlight=False, markup=False)
    for n in notes:
        progress.console.print(f"note: {path.name}: {n}", highlight=False, markup=False)
    return record


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread as SIGINT raises KeyboardInterrupt (not an Exception:
    nothing catches it by accident)."""


def _raise_terminated(signum, frame):
    raise _Terminated()


INTERRUPTS = (KeyboardInterrupt, _Terminated)


def _interrupt_code(exc: BaseException) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
    return 143 if isinstance(exc, _Terminated) else 130


class _held_signals:
    """SIGINT / SIGTERM held while one input's files are written (all of them or none), then delivered."""

    def __enter__(self):
        import signal
        import threading

        self.got, self.old = [], {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, lambda s, f: self.got.append(s))
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        if self.got:  # the handler in place now raises (KeyboardInterrupt, _Terminated), over a write error too
            signal.raise_signal(self.got[0])
        return False


def _parse_region(region: Optional[str]):
    if region is None:
        return None
    try:
        vals = tuple(int(v) for v in region.split(","))
        assert len(vals) == 4
        return vals
    except (ValueError, AssertionError):
        raise InputError(f"--region must be TOP,LEFT,HEIGHT,WIDTH in pixels, got '{region}'") from None


KERNEL_SIZE_HELP = "Kernel support in pixels (odd), or 'auto' to estimate it. Default: the recipe's (31)."
RECIPE_HELP = ("Per-image recipe: fast (quickest), paper (the published method, hours per image on a CPU), paper_w32 (the published "
               "method at width 32, from its packaged initialiser), paper_w32_hybrid (paper_w32, then the fast recipe's kernel "
               "candidates, selection and non-blind restoration; the best measured on Levin within 2 minutes per image, cbid deblur's default), paper_grid, the ablations paper_no_cross, paper_single_scale, "
               "paper_no_progressive, paper_mlp_kernel, paper_cnn_image, paper_direct_down, or a TOML file.")


@app.command()
def deblur(
    ctx: typer.Context,
    inputs: Optional[List[Path]] = typer.Argument(None, help="Blurry image file(s) (PNG, JPEG or TIFF; 8 or 16 bit; gray or colour)."),
    output: Path = typer.Option(Path("cbid_out"), "-o", "--output", help="Output folder. Default: cbid_out (with --replay: replay/ beside the record)."),
    kernel_size: Optional[str] = typer.Option(None, "--kernel-size", "-k", help=KERNEL_SIZE_HELP),
    recipe: str = typer.Option(DEFAULT_RECIPE, "--recipe", "-r", help=RECIPE_HELP),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimisation steps (stages rescaled). Default: the recipe's, or the initialiser's budget in meta mode."),
    seed: Optional[int] = typer.Option(None, "--seed", help=SEED_HELP),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    init: Optional[Path] = typer.Option(None, "--init", help="Meta-learned initialiser (.safetensors). Default: the one packaged for --recipe, if any."),
    mode: Optional[Mode] = typer.Option(None, "--mode", help="meta (start from the initialiser, shortened schedule) or scratch (random start, the recipe's schedule). Default: --init's, else the recipe's: meta where its packaged initialiser is the better start (paper_w32, paper_w32_hybrid, paper_grid), scratch otherwise (fast, paper)."),
    kernel: Optional[Path] = typer.Option(None, "--kernel", help="A known kernel (.npy or image file): skip the estimation, restore with it (non-blind)."),
    region: Optional[str] = typer.Option(None, "--region", help="TOP,LEFT,HEIGHT,WIDTH of the crop the kernel is estimated on. Default: the 384-px window with the most edges."),
    noise: str = typer.Option("auto", "--noise", help="Noise sigma of the input in [0, 0.5), 'auto' (estimated) or 'none' (the recipe's regularisation as is)."),
    bits: Optional[int] = typer.Option(None, "--bits", help="Output bit depth, 8 or 16. Default: the input's."),
    panels: bool = typer.Option(False, "--panels", help="Also write <name>_panel.png: input | output | estimated kernel."),
    replay: Optional[Path] = typer.Option(None, "--replay", help="Run again exactly what a <name>.json record of an earlier run lists (input, recipe values, seed, kernel size, region, noise, initialiser, device); takes no other option but -o."),
):
    """Deblur images: writes <name>_deblurred.png, <name>_kernel.png (for viewing), <name>_kernel.npy (sums to 1) and <name>.json (the record: --replay runs it again) per input.

    Colour: the kernel is estimated on the luminance and every channel is restored with it.
    Large photos: the kernel is estimated on a crop, the full image restored tile by tile.
    A failing input is reported in one line and the batch goes on."""
    if replay is not None:
        return _replay(ctx, replay, output)
    if not inputs:
        raise InputError("give the blurry image file(s) to deblur, or --replay RECORD.json")
    if bits is not None and bits not in (8, 16):
        raise InputError(f"--bits must be 8 or 16, got {bits}")
    _check_output_dir(output)
    opts = {"recipe": recipe, "kernel_size": kernel_size, "steps": steps, "seed": seed, "device": _check_device(device),
            "mode": mode.value if mode is not None else None, "init": init, "region": _parse_region(region), "noise": noise,
            "kernel": kernel}
    from ..api import check_options, plan

    # option errors before any file is read; a known kernel is read once for the batch
    opts["kernel"] = check_options(recipe=recipe, kernel_size=kernel_size, steps=steps, noise=noise, kernel=kernel,
                                   init=init, mode=opts["mode"])["kernel"]
    if kernel is None:
        from ..api import resolve_init

        opts["init"] = resolve_init(recipe, init, opts["mode"])
    _deblur_batch(inputs, output, lambda img: plan(img, **opts), panels, bits, kernel)


def _deblur_batch(inputs: list[Path], output: Path, make_plan, panels, bits, kernel_path=None) -> list[dict]:
    """Each input in turn (an input that fails is one error line; the batch goes on); a SIGINT / SIGTERM
    ends the batch with one line saying how many inputs were written, exit 130 / 143."""
    failures, written, records = 0, [], []
    try:
        with _progress() as progress:
            for path in inputs:
                try:
                    rec = _run_one(path, output, progress, make_plan, panels, bits, written, kernel_path)
                    records.append(rec)
                    progress.console.print(f"[green]ok[/] {path} → {output}/{path.stem}_deblurred.png ({rec['seconds']:.1f} s)")
                except CbidError as exc:
                    failures += 1
                    progress.console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
                except OSError as exc:  # a write failed for this input: report it, go on with the next
                    failures += 1
                    where = getattr(exc, "filename", None)
                    progress.console.print(f"error: {path}: {exc.strerror or exc}" + (f": {where}" if where else ""), highlight=False, markup=False, soft_wrap=True)
    except INTERRUPTS as exc:
        n = len(inputs)
        console.print(f"interrupted: {len(written)} of {n} image{'s' if n != 1 else ''} written to {output}/", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(code=_interrupt_code(exc)) from None
    if failures and len(inputs) == 1:
        raise typer.Exit(code=2)  # the one error line is already printed
    if failures:
        raise _Exit(f"{failures} of {len(inputs)} input(s) failed")
    return records


def _replay(ctx: typer.Context, record: Path, output: Path) -> None:
    """``cbid deblur --replay NAME.json``: the record's run again, then whether its outputs are identical."""
    import torch

    from ..api import replay_plan
    from ..io.record import read_record

    def given(name: str) -> bool:
        src = ctx.get_parameter_source(name)
        return src is not None and src.name != "DEFAULT"

    extra = [("input files" if p.name == "inputs" else p.opts[0]) for p in ctx.command.params if p.name not in ("replay", "output") and given(p.name)]
    if extra:
        raise InputError(f"--replay runs the record as it is: drop {', '.join(extra)} (only -o goes with it)")
    rec = read_record(record)
    run = rec["run"]
    if not given("output"):
        output = record.parent / "replay"
    if output.resolve() == record.parent.resolve():
        raise InputError(f"-o {output}: the record's own folder; give another one so both runs can be compared")
    inp = Path(run["input"])
    if not inp.is_file():
        raise InputError(f"{record}: its input {inp} no longer exists")
    from ..io.record import sha256_file

    if sha256_file(inp) != run["input_sha256"]:
        raise InputError(f"{record}: its input {inp} has changed since the record (sha256 differs)")
    _check_output_dir(output)
    if torch.get_num_threads() != run["threads"]:
        torch.set_num_threads(run["threads"])  # the same reduction order as the recorded run
    if rec["versions"].get("torch") != torch.__version__:
        console.print(f"note: recorded with torch {rec['versions'].get('torch')}, this is torch {torch.__version__}: the output may differ", highlight=False, markup=False)

    def make_plan(img):
        try:
            return replay_plan(img, run)
        except InputError as exc:
            raise InputError(f"{record}: {exc}") from None

    new = _deblur_batch([inp], output, make_plan, run["panels"], run["output_bits"])[0]
    old, now = rec.get("outputs") or {}, new["outputs"]
    same = [n for n in now if old.get(n) == now[n]]
    if len(same) == len(now) == len(old):
        console.print(f"replay of {record}: outputs identical to the record's (sha256)", highlight=False, markup=False)
    else:
        console.print(f"replay of {record}: {len(now) - len(same)} of {len(now)} output file(s) differ from the record's ({', '.join(n for n in now if n not in same)})", highlight=False, markup=False)


@app.command()
def demo(
    output: Path = typer.Option(Path("cbid_demo"), "-o", "--output", help="Output folder."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimisation steps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the demo's blur kernel and of the generators' initialisation. Default: the default recipe's `seed` (2024)."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    mode: Optional[Mode] = typer.Option(None, "--mode", help="meta (the packaged initialiser) or scratch. Default: the default recipe's (meta)."),
):
    """Run the main job on the embedded demo (scikit-image's camera blurred by a motion kernel)."""
    import numpy as np

    from ..api import plan, run
    from ..config import resolve_seed
    from ..data import demo_pair
    from ..evaluation import levin_scores
    from ..io import save_image, save_json, save_kernel, save_kernel_npy

    dev = _check_device(device)
    _check_output_dir(output)
    seed = resolve_seed(DEFAULT_RECIPE, seed)
    y, x, k = demo_pair(size=128, kernel_size=15, seed=seed)
    # true support 15 + the benchmark's 10-px margin; the noise-free demo keeps the recipe's weight
    p = plan(y, kernel_size=25, steps=steps, mode=mode.value if mode else None, seed=seed, device=dev, noise=None)
    with _progress() as progress:
        task = progress.add_task("demo", total=p.total)
        res = run(y, p, lambda done, total, phase: progress.update(task, completed=done, total=total))
    before = levin_scores(y, x, crop=10)
    after = levin_scores(res.image.astype(np.float64), x, crop=10)
    output.mkdir(parents=True, exist_ok=True)
    save_image(output / "demo_blurry.png", y)
    save_image(output / "demo_sharp.png", x)
    save_kernel(output / "demo_true_kernel.png", k, zoom=0)
    save_image(output / "demo_deblurred.png", res.image)
    save_kernel(output / "demo_kernel.png", res.kernel, zoom=0)
    save_kernel_npy(output / "demo_kernel.npy", res.kernel)
    info = res.estimate.info
    save_json(output / "demo.json", {"psnr_blurry": before["psnr"], "psnr_deblurred": after["psnr"], "seconds": res.seconds,
                                     "mode": p.mode, "seed": seed, "info": info, "versions": _versions()})
    console.print(
        f"demo ({p.mode} mode, {info['steps']} steps): PSNR {before['psnr']:.2f} dB (blurry) → {after['psnr']:.2f} dB (deblurred) in {res.seconds:.1f} s; outputs in {output}/"
    )


@app.command()
def bench(
    dataset: str = typer.Argument(..., help="levin, synthetic, folder (with --data) or a folder path."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (levin: default ../shared/data/levin)."),
    methods: str = typer.Option(",".join(("full", "no_cross", "single_scale", "no_progressive", "l0_map", "blurry", "true_kernel")), "--methods", help="Comma-separated methods."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images."),
    output: Path = typer.Option(Path("cbid_bench"), "-o", "--output", help="Output folder (resumes if it holds earlier rows)."),
    recipe: str = typer.Option("fast", "--recipe", "-r", help=RECIPE_HELP),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total INR steps (stages rescaled)."),
    kernel_margin: int = typer.Option(10, "--kernel-margin", help="Pixels added to the true kernel size for the INR methods."),
    kernel_size: Optional[str] = typer.Option(None, "--kernel-size", "-k", help="Kernel support in pixels (odd), or 'auto' to estimate it per image, for every method. Default: the true kernel's size + --kernel-margin (data without true kernels need it)."),
    n_images: int = typer.Option(24, "--n", help="synthetic: number of images."),
    synthetic_noise: float = typer.Option(0.01, "--synthetic-noise", help="synthetic: sigma of the Gaussian noise added to the blurred images."),
    max_kernel: int = typer.Option(41, "--max-kernel", help="synthetic: largest kernel size."),
    panels: bool = typer.Option(True, "--panels/--no-panels", help="Write per-image PNG panels."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the gathered results table here."),
    md: Optional[Path] = typer.Option(None, "--md", help="Also write the summary here."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the generators' initialisation (default: the recipe's `seed`; paper: 2024, fast: 0) and of the synthetic set (default: 0); every row records it."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
):
    """Benchmark methods x images: results.csv, summary.md and panels in OUTPUT (resumable; shard with torchrun/accelerate)."""
    _check_output_dir(output)
    import shlex

    from ..evaluation.bench import BenchSettings, run_bench
    from ..evaluation.datasets import load_dataset

    dev = _check_device(device)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    from ..api import parse_kernel_size

    kernel_size = parse_kernel_size(kernel_size)
    if not 0 <= synthetic_noise < 0.5:
        raise InputError(f"--synthetic-noise must be in [0, 0.5), got {synthetic_noise}")
    if max_kernel < 5:
        raise InputError(f"--max-kernel must be at least 5, got {max_kernel}")
    sizes = tuple(range(13, max_kernel + 1, 4)) or (max_kernel,)
    if sizes[-1] != max_kernel:
        sizes = sizes + (max_kernel + 1 - max_kernel % 2,)
    from ..config import resolve_seed

    run_seed = resolve_seed(recipe, seed)  # an unknown recipe: one error line before any run
    items = load_dataset(dataset, data, limit, n=n_images, noise=synthetic_noise, seed=seed if seed is not None else 0, kernel_sizes=sizes)
    meta = _provenance("cbid " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    meta["seed"] = run_seed
    st = BenchSettings(recipe=recipe, steps=steps, seed=run_seed, kernel_margin=kernel_margin, kernel_size=kernel_size, device=dev)
    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    pairs = [(m, it.name) for m in names for it in items]  # run_bench's order
    with _interrupt_says(lambda: _resume_line(output, pairs, "pairs", "{} · {}")), _progress() as progress:
        task = progress.add_task("bench", total=None, visible=False)  # shown from the first pair: no empty bar before an error line
        image = progress.add_task("image", total=None, visible=False)

        def tick(done, total, label):
            progress.update(task, completed=done, total=total, description=f"{done}/{total} pairs", visible=True)
            progress.reset(image, total=None, description=label, visible=done < total)

        def step(rec):  # per-iteration bar with its own ETA (a resumed image starts at its checkpoint)
            if rec.get("total_steps"):
                if next(t for t in progress.tasks if t.id == image).completed == 0 and rec["step"] > 0:  # resumed: no speed sample for the skipped steps
                    progress.reset(image, total=rec["total_steps"], completed=rec["step"] + 1)
                else:
                    progress.update(image, completed=rec["step"] + 1, total=rec["total_steps"])

        df = run_bench(items, names, output, st, panels=panels, progress=tick, meta=meta, on_step=step)
    if df is not None:
        import shutil

        for src, dst in ((output / "results.csv", csv), (output / "summary.md", md)):
            if dst is not None:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst.with_name(dst.name + ".tmp"))
                dst.with_name(dst.name + ".tmp").replace(dst)
        _print_summary(df, names)
        console.print(f"results: {output}/results.csv, {output}/summary.md")


class Algorithm(str, Enum):
    reptile = "reptile"
    fomaml = "fomaml"


def _meta_default(name: str) -> str:
    from ..meta.train import MetaConfig

    return f"Default: the meta recipe's, else {getattr(MetaConfig(), name)}."


@app.command("meta-train")
def meta_train_cmd(
    output: Path = typer.Option(Path("cbid_meta_init"), "-o", "--output", help="Output folder (checkpoints, metrics.csv, init.safetensors)."),
    meta_recipe: Optional[str] = typer.Option(None, "--meta-recipe", "-m", help="Meta-training recipe: meta_default, meta_paper, meta_published_w32 or a TOML file. Default: the built-in settings below."),
    data: Optional[Path] = typer.Option(None, "--data", help="Extra folder of sharp images (added to the built-in source)."),
    kernel_min: Optional[int] = typer.Option(None, "--kernel-min", help="Smallest training kernel in pixels. " + _meta_default("kernel_min")),
    kernel_max: Optional[int] = typer.Option(None, "--kernel-max", help="Largest training kernel in pixels. " + _meta_default("kernel_max")),
    noise_max: Optional[float] = typer.Option(None, "--noise-max", help="Largest sigma of the noise added to training images. " + _meta_default("noise_max")),
    inner_steps: Optional[int] = typer.Option(None, "--inner-steps", help="Steps of the shortened per-task schedule. " + _meta_default("inner_steps")),
    meta_batch: Optional[int] = typer.Option(None, "--meta-batch", help="Tasks per outer step. " + _meta_default("meta_batch")),
    outer_steps: Optional[int] = typer.Option(None, "--outer-steps", help="Outer steps. " + _meta_default("outer_steps")),
    algorithm: Optional[Algorithm] = typer.Option(None, "--algorithm", help="reptile or fomaml. " + _meta_default("algorithm")),
    meta_sgd: Optional[bool] = typer.Option(None, "--meta-sgd/--no-meta-sgd", help="Learn per-group inner step sizes. " + _meta_default("meta_sgd")),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed of the task sampler and the initialisation. " + _meta_default("seed")),
    task_batch: Optional[int] = typer.Option(None, "--task-batch", help="Published recipes: tasks adapted together (stacked; fastest on a GPU), 1 one by one (fastest on a CPU), 0 all of a process's tasks. " + _meta_default("task_batch")),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/last.safetensors."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
):
    """Meta-train an INR initialiser (launch with torchrun for several processes)."""
    _check_output_dir(output)
    import dataclasses as dc
    import json as _json

    from ..evaluation.bench import peak_meter
    from ..meta.train import MetaConfig, load_meta_recipe, meta_train

    dev = _check_device(device)
    cfg = load_meta_recipe(meta_recipe) if meta_recipe else MetaConfig()
    over = {"data": str(data) if data else None, "kernel_min": kernel_min, "kernel_max": kernel_max, "noise_max": noise_max,
            "inner_steps": inner_steps, "meta_batch": meta_batch, "outer_steps": outer_steps,
            "algorithm": algorithm.value if algorithm else None, "meta_sgd": meta_sgd, "seed": seed, "task_batch": task_batch}
    cfg = dc.replace(cfg, **{k: v for k, v in over.items() if v is not None})
    with _progress() as progress, peak_meter() as pm:
        task = progress.add_task("meta-train", total=cfg.outer_steps)

        def tick(step, total, rec):
            progress.update(task, completed=step, description=f"meta-train (outer loss {rec['outer_loss']:.4f})")

        t = time.perf_counter()
        init = meta_train(cfg, output, resume=resume, device=dev, progress=tick)
        seconds = time.perf_counter() - t
    if init is not None:
        path = init.save(output / "init.safetensors")
        summary = {"train_seconds": round(seconds, 1), "train_peak_mib": round(pm.mib, 1), "processes": init.info.get("processes"),
                   "resumed": resume, "config": dc.asdict(cfg), **_provenance("cbid " + " ".join(sys.argv[1:]))}
        (output / "train_summary.json").write_text(_json.dumps(summary, indent=2))
        console.print(f"initialiser: {path} ({seconds:.0f} s, peak {pm.mib:.0f} MiB; step sizes {', '.join(f'{k} {v:.2g}' for k, v in init.lrs.items())})")


def _budget_list(text: str, flag: str) -> list[int]:
    try:
        bl = sorted({int(b) for b in text.split(",") if b.strip()})
    except ValueError:
        raise InputError(f"{flag} must be comma-separated integers, got '{text}'") from None
    if not bl or bl[0] < 3:
        raise InputError(f"{flag} needs at least one budget, each at least 3 steps")
    return bl


@app.command()
def compare(
    dataset: str = typer.Argument("levin", help="levin, synthetic, folder (with --data), or a folder (triples or plain blurry photos)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder."),
    init: Optional[Path] = typer.Option(None, "--init", help="Meta-learned initialiser (.safetensors). Default: the one packaged for --recipe."),
    budgets: str = typer.Option("40,80,160,800", "--budgets", help="Comma-separated step budgets, run for both modes."),
    meta_budgets: Optional[str] = typer.Option(None, "--meta-budgets", help="The meta mode's own budgets (default: --budgets)."),
    recipe: str = typer.Option("fast", "--recipe", "-r", help=RECIPE_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images."),
    kernel_size: Optional[str] = typer.Option(None, "--kernel-size", "-k", help="Kernel support in pixels (odd), or 'auto' to estimate it per image. Default: the true kernel's size + --kernel-margin (data without true kernels need it)."),
    kernel_margin: Optional[int] = typer.Option(None, "--kernel-margin", help="Pixels added to the true size (default: the initialiser's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help=SEED_HELP + " Every row records it."),
    output: Path = typer.Option(Path("cbid_compare"), "-o", "--output", help="Report folder (resumes if it holds results.csv)."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
):
    """Scratch vs meta-initialised on the same images: results.csv, summary.md, figures, report.html."""
    _check_output_dir(output)
    import shlex

    import torch

    from ..evaluation.compare import load_items, run_compare, write_report
    from ..meta import MetaInit, load_default_init

    dev = _check_device(device)
    bl = _budget_list(budgets, "--budgets")
    ml = _budget_list(meta_budgets, "--meta-budgets") if meta_budgets is not None else bl
    from ..config import resolve_seed

    seed = resolve_seed(recipe, seed)  # an unknown recipe is one error line before any run
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    meta_init = MetaInit.load(init) if init is not None else load_default_init(recipe)
    if meta_init is None:
        raise InputError("no initialiser: give --init PATH (cbid meta-train makes one)")
    from ..api import parse_kernel_size

    kernel_size = parse_kernel_size(kernel_size)
    items = load_items(dataset, data, limit, kernel_size)
    margin = meta_init.kernel_margin if kernel_margin is None else kernel_margin
    meta = _provenance("cbid " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    meta["threads"] = torch.get_num_threads()
    meta["device"] = dev
    meta["init"] = str(init) if init is not None else "packaged default"
    meta["recipe"] = recipe
    meta["seed"] = seed
    runs = [(it.name, m, b) for it in items for m, bs in (("scratch", bl), ("meta", ml)) for b in sorted(bs)]  # run_compare's order
    with _interrupt_says(lambda: _resume_line(output, runs, "runs", "{} {}@{}")), _progress() as progress:
        task = progress.add_task("compare", total=None, visible=False)  # shown from the first run: no empty bar before an error line

        def tick(done, total, label):
            progress.update(task, completed=done, total=total, description=label, visible=True)

        df = run_compare(items, meta_init, bl, output, recipe=recipe, margin=margin, seed=seed, device=dev, kernel_size=kernel_size, meta=meta, progress=tick, meta_budgets=ml)
    write_report(df, items, output, meta)
    from rich.table import Table

    t = Table(title="scratch vs meta (means over images)")
    for col in ("mode", "budget", "images", "PSNR", "SSIM", "L_fit", "median s"):
        t.add_column(col, justify="left" if col == "mode" else "right")
    for (mode, b), d in df.groupby(["mode", "budget"], sort=False):
        t.add_row(mode, str(b), str(len(d)), f"{d.psnr.mean():.2f}", f"{d.ssim.mean():.3f}", f"{d.fit_loss.mean():.2e}", f"{d.seconds.median():.1f}")
    Console().print(t)
    console.print(f"report: {output}/report.html")


class _interrupt_says:
    """On SIGINT / SIGTERM inside the block: print ``line()`` and exit 130 / 143."""

    def __init__(self, line):
        self.line = line

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, INTERRUPTS):
            console.print(self.line(), highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(code=_interrupt_code(exc)) from None
        return False


def _resume_line(output: Path, keys: list[tuple], what: str, label: str) -> str:
    """``interrupted: N of M <what> done (…); the same command resumes at <the first unfinished one>``,
    from the rows on disk (``OUT/rows``, one per finished pair / run)."""
    from ..evaluation.rows import RowStore

    store = RowStore(output / "rows", key=tuple(f"k{i}" for i in range(len(keys[0]) if keys else 1)))
    left = [k for k in keys if k not in store]
    done = f"interrupted: {len(keys) - len(left)} of {len(keys)} {what} done"
    if not left:
        return f"{done}; the same command writes the tables from {output}/rows"
    ckpt = output / "checkpoints" / f"{left[0][0]}__{left[0][1]}.pt"
    return f"{done} (rows in {output}/rows); the same command resumes at {label.format(*left[0])}" + (" from its checkpoint" if ckpt.is_file() else "")


def _provenance(command: str) -> dict:
    import os
    import subprocess

    import torch

    try:
        root = Path(__file__).resolve().parents[2]
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        rev = (rev + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    v = _versions()
    return {
        "command": command,
        "git_revision": rev,
        "date": v["date"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "torch": v["torch"],
        "python": v["python"],
    }


def _print_summary(df, methods) -> None:
    from rich.table import Table

    t = Table(title="mean per method")
    for col in ("method", "images", "PSNR", "SSIM", "error ratio", "kernel NCC", "median s"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for m in methods:
        d = df[df["method"] == m]
        if len(d):
            t.add_row(m, str(len(d)), f"{d.psnr.mean():.2f}", f"{d.ssim.mean():.3f}", f"{d.error_ratio.mean():.2f}", f"{d.kernel_ncc.mean():.3f}", f"{d.seconds.median():.1f}")
    Console().print(t)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class _Exit(CbidError):
    pass


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the typer app and turns every user error into one line."""
    import signal
    import threading

    old_term = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM: an exception, as SIGINT is (exit 143)
        old_term = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        rc = app(args=argv, standalone_mode=False)  # click returns Exit codes instead of raising here
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except _Terminated:
        console.print("error: interrupted (SIGTERM)")
        sys.exit(143)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("error: interrupted")
        sys.exit(130)
    except _cx.UsageError as exc:
        msg = exc.format_message().strip()
        if msg:  # bare `cbid` prints the help and raises an empty usage error
            console.print(f"error: {msg}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except CbidError as exc:
        console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("error: interrupted")
        sys.exit(130)
    except MemoryError:
        console.print("error: out of memory (try a smaller image or --device cuda)")
        sys.exit(3)
    except OSError as exc:
        where = getattr(exc, "filename", None)
        console.print(f"error: {exc.strerror or exc}" + (f": {where}" if where else ""), highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    main()
