import sys, numpy as np
from pathlib import Path
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.evaluation.budgets import run_budget
from cbid_meta.meta.init import MetaInit
mode, budget, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]); out.mkdir(parents=True, exist_ok=True)
names = sys.argv[4].split(",")
init = MetaInit.load("cbid_meta/meta/default_init.safetensors") if mode == "meta" else None
for it in load_dataset("levin"):
    if it.name not in names: continue
    r = run_budget(it, mode, budget, init)
    np.savez(out / f"{it.name}.npz", kernel=r["_kernel"], psnr=r["psnr"], ncc=r["kernel_ncc"], seconds=r["seconds"])
    print(it.name, round(r["psnr"], 2), round(r["seconds"], 1), flush=True)
