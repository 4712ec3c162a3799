"""Try recipe overrides on a few Levin images (the tool behind the design notes in docs/design.md).

    .venv/bin/python benchmarks/explore.py '{"loss": {"prior_weight": 0.003}}' im2_kernel2,im1_kernel4

Prints, per image, the Levin-protocol PSNR of the INR output, of a
hyper-Laplacian non-blind deconvolution with the *estimated* kernel, of the
blurry input, the kernel NCC against the truth, and the wall time.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from cbid_meta.config import load_recipe
from cbid_meta.evaluation import deconvolve, kernel_similarity, levin_scores, load_levin
from cbid_meta.optim import Deblurrer


def main(argv):
    overrides = json.loads(argv[0]) if argv else {}
    names = argv[1].split(",") if len(argv) > 1 else ["im2_kernel2"]
    recipe = overrides.pop("recipe", "fast")
    margin = overrides.pop("kernel_margin", 0)  # px added to the true kernel size
    fixed = overrides.pop("kernel_size", None)
    items = {d.name: d for d in load_levin()}
    out = []
    for name in names:
        d = items[name]
        cfg = load_recipe(recipe)
        cfg.kernel_size = fixed or d.kernel.shape[0] + (1 - d.kernel.shape[0] % 2) + margin
        for section, values in overrides.items():
            if isinstance(values, dict):
                for k, v in values.items():
                    setattr(getattr(cfg, section), k, v)
            else:
                setattr(cfg, section, values)
        t = time.perf_counter()
        res = Deblurrer(cfg).run(d.blurry)
        dt = time.perf_counter() - t
        p_inr = levin_scores(res.image.astype(np.float64), d.sharp)["psnr"]
        p_hl = levin_scores(deconvolve(d.blurry, res.kernel.astype(np.float64)), d.sharp)["psnr"]
        p_b = levin_scores(d.blurry, d.sharp)["psnr"]
        ncc = kernel_similarity(res.kernel, d.kernel)["ncc"]
        print(f"{name}: INR {p_inr:.2f} dB, HL-deconv(k_est) {p_hl:.2f} dB, blurry {p_b:.2f} dB, kernel NCC {ncc:.3f}, {dt:.1f} s", flush=True)
        out.append(p_inr)
    print(f"mean INR PSNR {np.mean(out):.2f} dB over {len(out)} image(s) ({json.dumps(overrides)})")


if __name__ == "__main__":
    main(sys.argv[1:])
