"""Chatter of the published kernel generator's centring layer, by rule: roll changes per 1000 iterations and the PSNR they cost.

Usage (from the repository root)::

    .venv/bin/python benchmarks/centring_chatter.py --images im2_kernel2,im2_kernel6 --width 16 --steps 2000

Each image runs ``recipes/paper.toml`` shortened to ``--steps`` iterations at
U-Net width ``--width`` (the true kernel's size as the support) once per
centring rule (:func:`cbid_meta.physics.roll_to_centre`: ``public``, the
authors' two-tap window, and ``round``, a one-tap window) and seed.  A row
gives the roll changes of the finest rendered kernel per 1000 iterations
(:func:`cbid_meta.optim.published.roll_changes`), the PSNR of the INR output
at ±10 and ±5 px and the kernel NCC.  Finished rows are kept in ``--work``
(one JSON each) and never redone; the table is rewritten after every row.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, write_table  # noqa: E402


def run(item, rule: str, seed: int, a) -> dict:
    import torch

    from cbid_meta.config import load_recipe
    from cbid_meta.evaluation import kernel_similarity, levin_scores
    from cbid_meta.optim.deblur import stage2_blocks
    from cbid_meta.optim.published import PublishedRun, published_coarsest_scale

    cfg = load_recipe("paper")
    ks = item.kernel.shape[0]
    cfg.kernel_size = ks + (1 - ks % 2)
    cfg.image.width, cfg.kernel.centring, cfg.seed = a.width, rule, seed
    s0 = published_coarsest_scale(cfg.kernel_size, *item.blurry.shape)
    cfg = cfg.with_total_steps(a.steps, stage2_blocks(cfg, s0))
    y = torch.from_numpy(item.blurry.astype(np.float32))[None, None]
    res = PublishedRun(cfg, torch.device("cpu")).run_batch(y, s0, [seed])[0]
    sc = levin_scores(res.image.astype(np.float64), item.sharp)
    return {"image": item.name, "rule": rule, "seed": seed, "width": a.width, "iterations": res.info["steps"],
            "roll_changes_per_1000": res.info["roll_changes_per_1000"], "psnr": sc["psnr"], "psnr_shift5": sc.get("psnr_shift5", np.nan),
            "kernel_ncc": kernel_similarity(res.kernel, item.kernel)["ncc"], "final_fit": float(np.mean([h["fit"] for h in res.history[-50:]])),
            "seconds": res.seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--images", default="im2_kernel2")
    ap.add_argument("--rules", default="public,round")
    ap.add_argument("--seeds", default="2024")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("CBID_RUNS", Path.home() / ".cache" / "cbid_meta")) / "centring_chatter")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/centring_chatter.csv"))
    a = ap.parse_args(argv)
    from cbid_meta.evaluation import load_levin

    items = {d.name: d for d in load_levin(a.data)}
    a.work.mkdir(parents=True, exist_ok=True)
    prov = provenance()
    for name in a.images.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            for rule in a.rules.split(","):
                path = a.work / f"{name}__{rule}__s{seed}__w{a.width}__{a.steps}it.json"
                if path.exists():
                    continue
                row = run(items[name], rule, seed, a) | {"git_revision": prov["git_revision"], "date": prov["date"]}
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(row))
                os.replace(tmp, path)
                print(f"{name} {rule} seed {seed}: {row['roll_changes_per_1000']:.1f} roll changes / 1000 it, PSNR {row['psnr']:.2f} dB", flush=True)
    rows = [json.loads(p.read_text()) for p in sorted(a.work.glob("*.json"))]
    df = pd.DataFrame(rows).sort_values(["image", "seed", "rule"]).reset_index(drop=True)
    write_table(df, a.out, prov)
    lines = ["# Centring chatter by rule (published recipe, shortened)", ""] + [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in prov.items()]
    lines += ["", df.drop(columns=["git_revision", "date"]).to_markdown(index=False, floatfmt=".3f"), "",
              df.groupby("rule")[["roll_changes_per_1000", "psnr", "psnr_shift5", "kernel_ncc"]].mean().to_markdown(floatfmt=".3f")]
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
