import sys, json, time, numpy as np
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.evaluation.bench import score
from cbid_meta.baselines.l0_map import L0Config, l0_deblur
v = json.loads(sys.argv[1]); names = sys.argv[2].split(",")
res = []
for it in load_dataset("levin"):
    if it.name not in names: continue
    n = max(it.kernel.shape); n += 1 - n % 2 + int(sys.argv[3] if len(sys.argv) > 3 else 0)
    t = time.perf_counter()
    x, k = l0_deblur(it.blurry, n, L0Config(**v))
    s = score(it, x, k, None); res.append((s["psnr"], s["kernel_ncc"], time.perf_counter() - t))
    print(it.name, round(s["psnr"], 2), flush=True)
print("L0", json.dumps(v), "psnr %.2f ncc %.3f sec %.1f" % tuple(np.mean(res, 0)))
