"""Seconds per iteration of the published method on this machine, by U-Net width and implementation option.

Usage (from the repository root; run it alone on the machine)::

    .venv/bin/python benchmarks/paper_speed.py --out benchmarks/results/paper_speed.csv

One iteration is what the final stage of ``recipes/paper.toml`` does 3500
times per Levin image: render the 255 + K - 1 latent image (K = 23) and the
kernel, 1 - SSIM of their 'valid' convolution against a 255×255 observation,
backward, Adam step.  Options, each against ``cached`` (float32, contiguous
memory, the coordinate encoding of each scale computed once and reused):

* ``uncached``: the encoding recomputed every iteration;
* ``channels_last``: ``[image] channels_last = true`` (the recipe's default);
* ``bf16``: ``[image] autocast = "bf16"`` (forward pass in bfloat16);
* ``channels_last+bf16``: both;
* ``1 thread``: ``torch.set_num_threads(1)`` instead of the default;
* ``loop``: ``channels_last`` run by the per-image loop every run uses
  (:func:`cbid_meta.optim.loop.optimise`: explicit parameters,
  ``torch.func.functional_call``, BatchNorm without running statistics) instead of
  ``loss.backward()`` + ``torch.optim.Adam`` on the modules.

The median over ``--iters`` timed iterations after two warm-up iterations.

``--published`` times the published run itself instead
(:meth:`cbid_meta.optim.published.PublishedRun` on ``--batch`` problems of one
shape, stacked and mapped with ``torch.func.vmap``; the final stage's step:
scale 0, fit only) on ``--device`` (``cpu`` or ``cuda``): seconds per
iteration of the whole batch (``--iters`` iterations after five warm-up ones,
timed with the device synchronised at both ends), seconds per image of 5000
iterations (alone: ``s_per_iter × 5000``; throughput: divided by the batch)
and the peak GPU memory::

    python benchmarks/paper_speed.py --published --device cuda --widths 128,64,32 --batches 1,8,32 --out benchmarks/results/paper_speed_gpu.csv
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib, provenance, write_table  # noqa: E402

from cbid_meta.generators import FourierUNet, SirenKernel, fourier_encoding  # noqa: E402
from cbid_meta.losses import ssim_loss  # noqa: E402
from cbid_meta.physics import conv_valid  # noqa: E402

OPTIONS = ("cached", "uncached", "channels_last", "bf16", "channels_last+bf16", "1 thread", "loop")


def time_loop(width: int, size: int, ksize: int, iters: int) -> float:
    """Median seconds of one iteration of :func:`cbid_meta.optim.loop.optimise` (channels_last)."""
    from types import SimpleNamespace

    from torch.func import functional_call

    from cbid_meta.optim.deblur import Stage
    from cbid_meta.optim.loop import LoopState, optimise

    torch.manual_seed(0)
    net = FourierUNet(width=width, channels_last=True)
    torch.func.replace_all_batch_norm_modules_(net)
    ker = SirenKernel()
    lat = size + ksize - 1
    y = torch.rand(1, 1, size, size)
    params = {f"image.{k}": v.detach().clone() for k, v in net.named_parameters()}
    params |= {f"kernel.{k}": v.detach().clone() for k, v in ker.named_parameters()}
    group_of = {k: k.split(".")[0] for k in params}

    def loss(p, st):
        ip = {k[6:]: v for k, v in p.items() if k.startswith("image.")}
        kp = {k[7:]: v for k, v in p.items() if k.startswith("kernel.")}
        x = functional_call(net, ip, (net.encoding(lat, lat),))
        k = functional_call(ker, kp, (ker.coords(ksize), ksize))
        fit = ssim_loss(conv_valid(x, k), y)
        return fit, {"fit": fit}

    stamps: list[float] = []
    sch = SimpleNamespace(lr_gamma=0.5, lr_milestones=[], lr_decay=1.0)
    optimise(loss, LoopState(params), group_of, {"image": 5e-3, "kernel": 5e-5}, [Stage("final", (0,), iters + 2, False, 0.0)], sch,
             callback=lambda rec: stamps.append(rec["time"]))
    return statistics.median(b - a for a, b in zip(stamps[1:-1], stamps[2:]))


def time_option(width: int, option: str, size: int, ksize: int, iters: int) -> float:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    if option == "1 thread":
        torch.set_num_threads(1)
    net = FourierUNet(width=width, channels_last="channels_last" in option, autocast="bf16" if "bf16" in option else "none")
    ker = SirenKernel()
    lat = size + ksize - 1
    y = torch.rand(1, 1, size, size)
    opt = torch.optim.Adam([{"params": net.parameters(), "lr": 5e-3}, {"params": ker.parameters(), "lr": 5e-5}])
    times = []
    try:
        for i in range(iters + 2):
            t = time.perf_counter()
            code = fourier_encoding(lat, lat) if option == "uncached" else net.encoding(lat, lat)
            opt.zero_grad(set_to_none=True)
            loss = ssim_loss(conv_valid(net(code), ker.render(ksize)), y)
            loss.backward()
            opt.step()
            if i >= 2:
                times.append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)


def set_tf32(on: bool) -> None:
    """TF32 for float32 convolutions and matrix products on a CUDA device (PyTorch's default: on for
    convolutions through cuDNN, off for matrix products)."""
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def time_published(width: int, batch: int, size: int, ksize: int, iters: int, device: str, autocast: str = "none", tf32: str = "default") -> dict:
    """One row: the published run's final-stage step on ``batch`` problems (see the module doc); ``tf32``:
    ``default`` (PyTorch's settings as they are), ``on`` or ``off`` (:func:`set_tf32`)."""
    dev = torch.device(device)
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    if tf32 != "default":
        set_tf32(tf32 == "on")
    try:
        row = _time_published(dev, width, batch, size, ksize, iters, autocast)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    return {**row, "tf32_conv": saved[0] if tf32 == "default" else tf32 == "on", "tf32_matmul": saved[1] if tf32 == "default" else tf32 == "on"}


def _time_published(dev, width: int, batch: int, size: int, ksize: int, iters: int, autocast: str) -> dict:
    from cbid_meta.config import load_recipe
    from cbid_meta.optim.deblur import Stage
    from cbid_meta.optim.loop import LoopState, optimise
    from cbid_meta.optim.published import PublishedRun

    cfg = load_recipe("paper")
    cfg.image.width, cfg.kernel_size, cfg.image.autocast = width, ksize, autocast
    run = PublishedRun(cfg, dev)
    y = torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(0)).to(dev)
    prob, params, group_of = run.setup(y, 1, [cfg.seed + i for i in range(batch)])
    lrs = {"image": 5e-3, "kernel": 5e-5}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    state = optimise(prob.batched_loss, LoopState(params), group_of, lrs, [Stage("final", (0,), 5, False, 0.0)], cfg.schedule, record_every=5)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t = time.perf_counter()
    optimise(prob.batched_loss, LoopState(state.params), group_of, lrs, [Stage("final", (0,), iters, False, 0.0)], cfg.schedule, record_every=iters)
    sync()
    s = (time.perf_counter() - t) / iters
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {"device": name, "torch": torch.__version__, "width": width, "batch": batch, "autocast": autocast, "s_per_iter": s,
            "s_per_image_alone": s * 5000, "s_per_image_throughput": s * 5000 / batch,
            "peak_gpu_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")}


def main_published(a) -> int:
    rows = []
    for w in (int(v) for v in a.widths.split(",")):
        for b in (int(v) for v in a.batches.split(",")):
            for ac in a.autocast.split(","):
                r = time_published(w, b, a.size, a.kernel_size, a.iters, a.device, ac, a.tf32)
                rows.append(r)
                print(f"{r['device']} width {w:>3} batch {b:>2} {ac:<5} tf32 {a.tf32:<7} {r['s_per_iter'] * 1000:8.1f} ms/it  "
                      f"{r['s_per_image_alone']:7.1f} s/image alone  {r['s_per_image_throughput']:6.1f} s/image throughput  "
                      f"{r['peak_gpu_mib']:8.0f} MiB", flush=True)
    df = pd.DataFrame(rows)
    meta = provenance() | {"size": f"{a.size}x{a.size}, kernel {a.kernel_size}", "iters": a.iters, "step": "published final stage (scale 0, fit only)",
                           "note": "run alone on the machine"}
    write_table(df, a.out, meta)
    lines = ["# Seconds per iteration of the published run (PublishedRun, batched)", ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", df.to_markdown(index=False, floatfmt=".4f")]
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", default="128,64,32")
    ap.add_argument("--options", default=",".join(OPTIONS))
    ap.add_argument("--size", type=int, default=255)
    ap.add_argument("--kernel-size", type=int, default=23)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/paper_speed.csv"))
    ap.add_argument("--published", action="store_true", help="time PublishedRun's batched step (see --device, --batches)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="1", help="with --published: problems per batch, comma-separated")
    ap.add_argument("--autocast", default="none", help="with --published: none and/or bf16, comma-separated")
    ap.add_argument("--tf32", choices=("default", "on", "off"), default="default",
                    help="with --published on CUDA: TF32 for float32 convolutions and matrix products (default: PyTorch's settings)")
    a = ap.parse_args(argv)
    if a.published:
        return main_published(a)
    rows = []
    for w in (int(v) for v in a.widths.split(",")):
        base = None
        for opt in a.options.split(","):
            s = time_loop(w, a.size, a.kernel_size, a.iters) if opt == "loop" else time_option(w, opt, a.size, a.kernel_size, a.iters)
            base = s if opt == "cached" else base
            rows.append({"width": w, "option": opt, "s_per_iter": s, "speedup_vs_cached": (base / s) if base else float("nan"),
                         "hours_per_5000": s * 5000 / 3600})
            print(f"width {w:>3} {opt:<14} {s:.3f} s/it", flush=True)
    df = pd.DataFrame(rows)
    meta = provenance() | {"size": f"{a.size}x{a.size}, kernel {a.kernel_size}", "iters": a.iters, "peak_mib": round(peak_rss_mib()),
                           "note": "run alone on the machine"}
    write_table(df, a.out, meta)
    lines = ["# Seconds per iteration of the published method", ""] + [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", df.to_markdown(index=False, floatfmt=".3f")]
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
