"""The published method on Levin: one row per (image, width, seed), outputs kept, re-scorable, resumable across sessions.

Usage (from the repository root)::

    .venv/bin/python benchmarks/levin_paper.py --width 32                      # the one-per-kernel subset, the recipe's seed
    .venv/bin/python benchmarks/levin_paper.py --width 64 --images all --seeds 2024,1,2
    .venv/bin/python benchmarks/levin_paper.py --rescore                       # re-score every kept output, rewrite the tables
    .venv/bin/python benchmarks/levin_paper.py --report-only                   # rewrite the tables from finished rows

Each run (image × ``--width`` × seed of ``--seeds``) runs ``recipes/paper.toml``
(5000 iterations unless ``--steps``) with the true kernel's size as the
support (the paper's Levin protocol; no margin).  Its outputs are saved in
the work folder, ``outputs/<tag>_x.npy`` (the INR image, float32),
``outputs/<tag>_delta.npy`` (the ∆-protocol image: hyper-Laplacian
deconvolution of ``y`` with the estimated kernel, float32) and
``outputs/<tag>_kernel.npy`` (float64), each written atomically before the
row is stored; ``<tag>`` is e.g. ``im1_kernel1__w32__s2024``.  The row is then
scored from these arrays by :func:`score_outputs` (Levin protocol, 15-px
crop, 1/4-px grid): ``psnr`` with the 10-px shift search of SelfDeblur's
``statistic_levin.m`` and ``psnr_shift5`` with Levin's original 5 px, SSIM
and error ratio from the 10-px alignment, the same for the ∆ image
(``*_nonblind``), kernel NCC, and the blurry input and the true kernel's
non-blind deconvolution for reference.  ``--rescore`` re-scores every
finished row whose outputs are in the work folder (no optimisation) with the
same function and rewrites rows and tables; ``scored_at`` says which search
range a row's ``psnr`` used (10; 5 for a row without kept outputs scored
before the 10-px default).

The work folder (``--work``, not committed; default
``~/.cache/cbid_meta/levin_paper`` or ``$CBID_RUNS/levin_paper``) keeps per
run a finished row (never redone; :class:`~cbid_meta.evaluation.rows.RowStore`,
keyed by image, width, seed and ``--steps``), its outputs, a checkpoint every
``--checkpoint-every`` iterations (a stopped run resumes from it) and its
curve (PSNR of ``x`` and kernel NCC every ``--curve-every`` iterations).  The
folder records the method revision (:data:`METHOD`), recipe and margin; a
folder made with others is refused.  After every run the committed tables
are rewritten from all finished rows: ``--out`` (+ ``.md``) and ``--curve``.
A fresh work folder takes the finished rows of ``--out`` when that table was
written by the same method revision.

The code is split so that another execution path (e.g. several runs batched
on one GPU) can replace :func:`run_runs` alone: it receives the configured
:class:`Run` s and yields one :class:`RunOutput` per finished run; saving
(:func:`save_outputs`), scoring (:func:`score_outputs`) and storing rows
(:func:`finish`) do not depend on how the run was made.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, write_table  # noqa: E402

#: Columns written with six significant digits (the table's other floats keep four decimals).
FIT_COLUMNS = ("reblur_fit", "final_fit", "x_delta_gap", "kernel_edge_mass")

#: Method revision recorded in the work folder and the tables; a folder or table of another revision is not mixed in.
METHOD = "published-v2"
#: Search range (px) of the rows scored now (``scored_at``); rows without kept outputs scored before it say 5.
SCORED_AT = 10
LEGACY_SCORED_AT = 5

SUBSET = ("im1_kernel1", "im2_kernel2", "im3_kernel3", "im4_kernel4", "im1_kernel5", "im2_kernel6", "im3_kernel7", "im4_kernel8")

#: The columns :func:`score_outputs` writes (``--rescore`` replaces exactly these).
SCORE_COLUMNS = (
    "psnr", "psnr_shift5", "ssim", "error_ratio", "kernel_ncc",
    "psnr_nonblind", "psnr_nonblind_shift5", "ssim_nonblind", "error_ratio_nonblind",
    "psnr_blurry", "psnr_blurry_shift5", "psnr_true_kernel", "psnr_true_kernel_shift5",
    "shift_y", "shift_x", "shift5_y", "shift5_x", "reblur_fit", "x_delta_gap", "kernel_edge_mass", "kernel_spread",
)
#: Leading columns of the CSV table (the others follow in row order).
TABLE_COLUMNS = (
    "image", "width", "seed", "iterations", "psnr", "psnr_shift5", "ssim", "error_ratio", "kernel_ncc",
    "psnr_nonblind", "psnr_nonblind_shift5", "ssim_nonblind", "error_ratio_nonblind",
    "psnr_blurry", "psnr_blurry_shift5", "psnr_true_kernel", "psnr_true_kernel_shift5",
    "shift_y", "shift_x", "shift5_y", "shift5_x", "seconds", "s_per_iter", "cpu_share", "peak_mib", "scored_at",
)


def _tag(name: str, width: int, seed: int, steps: int | None) -> str:
    return f"{name}__w{width}__s{seed}" + (f"__{steps}it" if steps else "")


@dataclass
class Run:
    """One configured run: a Levin item, the U-Net width, the seed and the ``--steps`` override (None: the recipe's)."""

    item: object  # cbid_meta.evaluation.LevinImage (or anything with name, blurry, sharp, kernel)
    width: int
    seed: int
    steps: int | None = None

    @property
    def tag(self) -> str:
        return _tag(self.item.name, self.width, self.seed, self.steps)


@dataclass
class RunOutput:
    """What a finished run hands over: its outputs and how it ran (``info``: iterations, seconds, peak_mib, …)."""

    run: Run
    x: np.ndarray
    delta: np.ndarray | None
    kernel: np.ndarray
    info: dict = field(default_factory=dict)


# -- outputs ------------------------------------------------------------------
def output_paths(work: Path, tag: str) -> dict[str, Path]:
    """``{"x", "delta", "kernel"}`` -> ``work/outputs/<tag>_<name>.npy``."""
    return {k: Path(work) / "outputs" / f"{tag}_{k}.npy" for k in ("x", "delta", "kernel")}


def _save_npy(path: Path, a: np.ndarray) -> None:
    from cbid_meta.io import atomic_path

    tmp = atomic_path(path)
    try:
        with open(tmp, "wb") as f:
            np.save(f, a)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _as_saved(x, delta, kernel) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The arrays as they are kept: the images float32, the kernel float64."""
    return (np.asarray(x, dtype=np.float32), None if delta is None else np.asarray(delta, dtype=np.float32),
            np.asarray(kernel, dtype=np.float64))


def save_outputs(work: Path, tag: str, x: np.ndarray, delta: np.ndarray | None, kernel: np.ndarray) -> dict[str, Path]:
    """Write a run's outputs (each file atomically); returns their paths.  ``delta`` None: no ∆ file."""
    x, delta, kernel = _as_saved(x, delta, kernel)
    paths = output_paths(work, tag)
    _save_npy(paths["x"], x)
    if delta is not None:
        _save_npy(paths["delta"], delta)
    _save_npy(paths["kernel"], kernel)
    return paths


def load_outputs(work: Path, tag: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray] | None:
    """``(x, delta, kernel)`` of a run (``delta`` None if not kept), or None when ``x`` or the kernel is missing."""
    paths = output_paths(work, tag)
    if not (paths["x"].exists() and paths["kernel"].exists()):
        return None
    delta = np.load(paths["delta"]) if paths["delta"].exists() else None
    return np.load(paths["x"]), delta, np.load(paths["kernel"])


# -- scoring --------------------------------------------------------------------
_REFERENCES: dict[tuple, dict] = {}


def _references(item) -> dict:
    """The true kernel's non-blind deconvolution and the reference scores of one item (cached)."""
    from cbid_meta.evaluation import deconvolve, levin_scores

    blurry = np.asarray(item.blurry, dtype=np.float64)
    key = (item.name, blurry.shape, hashlib.sha1(blurry.tobytes()).hexdigest(), hashlib.sha1(np.asarray(item.kernel, dtype=np.float64).tobytes()).hexdigest())
    if key not in _REFERENCES:
        ref = deconvolve(blurry, item.kernel)
        b = levin_scores(blurry, item.sharp)
        t = levin_scores(ref, item.sharp)
        _REFERENCES[key] = {"reference": ref, "psnr_blurry": b["psnr"], "psnr_blurry_shift5": b["psnr_shift5"],
                            "psnr_true_kernel": t["psnr"], "psnr_true_kernel_shift5": t["psnr_shift5"]}
    return _REFERENCES[key]


def score_outputs(item, x: np.ndarray, kernel: np.ndarray, delta: np.ndarray | None) -> dict:
    """The score columns of one run (:data:`SCORE_COLUMNS`), from its outputs.

    ``psnr`` at the 10-px shift search, ``psnr_shift5`` at 5 px, ``ssim``,
    ``error_ratio`` (true-kernel reference aligned at 10 px as well) and the
    best translation ``shift_y``/``shift_x`` (10 px) and ``shift5_y``/``shift5_x``
    of the INR image ``x``; the same for the ∆ image ``delta`` (``*_nonblind``,
    NaN when None); ``kernel_ncc`` and ``kernel_spread`` (:func:`kernel_taps`); ``psnr_blurry`` and ``psnr_true_kernel``
    (and their ``_shift5``) for reference.  The arrays are scored as they are
    kept (images float32, kernel float64), so scoring a run's arrays after it
    finishes and re-scoring its saved files give the same numbers.
    """
    from cbid_meta.evaluation import kernel_similarity, levin_row_scores

    x, delta, kernel = _as_saved(x, delta, kernel)
    refs = _references(item)
    s = levin_row_scores(x.astype(np.float64), item.sharp, refs["reference"])
    out = {"psnr": s["psnr"], "psnr_shift5": s["psnr_shift5"], "ssim": s["ssim"], "error_ratio": s["error_ratio"],
           "kernel_ncc": kernel_similarity(kernel, item.kernel)["ncc"], "kernel_spread": kernel_taps(kernel) / kernel_taps(item.kernel)}
    if delta is not None:
        n = levin_row_scores(delta.astype(np.float64), item.sharp, refs["reference"])
        out.update(psnr_nonblind=n["psnr"], psnr_nonblind_shift5=n["psnr_shift5"], ssim_nonblind=n["ssim"], error_ratio_nonblind=n["error_ratio"])
    else:
        out.update(psnr_nonblind=math.nan, psnr_nonblind_shift5=math.nan, ssim_nonblind=math.nan, error_ratio_nonblind=math.nan)
    out.update({k: refs[k] for k in ("psnr_blurry", "psnr_blurry_shift5", "psnr_true_kernel", "psnr_true_kernel_shift5")})
    out.update(shift_y=s["shift"][0], shift_x=s["shift"][1], shift5_y=s["shift5"][0], shift5_x=s["shift5"][1])
    from cbid_meta.optim.published import reblur_fit

    out["reblur_fit"] = reblur_fit(x, kernel, item.blurry)  # no ground truth: what the restarts safeguard compares
    out.update(self_checks(x, kernel, delta))
    return {k: out[k] for k in SCORE_COLUMNS}


def kernel_taps(k: np.ndarray, frac: float = 0.9) -> int:
    """The fewest taps holding ``frac`` of a non-negative kernel's mass: how concentrated it is.  Divided by the
    true kernel's it is the row's ``kernel_spread`` (1: as concentrated as the truth; 3: its mass spread over three
    times the taps — a diffuse kernel the NCC barely sees, since NCC weighs the bulk of the mass)."""
    v = np.sort(np.clip(np.asarray(k, dtype=np.float64).ravel(), 0.0, None))[::-1]
    c = np.cumsum(v) / max(float(v.sum()), 1e-12)
    return int(min(np.searchsorted(c, frac - 1e-12), len(v) - 1)) + 1


def self_checks(x: np.ndarray, kernel: np.ndarray, delta: np.ndarray | None, border: int = 15) -> dict:
    """Two more no-ground-truth readings of a finished run, candidates for a restarts safeguard:
    ``x_delta_gap``, the RMS difference between the INR image and the ∆ image (the blurry input deconvolved
    with the run's own kernel) inside a ``border``-px margin — two restorations from one kernel that disagree
    point at a kernel or an image the data do not support; NaN without a ∆ image — and ``kernel_edge_mass``,
    the share of the kernel's mass within 2 px of its support's edge (:func:`cbid_meta.optim.photo.kernel_edge_mass`)."""
    from cbid_meta.optim.photo import kernel_edge_mass

    gap = math.nan
    if delta is not None:
        a, b = np.asarray(x, dtype=np.float64), np.asarray(delta, dtype=np.float64)
        if a.shape == b.shape and min(a.shape) > 2 * border:
            d = (a - b)[border:-border, border:-border]
            gap = float(np.sqrt(np.mean(d * d)))
    return {"x_delta_gap": gap, "kernel_edge_mass": kernel_edge_mass(kernel)}


def history_info(history: list[dict], cross_weight: float) -> dict:
    """Two readings of a run's loss record: ``final_fit``, the mean fit of its last 50 records, and ``cross_share``,
    the mean over the records with a cross term of λ·L_cross / L_fit (how much of the loss the cross-scale term is
    where it acts; NaN when it never acts, e.g. ``no_cross``)."""
    fit = [float(h["fit"]) for h in history[-50:]]
    shares = [cross_weight * float(h["cross"]) / float(h["fit"]) for h in history
              if float(h.get("cross", 0.0)) > 0 and float(h["fit"]) > 0]
    return {"final_fit": float(np.mean(fit)) if fit else math.nan,
            "cross_share": float(np.mean(shares)) if shares and cross_weight > 0 else math.nan}


# -- running --------------------------------------------------------------------
def configure(run: Run, a):
    """The recipe configuration and :class:`~cbid_meta.optim.Deblurrer` of one run."""
    from cbid_meta.config import load_recipe
    from cbid_meta.optim import Deblurrer

    cfg = load_recipe(a.recipe)
    ks = run.item.kernel.shape[0]
    cfg.kernel_size = ks + (1 - ks % 2) + a.kernel_margin
    cfg.image.width = run.width
    cfg.seed = run.seed
    deb = Deblurrer(cfg, a.device)
    if run.steps:
        from cbid_meta.optim import stage2_blocks

        cfg = cfg.with_total_steps(run.steps, stage2_blocks(cfg, deb.coarsest_scale(*run.item.blurry.shape)))
        deb = Deblurrer(cfg, a.device)
    return cfg, deb


class cpu_meter:
    """``share``: this process's CPU seconds over (wall seconds × torch threads) inside the block — about 1
    when the run had the cores it asked for, well below when another process shared them (a CPU timing
    counts only with a share near 1)."""

    def __enter__(self):
        import torch

        self.threads = torch.get_num_threads()
        self.t, self.c = time.perf_counter(), time.process_time()
        self.share = math.nan
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t
        self.share = (time.process_time() - self.c) / max(wall * self.threads, 1e-9)
        return False


def progress_printer(label: str):
    """A step callback printing ``label``'s progress (iterations, stage, fit, seconds, ETA) about once a minute."""
    last = [0.0]
    first: list = []  # (seconds, iterations) at this process's first step: a resumed run's rate excludes earlier sessions

    def progress(rec):
        done = rec["step"] + 1
        if not first:
            first.append((rec["time"], done - 1))
            last[0] = rec["time"]
        if rec["time"] - last[0] > 60 or done == rec["total_steps"]:
            last[0] = rec["time"]
            t0, s0 = first[0]
            eta = (rec["time"] - t0) / (done - s0) * (rec["total_steps"] - done) if done > s0 else float("nan")
            fit = rec["fit"] if isinstance(rec["fit"], list) else [rec["fit"]]
            print(f"  {label}: {done}/{rec['total_steps']} it, {rec['stage']} s{rec['scale']}, fit {', '.join(f'{f:.4f}' for f in fit)}, "
                  f"{rec['time']:.0f} s, ETA {eta / 60:.1f} min", flush=True)

    return progress


def run_one(run: Run, a, work: Path) -> RunOutput:
    """Optimise one run on this process (resuming from its checkpoint), writing its curve as it goes."""
    from cbid_meta.evaluation import kernel_similarity, levin_scores
    from cbid_meta.evaluation.bench import peak_meter
    from cbid_meta.optim.published import checkpoint_step, reblur_fit

    item, tag = run.item, run.tag
    cfg, deb = configure(run, a)
    curve_path = work / "curve" / f"{tag}.csv"
    curve_path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = work / "ckpt" / f"{tag}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = checkpoint_step(ckpt)
    curve = pd.read_csv(curve_path) if curve_path.exists() else pd.DataFrame()
    curve = curve[curve["iteration"] <= start] if not curve.empty else curve  # rows past the checkpoint are redone
    rows = curve.to_dict("records")

    def monitor(step, img, ker):
        s = levin_scores(img.astype(np.float64), item.sharp)
        rows.append({"image": item.name, "width": run.width, "seed": run.seed, "iteration": step, "psnr": s["psnr"], "psnr_shift5": s["psnr_shift5"],
                     "kernel_ncc": kernel_similarity(ker, item.kernel)["ncc"], "reblur_fit": reblur_fit(img, ker, item.blurry)})
        pd.DataFrame(rows).to_csv(curve_path, index=False)

    with peak_meter() as pm, cpu_meter() as cm:
        res = deb.run(item.blurry.astype(np.float32), callback=progress_printer(tag), checkpoint=ckpt, checkpoint_every=a.checkpoint_every,
                      monitor=monitor, monitor_every=a.curve_every, init=getattr(a, "init_obj", None))
    steps = res.info["steps"]
    info = {"iterations": steps, "seconds": res.seconds, "s_per_iter": res.seconds / max(steps, 1), "peak_mib": pm.mib, "cpu_share": cm.share,
            "init": getattr(a, "init_tag", None),
            "kernel_size": res.info["kernel_size"], "s0": res.info["coarsest_scale"], "parameters": res.info["parameters"],
            "threads": res.info["threads"], "device": res.info["device"], "resumed_from": res.info["resumed_from"],
            "roll_changes_per_1000": res.info.get("roll_changes_per_1000", math.nan), **history_info(res.history, cfg.loss.cross_weight)}
    return RunOutput(run, res.image, res.restored, res.kernel, info)


def run_batch(runs: list[Run], a, work: Path) -> list[RunOutput]:
    """Optimise runs of one shape (same kernel size, width and ``--steps``) together on this process:
    :meth:`~cbid_meta.optim.published.PublishedRun.run_batch` (stacked parameters, ``torch.func.vmap``),
    one checkpoint for the batch, a curve per run; then each run's ∆ image."""
    import torch

    from cbid_meta.config import RestorationConfig
    from cbid_meta.evaluation import kernel_similarity, levin_scores
    from cbid_meta.evaluation.bench import peak_meter
    from cbid_meta.optim.published import PublishedRun, checkpoint_step, reblur_fit
    from cbid_meta.pipeline import restore

    cfg, deb = configure(runs[0], a)
    shape = {(r.item.kernel.shape[0], r.item.blurry.shape, r.width, r.steps) for r in runs}
    assert len(shape) == 1, f"a batch needs one shape, got {shape}"
    tag = "batch__" + hashlib.sha1(",".join(r.tag for r in runs).encode()).hexdigest()[:12]
    ckpt = work / "ckpt" / f"{tag}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = checkpoint_step(ckpt)
    curves = {}
    for r in runs:
        path = work / "curve" / f"{r.tag}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        c = pd.read_csv(path) if path.exists() else pd.DataFrame()
        curves[r.tag] = (path, (c[c["iteration"] <= start] if not c.empty else c).to_dict("records"))

    def monitor(step, imgs, kers):
        for r, img, ker in zip(runs, imgs, kers):
            path, rows = curves[r.tag]
            sc = levin_scores(img.astype(np.float64), r.item.sharp)
            rows.append({"image": r.item.name, "width": r.width, "seed": r.seed, "iteration": step, "psnr": sc["psnr"],
                         "psnr_shift5": sc["psnr_shift5"], "kernel_ncc": kernel_similarity(ker, r.item.kernel)["ncc"],
                         "reblur_fit": reblur_fit(img, ker, r.item.blurry)})
            pd.DataFrame(rows).to_csv(path, index=False)

    progress = progress_printer(f"batch of {len(runs)} ({','.join(r.tag for r in runs)})")

    y = torch.from_numpy(np.stack([r.item.blurry for r in runs]).astype(np.float32))[:, None].to(deb.device)
    s0 = deb.coarsest_scale(*runs[0].item.blurry.shape)
    if deb.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(deb.device)
    with peak_meter() as pm, cpu_meter() as cm:
        init = getattr(a, "init_obj", None)
        if init is not None:
            init.check(cfg.image, cfg.kernel)
        results = PublishedRun(cfg, deb.device).run_batch(y, s0, [r.seed for r in runs], callback=progress, checkpoint=ckpt,
                                                          checkpoint_every=a.checkpoint_every, monitor=monitor, monitor_every=a.curve_every,
                                                          init=init.params if init is not None else None,
                                                          lrs=init.lrs if init is not None else None)
    gpu_mib = torch.cuda.max_memory_allocated(deb.device) / 2**20 if deb.device.type == "cuda" else math.nan
    device = torch.cuda.get_device_name(deb.device) if deb.device.type == "cuda" else "cpu"
    outs = []
    delta_cfg = RestorationConfig(method="hyper_laplacian", lam=cfg.restoration.lam)
    for r, res in zip(runs, results):
        delta = restore(np.asarray(r.item.blurry, dtype=np.float64), res.kernel, delta_cfg).astype(np.float32)
        steps = res.info["steps"]
        info = {"iterations": steps, "seconds": res.seconds, "s_per_iter": res.seconds / max(steps, 1), "peak_mib": pm.mib,
                "cpu_share": cm.share if deb.device.type == "cpu" else math.nan, "peak_gpu_mib": gpu_mib, "init": getattr(a, "init_tag", None), "kernel_size": res.info["kernel_size"], "s0": res.info["coarsest_scale"],
                "parameters": res.info["parameters"], "threads": res.info["threads"], "device": device,
                "resumed_from": res.info["resumed_from"], "batch": len(runs), "parallel": getattr(a, "parallel", 1),
                "roll_changes_per_1000": res.info["roll_changes_per_1000"], **history_info(res.history, cfg.loss.cross_weight)}
        outs.append(RunOutput(r, res.image, delta, res.kernel, info))
    return outs


def _shape_key(r: Run) -> tuple:
    return (r.item.kernel.shape[0], r.item.blurry.shape, r.width, r.steps)


def batches_of(runs: Iterable[Run], size: int) -> list[list[Run]]:
    """Runs grouped by shape (kernel size, image size, width, steps) in first-seen order, chunks of at most ``size``."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault(_shape_key(r), []).append(r)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), max(size, 1))]


def run_runs(runs: Iterable[Run], a, work: Path) -> Iterator[RunOutput]:
    """Run the configured runs on this process; yields each as it finishes.

    ``--batch 1`` (the default): one after the other (:func:`run_one`, the per-image
    path with its own checkpoint).  ``--batch N``: runs of one shape in batches of
    up to N (:func:`run_batch`).  With ``--deadline`` (seconds since the epoch) a
    batch that would end after it is skipped, its duration estimated from the
    previous batch (per problem-iteration) or ``--batch-seconds``."""
    runs = list(runs)
    single = getattr(a, "batch", 1) <= 1
    rate = None  # seconds per problem-iteration of the last batch (or run)
    for b in ([[r] for r in runs] if single else batches_of(runs, a.batch)):
        steps = b[0].steps or 5000
        est = rate * steps * len(b) if rate else getattr(a, "batch_seconds", None)
        deadline = getattr(a, "deadline", None)
        if deadline and est and time.time() + est > deadline:
            print(f"  skipped (deadline): {', '.join(r.tag for r in b)} would need about {est:.0f} s", flush=True)
            continue
        t = time.perf_counter()
        outs = [run_one(b[0], a, work)] if single else run_batch(b, a, work)
        rate = (time.perf_counter() - t) / (steps * len(b))
        yield from outs


def make_row(out: RunOutput, scores: dict, prov: dict) -> dict:
    """The table row of a finished run."""
    r = out.run
    row = {"image": r.item.name, "width": r.width, "seed": r.seed, **scores, **out.info,
           "scored_at": SCORED_AT, "method": METHOD, "git_revision": prov["git_revision"], "date": prov["date"], "steps": r.steps}
    if r.steps:
        row["note"] = f"--steps {r.steps}"
    row["mode"] = "meta" if row.get("init") else "scratch"
    return row


def finish(out: RunOutput, work: Path, store, prov: dict) -> dict:
    """Save a run's outputs, score them and store its row (in that order); returns the row."""
    x, delta, kernel = _as_saved(out.x, out.delta, out.kernel)
    save_outputs(work, out.run.tag, x, delta, kernel)
    row = make_row(out, score_outputs(out.run.item, x, kernel, delta), prov)
    store.add(row)
    return row


def run_image(item, a, work: Path, prov: dict, seed: int | None = None, store=None) -> dict:
    """Run (or resume) one (image, ``a.width``, seed): outputs saved, scored; returns its row (stored when ``store`` is given)."""
    if seed is None:
        seed = _seeds(a)[0]
    out = run_one(Run(item, a.width, int(seed), a.steps), a, work)
    if store is not None:
        return finish(out, work, store, prov)
    x, delta, kernel = _as_saved(out.x, out.delta, out.kernel)
    save_outputs(work, out.run.tag, x, delta, kernel)
    return make_row(out, score_outputs(item, x, kernel, delta), prov)


# -- rows -----------------------------------------------------------------------
def row_store(work: Path, recipe: str = "paper", kernel_margin: int = 0, init: str | None = None):
    """The finished rows of ``work`` (one JSON per image × width × seed [× --steps]); refuses another method revision,
    recipe, margin or initialiser (``init``: the sha256 of a meta-learned initialiser; a folder holds one kind of start)."""
    from cbid_meta.evaluation.rows import RowStore

    settings = {"method": METHOD, "recipe": recipe, "kernel_margin": kernel_margin}
    if init:
        settings["init"] = init
    return RowStore(Path(work) / "rows", key=("image", "width", "seed", "steps"),
                    settings=settings,
                    stem=lambda k: _tag(k[0], int(k[1]), int(k[2]), int(k[3]) if k[3] else None))


def _row_tag(store, row: dict) -> str:
    return store.path(store.key_of(row)).stem


def rescore(store, work: Path, items: dict, prov: dict | None = None) -> tuple[int, int]:
    """Re-score every finished row whose outputs are in ``work`` (``items``: name -> Levin item); returns (re-scored, kept).

    A re-scored row gets the :func:`score_outputs` columns and ``scored_at = 10``;
    a row without outputs (or whose image is not in ``items``) keeps its
    numbers, and its ``scored_at`` (5 when it has none: it was scored before
    the 10-px default)."""
    done = kept = 0
    for row in store.rows():
        tag = _row_tag(store, row)
        saved = load_outputs(work, tag)
        item = items.get(row.get("image"))
        if saved is None or item is None:
            if _missing(row.get("scored_at")):
                row["scored_at"] = LEGACY_SCORED_AT
                store.add(row)
            kept += 1
            continue
        x, delta, kernel = saved
        row.update(score_outputs(item, x, kernel, delta))
        row["scored_at"] = SCORED_AT
        if prov:
            row["scored_revision"] = prov["git_revision"]
        store.add(row)
        done += 1
    return done, kept


def import_runs(store, work: Path, src: Path, device_name: str | None = None, placement: str | None = None,
                recipe: str = "paper", kernel_margin: int = 0) -> int:
    """Copy the finished rows of the work folder ``src`` (same method revision, recipe and margin), with
    their outputs and curves, into ``work``; rows already there are left alone.  ``device_name`` and
    ``placement`` are written into the imported rows.  Returns the number of rows imported."""
    import shutil

    other = row_store(src, recipe, kernel_margin, getattr(store, "settings", {}).get("init"))  # refuses another revision, recipe, margin or start
    n = 0
    for row in other.rows():
        key = store.key_of(row)
        if key in store:
            continue
        tag = other.path(other.key_of(row)).stem
        for name, path in output_paths(src, tag).items():
            if path.exists():
                dest = output_paths(work, tag)[name]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
        curve = Path(src) / "curve" / f"{tag}.csv"
        if curve.exists():
            (Path(work) / "curve").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(curve, Path(work) / "curve" / curve.name)
        if device_name:
            row["device"] = device_name
        if placement:
            row["placement"] = placement
        row["imported_from"] = str(src)
        store.add(row)
        n += 1
    return n


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def seed_from_tables(a, store, work: Path) -> int:
    """Take the finished rows and curves of ``--out`` / ``--curve`` into ``work`` (those not there yet),
    when the table was written by this method revision (:data:`METHOD`)."""
    from cbid_meta.io import read_table_header

    if not a.out.exists() or read_table_header(a.out).get("method") != METHOD:
        return 0
    done = pd.read_csv(a.out, comment="#")
    if done.empty or "seed" not in done:
        return 0
    notes = done["note"] if "note" in done else pd.Series([None] * len(done))
    done["steps"] = [int(n.split()[-1]) if isinstance(n, str) and n.startswith("--steps") else None for n in notes]
    curve = pd.read_csv(a.curve, comment="#") if a.curve.exists() else pd.DataFrame()
    for row in done.to_dict("records"):
        tag = _row_tag(store, row)
        if not curve.empty and "seed" in curve and not (work / "curve" / f"{tag}.csv").exists() and store.key_of(row) not in store:
            c = curve[(curve["image"] == row["image"]) & (curve["width"] == row["width"]) & (curve["seed"] == row["seed"])]
            if "steps" in c:
                c = c[c["steps"].fillna(0).astype(int) == (0 if _missing(row["steps"]) else int(row["steps"]))].drop(columns="steps")
            if not c.empty:
                (work / "curve").mkdir(parents=True, exist_ok=True)
                c.to_csv(work / "curve" / f"{tag}.csv", index=False)
    return store.seed(done)


# -- tables ---------------------------------------------------------------------
def _steps_label(v) -> str:
    return "" if _missing(v) or not v else f", --steps {int(v)}"


def read_curve(path: Path) -> pd.DataFrame:
    """One run's curve file with its ``steps`` (from the tag: ``…__500it``; empty for the recipe's schedule)."""
    import re

    c = pd.read_csv(path)
    m = re.search(r"__(\d+)it$", Path(path).stem)
    return c.assign(steps=int(m.group(1)) if m else pd.NA)


def _curve_steps(c: pd.DataFrame) -> int:
    """A curve's ``--steps`` (0: the recipe's), as ``_steps`` of the rows."""
    if "steps" not in c or c["steps"].isna().all():
        return 0
    return int(c["steps"].dropna().iloc[0])


def gather(a, store, work: Path, prov: dict) -> pd.DataFrame | None:
    """Rewrite the committed tables (``--out``, its ``.md``, ``--curve``) from every finished row and curve in ``work``."""
    df = store.frame()
    if df.empty:
        return None
    if "steps" not in df:
        df["steps"] = None
    df["_steps"] = df["steps"].fillna(0).astype(int)
    df = df.sort_values(["_steps", "width", "image", "seed"]).reset_index(drop=True)
    lead = [c for c in TABLE_COLUMNS if c in df]
    df = df[lead + [c for c in df.columns if c not in lead]]
    meta = prov | {"method": METHOD, "recipe": a.recipe, "kernel_margin": a.kernel_margin,
                   "scoring": "psnr, ssim, error_ratio: Levin protocol with a 10-px shift search (SelfDeblur's statistic_levin.m); "
                              "psnr_shift5: 5 px (Levin's comp_upto_shift); scored_at: the range of a row's psnr",
                   "note": "rows may come from several sessions: each row has its own git_revision and date"}
    write_table(fits_six_digits(df.drop(columns="_steps").dropna(axis=1, how="all")), a.out, meta)
    curves = [read_curve(p) for p in sorted((work / "curve").glob("*.csv"))] if (work / "curve").is_dir() else []
    finished = {(r["image"], int(r["width"]), int(r["seed"]), int(r["_steps"])) for r in df.to_dict("records")}
    curves = [c for c in curves if not c.empty and "seed" in c
              and (c["image"].iloc[0], int(c["width"].iloc[0]), int(c["seed"].iloc[0]), _curve_steps(c)) in finished]
    curve = pd.concat(curves).sort_values(["steps", "width", "image", "seed", "iteration"], na_position="first") if curves else pd.DataFrame()
    if not curve.empty:
        write_table(fits_six_digits(curve), a.curve, meta)
    a.out.with_suffix(".md").write_text(markdown(df, meta, curve))
    return df


def fits_six_digits(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its :data:`FIT_COLUMNS` as six-significant-digit text (the safeguard compares fits
    that differ in the fourth decimal; the table's other floats keep four decimals)."""
    out = df.copy()
    for c in FIT_COLUMNS:
        if c in out:
            out[c] = [f"{v:.6g}" if not _missing(v) else "" for v in out[c]]
    return out


def _fmt_table(d: pd.DataFrame) -> str:
    d = d.astype(object).where(d.notna(), None)  # NaN shown as a dash
    return d.to_markdown(index=False, floatfmt=".3f", missingval="–")


def report_title(recipe: str) -> str:
    """The ``.md`` report's title line for a recipe given by name or by the path of its TOML file."""
    where = recipe if recipe.endswith(".toml") else f"recipes/{recipe}.toml"
    return f"# Levin, {'the published method' if recipe == 'paper' else 'the recipe ' + Path(recipe).stem} ({where})"


def markdown(df: pd.DataFrame, meta: dict, curve: pd.DataFrame | None = None) -> str:
    """The ``.md`` report: per width (and ``--steps``), the per-run table, means over images of the seed means,
    the spread over seeds, the images below blurry + 3 dB and the kernel plateau."""
    lines = [report_title(str(meta.get("recipe", "paper"))), ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    if "_steps" not in df:
        df = df.assign(_steps=df["steps"].fillna(0).astype(int) if "steps" in df else 0)
    for (steps, w), d in df.groupby(["_steps", "width"], sort=True):
        images = d["image"].nunique()
        seeds = sorted(int(s) for s in d["seed"].unique())
        on_subset = d[d["image"].isin(SUBSET)]["image"].nunique()
        lines += ["", f"## width {w}{_steps_label(steps)}: {images} image(s) × seed(s) {', '.join(map(str, seeds))} "
                      f"({len(d)} runs; {on_subset} of the 8-image subset)", ""]
        cols = [c for c in ("image", "seed", "iterations", "psnr", "psnr_shift5", "ssim", "error_ratio", "kernel_ncc", "psnr_nonblind",
                            "psnr_nonblind_shift5", "psnr_blurry", "psnr_true_kernel", "shift_y", "shift_x", "seconds", "scored_at") if c in d]
        lines.append(_fmt_table(d[cols]))
        lines += ["", summary_lines(d)]
        if curve is not None and not curve.empty:
            c = curve[curve["width"] == w]
            if "steps" in c:  # a --steps run has its own curve: never mixed with the recipe's
                c = c[c["steps"].fillna(0).astype(int) == int(steps)]
            c = c[c.set_index(["image", "seed"]).index.isin(d.set_index(["image", "seed"]).index)]
            p = plateau_table(c, w)
            if p:
                lines += ["", p]
    return "\n".join(lines) + "\n"


def summary_lines(d: pd.DataFrame) -> str:
    """Means over images of the per-image seed means, the spread over seeds, and the images below blurry + 3 dB (markdown)."""
    num = [c for c in ("psnr", "psnr_shift5", "ssim", "error_ratio", "kernel_ncc", "psnr_nonblind", "psnr_nonblind_shift5", "ssim_nonblind",
                       "error_ratio_nonblind", "psnr_blurry", "psnr_blurry_shift5", "psnr_true_kernel", "psnr_true_kernel_shift5") if c in d]
    per_image = d.groupby("image")[num].mean()
    mean = per_image.mean()

    def g(c):
        return mean.get(c, math.nan)

    rows = [
        {"image": "x (INR output)", "PSNR ±10": g("psnr"), "PSNR ±5": g("psnr_shift5"), "SSIM": g("ssim"), "error ratio": g("error_ratio")},
        {"image": "∆ (non-blind, estimated kernel)", "PSNR ±10": g("psnr_nonblind"), "PSNR ±5": g("psnr_nonblind_shift5"), "SSIM": g("ssim_nonblind"),
         "error ratio": g("error_ratio_nonblind")},
        {"image": "blurry input", "PSNR ±10": g("psnr_blurry"), "PSNR ±5": g("psnr_blurry_shift5"), "SSIM": math.nan, "error ratio": math.nan},
        {"image": "true kernel (non-blind)", "PSNR ±10": g("psnr_true_kernel"), "PSNR ±5": g("psnr_true_kernel_shift5"), "SSIM": math.nan, "error ratio": 1.0},
    ]
    out = [f"Mean over the {len(per_image)} images of each image's mean over its seeds (kernel NCC {g('kernel_ncc'):.3f}; "
           f"median seconds per run {d['seconds'].median():.0f}):" if "seconds" in d else
           f"Mean over the {len(per_image)} images of each image's mean over its seeds (kernel NCC {g('kernel_ncc'):.3f}):", "",
           _fmt_table(pd.DataFrame(rows))]
    for seed, ds in d.groupby("seed"):  # a seed that ran every image of the section: its own means, one run per image
        if ds["image"].nunique() == len(per_image) and len(per_image) > 1:
            below_s = int((ds["psnr"] < ds["psnr_blurry"] + 3.0).sum()) if "psnr_blurry" in ds else 0
            out += ["", f"Seed {int(seed)} alone on all {len(per_image)} images: x {ds['psnr'].mean():.2f} dB (±5 {ds['psnr_shift5'].mean():.2f})"
                        + (f", ∆ {ds['psnr_nonblind'].mean():.2f} dB" if "psnr_nonblind" in ds else "")
                        + f", kernel NCC {ds['kernel_ncc'].mean():.3f}"
                        + (f", median {ds['seconds'].median():.0f} s per image" if "seconds" in ds else "")
                        + (f"; blurry {ds['psnr_blurry'].mean():.2f} dB, true kernel {ds['psnr_true_kernel'].mean():.2f} dB"
                           if "psnr_true_kernel" in ds else "")
                        + f"; {below_s} below blurry + 3 dB, {int((ds['psnr'] < ds['psnr_blurry']).sum())} below blurry."]
    spread = d.groupby("image")["psnr"].agg(runs="count", mean="mean", min="min", max="max", std="std").reset_index()
    if "psnr_nonblind" in d:
        spread["mean ∆"] = d.groupby("image")["psnr_nonblind"].mean().to_numpy()
    out += ["", "PSNR of x (±10) over seeds, per image:", "", _fmt_table(spread)]
    if "psnr_blurry" in per_image:
        below = per_image.index[per_image["psnr"] < per_image["psnr_blurry"] + 3.0].tolist()
        runs_below = int((d["psnr"] < d["psnr_blurry"] + 3.0).sum())
        text = (f"Below blurry + 3 dB (seed mean of x): {len(below)} of {len(per_image)} images"
                + (f" ({', '.join(below)})" if below else "") + f"; {runs_below} of {len(d)} runs")
        if "psnr_nonblind" in per_image:
            below_d = int((per_image["psnr_nonblind"] < per_image["psnr_blurry"] + 3.0).sum())
            text += f"; ∆ image: {below_d} of {len(per_image)} images"
        out += ["", text + "."]
    multi = d.groupby("image").filter(lambda g: len(g) > 1)
    for col, what in SAFEGUARD_FITS.items():
        if col in d and not multi.empty and multi[col].notna().all():
            out += ["", safeguard_line(multi, col, what)]
    if "roll_changes_per_1000" in d and d["roll_changes_per_1000"].notna().any():
        r = d["roll_changes_per_1000"].dropna()
        out += ["", f"Centring chatter: {r.mean():.2f} roll changes per 1000 iterations on average ({r.min():.1f}–{r.max():.1f} over {len(r)} runs)."]
    if "scored_at" in d and (d["scored_at"] != SCORED_AT).any():
        old = d[d["scored_at"] != SCORED_AT]
        out += ["", f"{len(old)} run(s) scored at ±{LEGACY_SCORED_AT} px only (outputs not kept): "
                    + ", ".join(f"{r.image} s{int(r.seed)}" for r in old.itertuples()) + "; their `psnr` is the 5-px score."]
    return "\n".join(out)


#: the no-ground-truth criteria a restarts safeguard can keep a run by, as the report names them; ``reblur_fit`` is the
#: one :meth:`cbid_meta.optim.published.PublishedRun` uses, the others (lowest kept) are reported beside it
SAFEGUARD_FITS = {"reblur_fit": "its output re-blurred by its kernel against y",
                  "final_fit": "the optimisation's own fit loss, mean of its last 50 iterations",
                  "x_delta_gap": "the RMS gap between x and the ∆ image of its own kernel",
                  "kernel_edge_mass": "its kernel's mass within 2 px of the support's edge"}


def safeguard_line(multi: pd.DataFrame, col: str, what: str) -> str:
    """The restarts safeguard by ``col`` over the images with several seeds: per image the run with the lowest ``col``."""
    chosen = multi.loc[multi.groupby("image")[col].idxmin()]
    best = multi.groupby("image")["psnr"].max()
    worst = multi.groupby("image")["psnr"].min()
    seedmean = multi.groupby("image")["psnr"].mean()
    n = multi.groupby("image").size()
    margin = chosen["psnr"] - chosen["psnr_blurry"]
    text = (f"Restarts safeguard by `{col}` on the {len(chosen)} image(s) with several seeds ({int(n.min())}–{int(n.max())} each): "
            f"keeping per image the run with the lowest `{col}` ({what}; no ground truth) gives a mean "
            f"PSNR of x of {chosen['psnr'].mean():.3f} dB (∆ {chosen['psnr_nonblind'].mean():.3f}), against {seedmean.mean():.3f} "
            f"for the seed mean, {worst.mean():.3f} for the worst seed and {best.mean():.3f} for the best (an oracle); "
            f"it picks the best seed on {int((chosen.set_index('image')['psnr'] == best).sum())} of {len(chosen)} images "
            f"and costs one run per seed; the kept runs' smallest margin above the blurry input is "
            f"{margin.min():.2f} dB ({chosen.loc[margin.idxmin(), 'image']}).")
    ties = safeguard_ties(multi, col=col)
    if ties:
        low = multi.groupby("image")[col].transform("min")
        tied = multi[(multi[col] == low) & multi["image"].isin(ties)].groupby("image")["psnr"]
        lo, hi = chosen.set_index("image")["psnr"].copy(), chosen.set_index("image")["psnr"].copy()
        lo.loc[tied.min().index], hi.loc[tied.max().index] = tied.min(), tied.max()
        text += (" The lowest fits of " + ", ".join(ties) + f" are tied at the precision their rows were kept with (rows read "
                 f"back from a table that rounded `{col}` to 4 decimals): there the kept run is the first by seed, not a "
                 f"choice the fit made; with the ties broken either way, the safeguard's mean is {lo.mean():.3f}–{hi.mean():.3f} dB.")
    return text


def safeguard_ties(multi: pd.DataFrame, rounding: float = 1e-4, col: str = "reblur_fit") -> list[str]:
    """Images whose two lowest ``col`` values are equal and look rounded to ``rounding``
    (rows imported from a table written before fits kept six digits): the safeguard cannot tell them apart."""
    ties = []
    for name, g in multi.groupby("image"):
        f = np.sort(g[col].to_numpy(dtype=float))
        if len(f) > 1 and f[0] == f[1] and abs(f[0] / rounding - round(f[0] / rounding)) < 1e-6:
            ties.append(str(name))
    return ties


def plateau_table(curve: pd.DataFrame, width: int, tol: float = 0.01) -> str:
    """Per run: the first curve iteration whose kernel NCC is within ``tol`` of the run's best,
    the best NCC, and the PSNR of x at 2500 iterations and at the end (markdown)."""
    rows = []
    c = curve[curve["width"] == width]
    if c.empty:
        return ""
    for (name, seed), r in c.groupby(["image", "seed"]):
        r = r.sort_values("iteration")
        best = r["kernel_ncc"].max()
        at = r[r["kernel_ncc"] >= best - tol]["iteration"].iloc[0]
        mid = r[r["iteration"] == 2500]["psnr"]
        rows.append({"image": name, "seed": int(seed), f"NCC within {tol} of its best at": int(at), "best NCC": best,
                     "PSNR x at 2500": mid.iloc[0] if len(mid) else float("nan"), "PSNR x at end": r["psnr"].iloc[-1]})
    t = pd.DataFrame(rows)
    med = int(t[f"NCC within {tol} of its best at"].median())
    every = int(np.median(np.diff(np.sort(c["iteration"].unique())))) if c["iteration"].nunique() > 1 else int(c["iteration"].iloc[0])
    return (f"Kernel plateau (from the curve, every {every} iterations): median iteration {med}; "
            f"mean PSNR of x {t['PSNR x at 2500'].mean():.2f} dB at 2500 iterations, {t['PSNR x at end'].mean():.2f} dB at the end\n\n"
            + _fmt_table(t))


# -- command line ---------------------------------------------------------------
def _seeds(a) -> list[int]:
    if getattr(a, "seeds", None):
        return list(dict.fromkeys(int(s) for s in str(a.seeds).split(",") if s.strip()))
    from cbid_meta.config import load_recipe

    return [int(load_recipe(a.recipe).seed)]


def main(argv=None) -> int:
    from cbid_meta.errors import InputError

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Levin folder (default: $CBID_LEVIN_DIR or ../shared/data/levin)")
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--width", type=int, default=32, help="U-Net width (128 published, 64, 32)")
    ap.add_argument("--images", default="subset", help="'subset' (one image per kernel), 'all', or comma-separated names")
    ap.add_argument("--steps", type=int, default=None, help="override the recipe's 5000 iterations (kept apart in the tables)")
    ap.add_argument("--seeds", "--seed", dest="seeds", default=None, help="comma-separated seeds, each a run per image (default: the recipe's, 2024)")
    ap.add_argument("--kernel-margin", type=int, default=0, help="px added to the true kernel size")
    ap.add_argument("--init", type=Path, default=None,
                    help="a meta-learned initialiser of the published generators (cbid meta-train): every run starts from it, with its step "
                         "sizes; use a work folder and tables of their own (--work, --out, --curve)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--curve-every", type=int, default=250)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("CBID_RUNS", Path.home() / ".cache" / "cbid_meta")) / "levin_paper",
                    help="rows, outputs, checkpoints and curves (not committed; default outside the repository)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/levin_paper.csv"))
    ap.add_argument("--curve", type=Path, default=Path("benchmarks/results/levin_paper_curve.csv"))
    ap.add_argument("--report-only", action="store_true", help="only rewrite the tables from the finished rows")
    ap.add_argument("--rescore", action="store_true", help="re-score every finished row whose outputs are in --work (no optimisation), rewrite rows and tables")
    ap.add_argument("--subset-seeds", default="", help="extra comma-separated seeds for the images of the one-per-kernel subset")
    ap.add_argument("--batch", type=int, default=1, help="runs of one shape optimised together (stacked parameters, torch.func.vmap); 1: one at a time")
    ap.add_argument("--parallel", type=int, default=1, help="worker processes side by side, each taking whole batches (for a GPU)")
    ap.add_argument("--deadline", type=float, default=None, help="seconds since the epoch: batches that would end later are skipped")
    ap.add_argument("--batch-seconds", type=float, default=None, help="with --deadline: estimated seconds of a process's first batch")
    ap.add_argument("--runs", default=None, help=argparse.SUPPRESS)  # a worker's runs: image:seed,...
    ap.add_argument("--import-from", type=Path, default=None,
                    help="take the finished rows, outputs and curves of another machine's work folder (e.g. a GPU session's), then re-score them here")
    ap.add_argument("--device-name", default=None, help="with --import-from: the device the rows ran on (e.g. 'NVIDIA H200')")
    ap.add_argument("--placement", default=None, help="with --import-from: how they ran (e.g. '8 processes side by side')")
    a = ap.parse_args(argv)
    if a.device.startswith("cuda"):
        import torch

        torch.backends.cudnn.benchmark = True  # fixed shapes per stage: let cuDNN pick its fastest algorithms
    try:
        seeds = _seeds(a)
    except ValueError:
        ap.error(f"--seeds: comma-separated integers expected, got {a.seeds!r}")
    prov = provenance()
    a.init_obj, init_digest = None, None
    if a.init is not None:
        from cbid_meta.io.record import sha256_file
        from cbid_meta.meta import MetaInit

        try:
            a.init_obj = MetaInit.load(a.init)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not a.init_obj.published:
            print(f"error: {a.init} is not an initialiser of the published generators", file=sys.stderr)
            return 2
        from cbid_meta.config import load_recipe

        want = load_recipe(a.recipe)
        want.image.width = a.width
        try:
            a.init_obj.check(want.image, want.kernel)  # before any work
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        init_digest = sha256_file(a.init)[:16]
        a.init_tag = f"{a.init.name}@{init_digest}"
    try:
        store = row_store(a.work, a.recipe, a.kernel_margin, init_digest)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seeded = seed_from_tables(a, store, a.work)
    if seeded:
        print(f"{seeded} finished row(s) taken from {a.out}", flush=True)
    if a.report_only:
        gather(a, store, a.work, prov)
        return 0
    from cbid_meta.evaluation import load_levin

    items = load_levin(a.data)
    by_name = {d.name: d for d in items}
    if a.import_from:
        n = import_runs(store, a.work, a.import_from, a.device_name, a.placement, a.recipe, a.kernel_margin)
        print(f"{n} row(s) imported from {a.import_from}", flush=True)
    if a.rescore or a.import_from:
        done, kept = rescore(store, a.work, by_name, prov)
        print(f"{done} row(s) re-scored from their outputs; {kept} without outputs kept as they were", flush=True)
        gather(a, store, a.work, prov)
        return 0
    if a.images == "subset":
        names = list(SUBSET)
    elif a.images == "all":
        names = [d.name for d in items]
    else:
        names = a.images.split(",")
    unknown = [n for n in names if n not in by_name]
    if unknown:
        ap.error(f"unknown Levin image(s): {', '.join(unknown)}")
    try:
        extra = [int(v) for v in a.subset_seeds.split(",") if v.strip()]
    except ValueError:
        ap.error(f"--subset-seeds: comma-separated integers expected, got {a.subset_seeds!r}")
    if a.runs:
        pairs = [(n, int(sd)) for n, sd in (p.rsplit(":", 1) for p in a.runs.split(","))]
    else:
        pairs = [(n, sd) for n in names for sd in seeds] + [(n, sd) for n in names if n in SUBSET for sd in extra if sd not in seeds]
    runs = [Run(by_name[n], a.width, sd, a.steps) for n, sd in pairs]
    todo = []
    for i, r in enumerate(runs):
        if (r.item.name, r.width, r.seed, r.steps) in store:
            print(f"[{i + 1}/{len(runs)}] {r.tag}: done", flush=True)
        else:
            todo.append(r)
    if a.parallel > 1 and todo:
        run_parallel(a, todo, argv if argv is not None else sys.argv[1:])
        gather(a, store, a.work, prov)
        return 0
    n0 = len(runs) - len(todo)
    for i, out in enumerate(run_runs(todo, a, a.work), start=n0 + 1):
        row = finish(out, a.work, store, prov)
        print(f"[{i}/{len(runs)}] {out.run.tag}: PSNR x {row['psnr']:.2f} dB (±5: {row['psnr_shift5']:.2f}), nonblind {row['psnr_nonblind']:.2f} "
              f"(blurry {row['psnr_blurry']:.2f}, true kernel {row['psnr_true_kernel']:.2f}), kernel NCC {row['kernel_ncc']:.3f}, "
              f"{row['seconds']:.0f} s ({row['s_per_iter']:.3f} s/it), {row['peak_mib']:.0f} MiB", flush=True)
        if not a.runs:  # a worker leaves the tables to its parent
            gather(a, store, a.work, prov)
    if not a.runs:
        gather(a, store, a.work, prov)  # also when every run was finished already
    return 0


def run_parallel(a, todo: list[Run], argv: list[str]) -> None:
    """Spread the batches of ``todo`` over ``a.parallel`` worker processes (this script with ``--runs``),
    in order; each writes its rows, outputs and curves into the shared work folder; wait for all."""
    groups = batches_of(todo, max(a.batch, 1))
    shares = [groups[i :: a.parallel] for i in range(a.parallel)]
    base = []
    skip = False
    for tok in argv:  # the parent's own options, without --parallel / --runs
        if skip:
            skip = False
            continue
        if tok in ("--parallel", "--runs"):
            skip = True
            continue
        if tok.startswith(("--parallel=", "--runs=")):
            continue
        base.append(tok)
    logs = Path(a.work) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i, share in enumerate(s for s in shares if s):
        spec = ",".join(f"{r.item.name}:{r.seed}" for b in share for r in b)
        log = open(logs / f"worker{i}.log", "a")
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        procs.append((subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *base, "--runs", spec, "--parallel", "1"],
                                       stdout=log, stderr=subprocess.STDOUT, env=env), log, spec))
        print(f"worker {i}: {spec}", flush=True)
    for p, log, spec in procs:
        rc = p.wait()
        log.close()
        if rc:
            print(f"worker for {spec} exited with {rc} (see {logs})", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
