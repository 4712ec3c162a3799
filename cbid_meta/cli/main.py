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


def _run_one(path: Path, cfg, device: str, outdir: Path, progress: Progress, recipe: str) -> dict:
    from ..generators import auto_coarsest_scale
    from ..io import load_image, save_image, save_json, save_kernel
    from ..optim import Deblurrer, plan_stages

    y = load_image(path)
    deb = Deblurrer(cfg, device)
    requested = getattr(cfg, "_requested_steps", None)
    if requested is not None:
        s0 = deb.coarsest_scale(*y.shape[:2])
        cfg = cfg.with_total_steps(requested, s0 + 1)
        deb = Deblurrer(cfg, device)
    s0 = deb.coarsest_scale(*y.shape[:2])
    total = sum(st.steps for st in plan_stages(cfg, s0))
    task = progress.add_task(path.name, total=total)
    res = deb.run(y, callback=lambda rec: progress.update(task, advance=1))
    stem = path.stem
    outdir.mkdir(parents=True, exist_ok=True)
    save_image(outdir / f"{stem}_deblurred.png", res.image)
    save_kernel(outdir / f"{stem}_kernel.png", res.kernel)
    record = {
        "input": str(path),
        "recipe": recipe,
        "seconds": round(res.seconds, 3),
        "final_losses": res.final_losses,
        "info": res.info,
        "settings": res.config,
        "kernel": res.kernel.tolist(),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    save_json(outdir / f"{stem}.json", record)
    return record


@app.command()
def deblur(
    inputs: List[Path] = typer.Argument(..., help="Blurry image file(s)."),
    output: Path = typer.Option(Path("cbid_out"), "-o", "--output", help="Output folder."),
    kernel_size: Optional[int] = typer.Option(None, "--kernel-size", "-k", help="Kernel support in pixels (default: the recipe's)."),
    recipe: str = typer.Option("fast", "--recipe", "-r", help="Recipe name (fast, paper) or path to a TOML file."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimisation steps (stages rescaled)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same machine: same result)."),
    device: Device = typer.Option(Device.cpu, "--device", help="cpu or cuda."),
):
    """Deblur images: writes <name>_deblurred.png, <name>_kernel.png and <name>.json per input."""
    dev = _check_device(device)
    cfg = _config(recipe, kernel_size, steps, seed)
    failures = 0
    with _progress() as progress:
        for path in inputs:
            try:
                rec = _run_one(path, cfg, dev, output, progress, recipe)
                progress.console.print(f"[green]ok[/] {path} → {output}/{path.stem}_deblurred.png ({rec['seconds']:.1f} s)")
            except CbidError as exc:
                failures += 1
                progress.console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
    if failures:
        raise _Exit(f"{failures} of {len(inputs)} input(s) failed")


@app.command()
def demo(
    output: Path = typer.Option(Path("cbid_demo"), "-o", "--output", help="Output folder."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimisation steps."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = typer.Option(Device.cpu, "--device"),
):
    """Run the main job on the embedded demo (scikit-image's camera blurred by a motion kernel)."""
    import numpy as np

    from ..data import demo_pair
    from ..io import save_image, save_json, save_kernel
    from ..optim import Deblurrer

    dev = _check_device(device)
    y, x, k = demo_pair(size=128, kernel_size=15, seed=seed)
    cfg = _config("fast", 15, None, seed)
    if steps is not None:
        cfg = cfg.with_total_steps(steps, 2)
    output.mkdir(parents=True, exist_ok=True)
    save_image(output / "demo_blurry.png", y)
    save_image(output / "demo_sharp.png", x)
    save_kernel(output / "demo_true_kernel.png", k)
    with _progress() as progress:
        task = progress.add_task("demo", total=None)
        res = Deblurrer(cfg, dev).run(y, callback=lambda rec: progress.update(task, advance=1))
    from ..evaluation import levin_scores

    before = levin_scores(y, x, crop=10)
    after = levin_scores(res.image.astype(np.float64), x, crop=10)
    save_image(output / "demo_deblurred.png", res.image)
    save_kernel(output / "demo_kernel.png", res.kernel)
    save_json(output / "demo.json", {"psnr_blurry": before["psnr"], "psnr_deblurred": after["psnr"], "seconds": res.seconds, "info": res.info})
    console.print(
        f"demo: PSNR {before['psnr']:.2f} dB (blurry) → {after['psnr']:.2f} dB (deblurred) in {res.seconds:.1f} s; outputs in {output}/"
    )


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
        app(args=argv, standalone_mode=False)
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
        console.print(f"error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})", highlight=False, markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
