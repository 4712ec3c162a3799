import sys, time, json, numpy as np
from pathlib import Path
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.evaluation.bench import score
from cbid_meta.baselines.l0_map import L0Config, l0_kernel, trim_support
from cbid_meta.optim.nonblind import deconvolve

cache = Path(sys.argv[1]); variant = json.loads(sys.argv[2]); names = sys.argv[3].split(",") if len(sys.argv) > 3 else None
items = [it for it in load_dataset("levin") if names is None or it.name in names]
res = []
for it in items:
    f = cache / f"{it.name}.npz"
    if not f.exists(): continue
    k0 = np.load(f)["kernel"]
    t = time.perf_counter()
    k = k0
    if variant.get("trim") is not None:
        k = trim_support(k, variant["trim"], variant.get("margin", 2))
    if variant.get("levels", 0) > 0:
        cfg = L0Config(iters=variant.get("iters", 10), prune=variant.get("prune", 0.05), gamma=variant.get("gamma", 2.0), cg_iters=variant.get("cg", 0))
        k = l0_kernel(it.blurry, cfg, k_init=k, levels=variant["levels"])
    x = deconvolve(it.blurry, k)
    s = score(it, x, k, None)
    res.append((it.name, float(np.load(f)["psnr"]), s["psnr"], s["kernel_ncc"], time.perf_counter() - t))
for r in res: print("%-12s %.2f -> %.2f ncc %.3f %.1fs" % r)
a = np.array([r[1:] for r in res])
print("VARIANT", json.dumps(variant), "n", len(res), "inr %.2f refined %.2f ncc %.3f sec %.1f" % tuple(a.mean(0)))
