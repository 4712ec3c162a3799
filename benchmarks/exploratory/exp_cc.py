"""variant keys: init ('inr'|'scratch'), trim, margin, cc (min component mass), size_add (scratch: true+N), prune, center(bool)"""
import sys, time, json, numpy as np
from pathlib import Path
from scipy import ndimage
import cbid_meta.baselines.l0_map as L
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.evaluation.bench import score
from cbid_meta.optim.nonblind import deconvolve
v = json.loads(sys.argv[1]); names = sys.argv[2].split(",")
orig = L._kernel_step
def cleanup(k):
    if v.get("cc", 0) > 0:
        lab, n = ndimage.label(k > 0, structure=np.ones((3, 3)))
        if n > 1:
            sums = ndimage.sum(k, lab, index=np.arange(1, n + 1))
            for i, s in enumerate(sums):
                if s < v["cc"]: k[lab == i + 1] = 0.0
        k = k / k.sum()
    if v.get("center"):
        k = L.center_kernel(k)
    return k
def step(*a, **kw):
    return cleanup(orig(*a, **kw))
L._kernel_step = step
res = []
for it in load_dataset("levin"):
    if it.name not in names: continue
    t = time.perf_counter()
    cfg = L.L0Config(prune=v.get("prune", 0.05), iters=v.get("iters", 10))
    if v.get("init", "inr") == "inr":
        k0 = np.load(Path("runs/cache/full") / f"{it.name}.npz")["kernel"]
        k = L.refine_kernel(it.blurry, k0, levels=99, iters=cfg.iters, trim=v.get("trim", 0.0), config=cfg) if v.get("margin") is None else L.l0_kernel(it.blurry, cfg, k_init=L.trim_support(k0, v["trim"], v["margin"]), levels=99)
    else:
        n = max(it.kernel.shape); n += 1 - n % 2 + v.get("size_add", 10)
        cfg.kernel_size = n
        k = L.l0_kernel(it.blurry, cfg)
    x = deconvolve(it.blurry, k)
    s = score(it, x, k, None); res.append((s["psnr"], s["kernel_ncc"], time.perf_counter() - t))
    print(it.name, round(s["psnr"], 2), round(s["kernel_ncc"], 3), flush=True)
print("CC", json.dumps(v), "n", len(res), "psnr %.2f ncc %.3f sec %.1f" % tuple(np.mean(res, 0)), flush=True)
