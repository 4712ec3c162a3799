import sys, time, numpy as np
from pathlib import Path
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.evaluation.bench import BenchSettings, run_method, score
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
items = load_dataset("levin")
st = BenchSettings(recipe=sys.argv[2] if len(sys.argv) > 2 else "fast")
names = sys.argv[3].split(",") if len(sys.argv) > 3 else None
items = [i for i in items if names is None or i.name in names]
for it in items:
    f = out / f"{it.name}.npz"
    if f.exists(): continue
    t = time.perf_counter()
    x, k, info = run_method("full", it, st)
    s = score(it, x, k, None)
    np.savez(f, kernel=k, seconds=time.perf_counter() - t, psnr=s["psnr"], ncc=s["kernel_ncc"])
    print(it.name, round(s["psnr"], 2), round(s["kernel_ncc"], 3), flush=True)
