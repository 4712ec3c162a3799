"""Session 5: PSNR of the selected kernel (A/C of exp_select.py's cache, chosen by
sparsity at lam 5000) under other non-blind settings.  exp_nonblind.py KCACHE LAM,... [ALPHA,...]"""
import sys
import numpy as np
from pathlib import Path
from cbid_meta.baselines.l0_map import select_kernel
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.evaluation.bench import score
from cbid_meta.optim.nonblind import deconvolve

kc = Path(sys.argv[1]); lams = [float(v) for v in sys.argv[2].split(",")]
alphas = [float(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0.8]
res = {}
for it in load_dataset("levin"):
    fa, fc = kc / f"{it.name}_A.npy", kc / f"{it.name}_C.npy"
    if not (fa.exists() and fc.exists()):
        continue
    ks = [np.load(fa), np.load(fc)]
    pick, _ = select_kernel(it.blurry, ks)
    row = []
    for a in alphas:
        for lam in lams:
            p = score(it, deconvolve(it.blurry, ks[pick], lam=lam, alpha=a), ks[pick], None)["psnr"]
            res.setdefault((a, lam), []).append(p)
            row.append(f"{p:.2f}")
    pt = score(it, deconvolve(it.blurry, it.kernel), it.kernel, None)["psnr"]
    print(it.name, "ACi"[pick], " ".join(row), "true@5000 %.2f" % pt, flush=True)
for (a, lam), v in res.items():
    print(f"alpha {a} lam {lam:g}: mean {np.mean(v):.2f} (n {len(v)})")
