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
console = Console(stderr=True)


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


def _check_device(device: Device) -> str:
    import torch

    if device == Device.cuda and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    return device.value


def _config(recipe: str, kernel_size: Optional[int], steps: Optional[int], seed: int):
    from ..config import load_recipe

    cfg = load_recipe(recipe)
    if kernel_size is not None:
        if kernel_size < 3:
            raise InputError(f"--kernel-size must be at least 3, got {kernel_size}")
        cfg.kernel_size = kernel_size
    if steps is not None:
        if steps < 3:
            raise InputError(f"--steps must be at least 3, got {steps}")
        cfg._requested_steps = steps  # type: ignore[attr-defined]  # rescaled once S0 is known
    cfg.seed = seed
    return cfg


class Mode(str, Enum):
    meta = "meta"
    scratch = "scratch"


def _resolve_init(init: Optional[Path], mode: Optional["Mode"], recipe: str = "fast"):
    """The initializer to use (default: the one packaged for ``recipe``), or None for the from-scratch mode."""
    from ..meta import MetaInit, load_default_init

    if mode == Mode.scratch:
        if init is not None:
            raise InputError("--init given with --mode scratch; drop one of them")
        return None
    if init is not None:
        return MetaInit.load(init)
    default = load_default_init(recipe)
    if default is None and mode == Mode.meta:
        raise InputError("--mode meta needs --init PATH (no packaged initializer is installed)")
    return default


def _panel(before, after, kernel, max_width: int = 1600):
    """input | output side by side, the kernel (scaled to its max) in the output's top-left corner."""
    import numpy as np
    from skimage.transform import resize

    b = before if before.ndim == 3 else np.repeat(before[:, :, None], 3, axis=2)
    a = np.array(after if after.ndim == 3 else np.repeat(after[:, :, None], 3, axis=2), dtype=np.float64)
    side = max(32, min(a.shape[0], a.shape[1]) // 4)
    k = resize(kernel / max(kernel.max(), 1e-12), (side, side), order=0)
    a[2 : side + 2, 2 : side + 2] = k[:, :, None]
    gap = np.ones((b.shape[0], 8, 3))
    p = np.concatenate([b[:, :, :3], gap, a[:, :, :3]], axis=1)
    if p.shape[1] > max_width:
        f = max_width / p.shape[1]
        p = resize(p, (round(p.shape[0] * f), max_width), anti_aliasing=True)
    return p


def _run_one(path: Path, cfg, device: str, outdir: Path, progress: Progress, recipe: str, meta_init=None, region=None, noise=None, bits=None, panels=False) -> dict:
    import copy

    from ..io import image_info, load_image, save_image, save_json, save_kernel
    from ..optim import Deblurrer, plan_stages
    from ..optim.photo import auto_kernel_size, choose_region, deblur_photo, luminance

    img = load_image(path, gray=False)  # validates first: missing, directory, not an image, ...
    info = image_info(path)
    if img.shape[2] == 1:
        img = img[:, :, 0]
    cfg = copy.deepcopy(cfg)
    notes = []
    if info["alpha"]:
        notes.append("alpha channel dropped (deblurring acts on the colour channels)")
    lum = luminance(img)
    if cfg.kernel_size in (0, None, "auto"):
        cfg.kernel_size = auto_kernel_size(lum)
        notes.append(f"kernel size auto: {cfg.kernel_size}")
    region = region or choose_region(lum, 384)  # chosen once, passed on
    t, l, rh, rw = region
    requested = getattr(cfg, "_requested_steps", None)
    deb = Deblurrer(cfg, device)
    s0 = deb.coarsest_scale(min(rh, lum.shape[0]), min(rw, lum.shape[1]))
    if requested is not None:
        cfg = cfg.with_total_steps(requested, s0 + 1)
    total = sum(st.steps for st in plan_stages(cfg, s0))
    task = progress.add_task(path.name, total=total)
    res = deblur_photo(img, cfg, device, init=meta_init, region=region, noise=noise,
                       callback=lambda rec: progress.update(task, advance=1))
    stem = path.stem
    out_bits = bits or info["bits"]
    outdir.mkdir(parents=True, exist_ok=True)
    save_image(outdir / f"{stem}_deblurred.png", res.image, bits=out_bits)
    save_kernel(outdir / f"{stem}_kernel.png", res.kernel)
    if panels:
        save_image(outdir / f"{stem}_panel.png", _panel(img, res.image, res.kernel))
    record = {
        "input": str(path),
        "input_format": info,
        "output_bits": out_bits,
        "recipe": recipe,
        "mode": "meta" if meta_init is not None else "scratch",
        "init": (meta_init.info.get("path") if meta_init is not None else None),
        "seconds": round(res.seconds, 3),
        "notes": notes,
        "photo": res.info,
        "final_losses": res.estimate.final_losses,
        "info": res.estimate.info,
        "settings": res.estimate.config,
        "kernel": res.kernel.tolist(),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    save_json(outdir / f"{stem}.json", record)
    for n in notes:
        progress.console.print(f"note: {path.name}: {n}", highlight=False, markup=False)
    return record


def _parse_region(region: Optional[str]):
    if region is None:
        return None
    try:
        vals = tuple(int(v) for v in region.split(","))
        assert len(vals) == 4
        return vals
    except (ValueError, AssertionError):
        raise InputError(f"--region must be TOP,LEFT,HEIGHT,WIDTH in pixels, got '{region}'") from None


def _parse_noise(noise: Optional[str]):
    if noise is None or noise == "none":
        return None
    if noise == "auto":
        return noise
    try:
        v = float(noise)
    except ValueError:
        raise InputError(f"--noise must be a number (sigma in [0, 0.5)) or 'auto', got '{noise}'") from None
    if not 0 <= v < 0.5 or v != v:
        raise InputError(f"--noise must be in [0, 0.5), got {noise}")
    return v


@app.command()
def deblur(
    inputs: List[Path] = typer.Argument(..., help="Blurry image file(s)."),
    output: Path = typer.Option(Path("cbid_out"), "-o", "--output", help="Output folder."),
    kernel_size: Optional[str] = typer.Option(None, "--kernel-size", "-k", help="Kernel support in pixels, or 'auto' (default: the recipe's)."),
    recipe: str = typer.Option("fast", "--recipe", "-r", help="Recipe name (fast, paper) or path to a TOML file."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimisation steps (stages rescaled)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same machine: same result)."),
    device: Device = typer.Option(Device.cpu, "--device", help="cpu or cuda."),
    init: Optional[Path] = typer.Option(None, "--init", help="Meta-learned initializer (.safetensors); default: the one packaged for --recipe."),
    mode: Optional[Mode] = typer.Option(None, "--mode", help="meta (start from the initializer, shortened schedule) or scratch (the paper). Default: meta when an initializer is available."),
    region: Optional[str] = typer.Option(None, "--region", help="TOP,LEFT,HEIGHT,WIDTH of the crop used to estimate the kernel (default: automatic)."),
    noise: str = typer.Option("auto", "--noise", help="Noise sigma in [0, 0.5), 'auto' (estimate it; the default) or 'none' (the recipe's regularisation as is)."),
    bits: Optional[int] = typer.Option(None, "--bits", help="Output bit depth 8 or 16 (default: the input's)."),
    panels: bool = typer.Option(False, "--panels", help="Also write <name>_panel.png: input | output, kernel in the corner."),
):
    """Deblur images: writes <name>_deblurred.png, <name>_kernel.png and <name>.json per input.

    Colour: the kernel is estimated on the luminance and every channel is restored with it.
    Large photos: the kernel is estimated on a crop, the full image restored tile by tile."""
    dev = _check_device(device)
    if bits is not None and bits not in (8, 16):
        raise InputError(f"--bits must be 8 or 16, got {bits}")
    reg, sigma = _parse_region(region), _parse_noise(noise)
    if kernel_size is not None and kernel_size != "auto":
        try:
            kernel_size = int(kernel_size)
        except ValueError:
            raise InputError(f"--kernel-size must be an integer or 'auto', got '{kernel_size}'") from None
    cfg = _config(recipe, kernel_size if kernel_size != "auto" else None, steps, seed)
    if kernel_size == "auto":
        cfg.kernel_size = "auto"
    meta_init = _resolve_init(init, mode, recipe)
    if meta_init is not None and steps is None:
        cfg._requested_steps = meta_init.steps  # type: ignore[attr-defined]
    failures = 0
    with _progress() as progress:
        for path in inputs:
            try:
                rec = _run_one(path, cfg, dev, output, progress, recipe, meta_init, reg, sigma, bits, panels)
                progress.console.print(f"[green]ok[/] {path} → {output}/{path.stem}_deblurred.png ({rec['seconds']:.1f} s)")
            except CbidError as exc:
                failures += 1
                progress.console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
    if failures and len(inputs) == 1:
        raise typer.Exit(code=2)  # the one error line is already printed
    if failures:
        raise _Exit(f"{failures} of {len(inputs)} input(s) failed")


@app.command()
def demo(
    output: Path = typer.Option(Path("cbid_demo"), "-o", "--output", help="Output folder."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimisation steps."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = typer.Option(Device.cpu, "--device"),
    mode: Optional[Mode] = typer.Option(None, "--mode", help="meta (packaged initializer, when installed) or scratch."),
):
    """Run the main job on the embedded demo (scikit-image's camera blurred by a motion kernel)."""
    import numpy as np

    from ..data import demo_pair
    from ..io import save_image, save_json, save_kernel
    from ..optim import Deblurrer

    dev = _check_device(device)
    if steps is not None and steps < 3:
        raise InputError(f"--steps must be at least 3, got {steps}")
    meta_init = _resolve_init(None, mode)
    y, x, k = demo_pair(size=128, kernel_size=15, seed=seed)
    cfg = _config("fast", 25, None, seed)  # true support 15 + the benchmark's 10-px margin
    budget = steps or (meta_init.steps if meta_init is not None else None)
    if budget is not None:
        cfg = cfg.with_total_steps(budget, 2)
    output.mkdir(parents=True, exist_ok=True)
    save_image(output / "demo_blurry.png", y)
    save_image(output / "demo_sharp.png", x)
    save_kernel(output / "demo_true_kernel.png", k)
    with _progress() as progress:
        task = progress.add_task("demo", total=None)
        res = Deblurrer(cfg, dev).run(y, callback=lambda rec: progress.update(task, advance=1), init=meta_init)
    from ..evaluation import levin_scores

    before = levin_scores(y, x, crop=10)
    after = levin_scores(res.image.astype(np.float64), x, crop=10)
    save_image(output / "demo_deblurred.png", res.image)
    save_kernel(output / "demo_kernel.png", res.kernel)
    mode_used = "meta" if meta_init is not None else "scratch"
    save_json(output / "demo.json", {"psnr_blurry": before["psnr"], "psnr_deblurred": after["psnr"], "seconds": res.seconds, "mode": mode_used, "info": res.info})
    console.print(
        f"demo ({mode_used} mode, {res.info['steps']} steps): PSNR {before['psnr']:.2f} dB (blurry) → {after['psnr']:.2f} dB (deblurred) in {res.seconds:.1f} s; outputs in {output}/"
    )


@app.command()
def bench(
    dataset: str = typer.Argument(..., help="levin, synthetic, folder (with --data) or a folder path."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (levin: default ../shared/data/levin)."),
    methods: str = typer.Option(",".join(("full", "no_cross", "single_scale", "no_progressive", "l0_map", "blurry", "true_kernel")), "--methods", help="Comma-separated methods."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images."),
    output: Path = typer.Option(Path("cbid_bench"), "-o", "--output", help="Output folder (resumes if it holds earlier rows)."),
    recipe: str = typer.Option("fast", "--recipe", "-r", help="Recipe of the INR methods."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total INR steps (stages rescaled)."),
    kernel_margin: int = typer.Option(10, "--kernel-margin", help="Pixels added to the true kernel size for the INR methods."),
    kernel_size: Optional[int] = typer.Option(None, "--kernel-size", "-k", help="Kernel support for every method (needed without true kernels)."),
    n_images: int = typer.Option(24, "--n", help="synthetic: number of images."),
    noise: float = typer.Option(0.01, "--noise", help="synthetic: Gaussian noise sigma."),
    max_kernel: int = typer.Option(41, "--max-kernel", help="synthetic: largest kernel size."),
    panels: bool = typer.Option(True, "--panels/--no-panels", help="Write per-image PNG panels."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the gathered results table here."),
    md: Optional[Path] = typer.Option(None, "--md", help="Also write the summary here."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = typer.Option(Device.cpu, "--device"),
):
    """Benchmark methods x images: results.csv, summary.md and panels in OUTPUT (resumable; shard with torchrun/accelerate)."""
    import shlex

    from ..evaluation.bench import BenchSettings, run_bench
    from ..evaluation.datasets import load_dataset

    dev = _check_device(device)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if kernel_size is not None and kernel_size < 3:
        raise InputError(f"--kernel-size must be at least 3, got {kernel_size}")
    if not 0 <= noise < 0.5:
        raise InputError(f"--noise must be in [0, 0.5), got {noise}")
    if max_kernel < 5:
        raise InputError(f"--max-kernel must be at least 5, got {max_kernel}")
    sizes = tuple(range(13, max_kernel + 1, 4)) or (max_kernel,)
    if sizes[-1] != max_kernel:
        sizes = sizes + (max_kernel + 1 - max_kernel % 2,)
    items = load_dataset(dataset, data, limit, n=n_images, noise=noise, seed=seed, kernel_sizes=sizes)
    meta = _provenance("cbid " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    st = BenchSettings(recipe=recipe, steps=steps, seed=seed, kernel_margin=kernel_margin, kernel_size=kernel_size, device=dev)
    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    with _progress() as progress:
        task = progress.add_task("bench", total=None)
        image = progress.add_task("image", total=None, visible=False)

        def tick(done, total, label):
            progress.update(task, completed=done, total=total, description=f"{done}/{total} pairs")
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


@app.command("meta-train")
def meta_train_cmd(
    output: Path = typer.Option(Path("cbid_meta_init"), "-o", "--output", help="Output folder (checkpoints, metrics.csv, init.safetensors)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="Meta recipe TOML (e.g. recipes/meta_default.toml)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Extra folder of sharp images (added to the built-in source)."),
    kernel_min: Optional[int] = typer.Option(None, "--kernel-min", help="Smallest training kernel."),
    kernel_max: Optional[int] = typer.Option(None, "--kernel-max", help="Largest training kernel."),
    noise: Optional[float] = typer.Option(None, "--noise", help="Largest training noise sigma."),
    inner_steps: Optional[int] = typer.Option(None, "--inner-steps", help="Steps of the shortened per-task schedule."),
    meta_batch: Optional[int] = typer.Option(None, "--meta-batch", help="Tasks per outer step."),
    outer_steps: Optional[int] = typer.Option(None, "--outer-steps", help="Outer steps."),
    algorithm: Optional[Algorithm] = typer.Option(None, "--algorithm", help="reptile or fomaml."),
    meta_sgd: Optional[bool] = typer.Option(None, "--meta-sgd/--no-meta-sgd", help="Learn per-group inner step sizes."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/last.safetensors."),
    device: Device = typer.Option(Device.cpu, "--device"),
):
    """Meta-train an INR initialiser (launch with torchrun for several processes)."""
    import dataclasses as dc
    import json as _json

    from ..evaluation.bench import peak_meter
    from ..meta.train import MetaConfig, load_meta_recipe, meta_train

    dev = _check_device(device)
    cfg = load_meta_recipe(recipe) if recipe else MetaConfig()
    over = {"data": str(data) if data else None, "kernel_min": kernel_min, "kernel_max": kernel_max, "noise_max": noise,
            "inner_steps": inner_steps, "meta_batch": meta_batch, "outer_steps": outer_steps,
            "algorithm": algorithm.value if algorithm else None, "meta_sgd": meta_sgd, "seed": seed}
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
        console.print(f"initializer: {path} ({seconds:.0f} s, peak {pm.mib:.0f} MiB; step sizes {', '.join(f'{k} {v:.2g}' for k, v in init.lrs.items())})")


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
    init: Optional[Path] = typer.Option(None, "--init", help="Meta-learned initializer (default: the one packaged for --recipe)."),
    budgets: str = typer.Option("40,80,160,800", "--budgets", help="Comma-separated step budgets, run for both modes."),
    meta_budgets: Optional[str] = typer.Option(None, "--meta-budgets", help="The meta mode's own budgets (default: --budgets)."),
    recipe: str = typer.Option("fast", "--recipe", "-r", help="Recipe of both modes (fast, paper or a TOML file)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images."),
    kernel_size: Optional[int] = typer.Option(None, "--kernel-size", "-k", help="Kernel support (default: true size + margin)."),
    kernel_margin: Optional[int] = typer.Option(None, "--kernel-margin", help="Pixels added to the true size (default: the initializer's)."),
    seed: int = typer.Option(0, "--seed"),
    output: Path = typer.Option(Path("cbid_compare"), "-o", "--output", help="Report folder (resumes if it holds results.csv)."),
    device: Device = typer.Option(Device.cpu, "--device"),
):
    """Scratch vs meta-initialised on the same images: results.csv, summary.md, figures, report.html."""
    import shlex

    import torch

    from ..evaluation.compare import load_items, run_compare, write_report
    from ..meta import MetaInit, load_default_init

    dev = _check_device(device)
    bl = _budget_list(budgets, "--budgets")
    ml = _budget_list(meta_budgets, "--meta-budgets") if meta_budgets is not None else bl
    from ..config import load_recipe

    load_recipe(recipe)  # an unknown recipe is one error line before any run
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    meta_init = MetaInit.load(init) if init is not None else load_default_init(recipe)
    if meta_init is None:
        raise InputError("no initializer: give --init PATH (cbid meta-train makes one)")
    items = load_items(dataset, data, limit, kernel_size)
    margin = meta_init.kernel_margin if kernel_margin is None else kernel_margin
    meta = _provenance("cbid " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    meta["threads"] = torch.get_num_threads()
    meta["device"] = dev
    meta["init"] = str(init) if init is not None else "packaged default"
    meta["recipe"] = recipe
    with _progress() as progress:
        task = progress.add_task("compare", total=None)

        def tick(done, total, label):
            progress.update(task, completed=done, total=total, description=label)

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


def _provenance(command: str) -> dict:
    import datetime as dt
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
    return {
        "command": command,
        "git_revision": rev,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "torch": torch.__version__,
        "python": platform.python_version(),
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
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class _Exit(CbidError):
    pass


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the typer app and turns every user error into one line."""
    try:
        rc = app(args=argv, standalone_mode=False)  # click returns Exit codes instead of raising here
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("error: interrupted")
        sys.exit(130)
    except _cx.UsageError as exc:
        console.print(f"error: {exc.format_message()}", highlight=False, markup=False, soft_wrap=True)
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


if __name__ == "__main__":
    main()
