"""Session 5: score every cached kernel hypothesis the way the pipeline does.

    exp_scores.py > runs/scores.log

For each Levin image with all three caches of ``exp_select.py`` (base
``runs/kcache/full``, ``_prune0.02``, ``_salient20``) and hypotheses A
(polished INR kernel) and C (L0 MAP from scratch on the full support), prints
one JSON line: PSNR (hyper-Laplacian λ 5000), the gradient sparsity of the
deconvolution at λ 1000 / 5000 / 20000 with ``select_kernel``'s crop, and the
number of non-zero taps.  ``exp_report.py hyps runs/scores.log`` summarises."""
import json

import numpy as np
from pathlib import Path

from cbid_meta.baselines.l0_map import gradient_sparsity
from cbid_meta.evaluation.bench import score
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.optim.nonblind import deconvolve

DIRS = {"b": "runs/kcache/full", "p": "runs/kcache/full_prune0.02", "s": "runs/kcache/full_salient20"}
for it in load_dataset("levin"):
    if not all(Path(f"{d}/{it.name}_{t}.npy").exists() for d in DIRS.values() for t in "AC"):
        continue
    row = {"image": it.name}
    for d, path in DIRS.items():
        for t in "AC":
            k = np.load(f"{path}/{it.name}_{t}.npy")
            crop = k.shape[0] // 2 + 5
            r = {}
            for lam in (1000, 5000, 20000):
                x = deconvolve(it.blurry, k, lam=lam)
                r[f"ns{lam}"] = gradient_sparsity(x, crop)
                if lam == 5000:
                    r["psnr"] = score(it, x, k, None)["psnr"]
            r["nnz"] = int((k > 0).sum())
            r["side"] = int(k.shape[0])
            row[d + t] = r
    print(json.dumps(row), flush=True)
