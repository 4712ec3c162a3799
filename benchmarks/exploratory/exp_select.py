import sys, json, numpy as np
from pathlib import Path
from scipy import ndimage
from scipy.signal import fftconvolve
import cbid_meta.baselines.l0_map as L
from cbid_meta.evaluation.datasets import load_dataset
from cbid_meta.evaluation.bench import score
from cbid_meta.optim.nonblind import deconvolve
names = sys.argv[1].split(","); cache = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/cache/full")
over = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}  # L0Config overrides, e.g. '{"salient": 20}' (session 5)
out = Path("runs/kcache") / (cache.name + "".join(f"_{a}{b}" for a, b in over.items())); out.mkdir(parents=True, exist_ok=True)
orig = L._kernel_step
def step(*a, **kw):
    k = orig(*a, **kw)
    lab, n = ndimage.label(k > 0, structure=np.ones((3, 3)))
    if n > 1:
        sums = ndimage.sum(k, lab, index=np.arange(1, n + 1))
        for i, s in enumerate(sums):
            if s < 0.1: k[lab == i + 1] = 0.0
    return k / k.sum()
L._kernel_step = step
def crit(y, x, k):
    c = 20
    r = fftconvolve(x, k, mode="same") - y
    gx, gy = np.diff(x, axis=1)[c:-c, c:-c], np.diff(x, axis=0)[c:-c, c:-c]
    g = np.concatenate([gx.ravel(), gy.ravel()])
    return dict(res=float((r[c:-c, c:-c] ** 2).mean()), ns=float(np.abs(g).sum() / np.sqrt((g**2).sum())), l0=float((np.abs(g) > 0.02).mean()), ksz=int((k > 0).sum()))
for it in load_dataset("levin"):
    if it.name not in names: continue
    k0 = np.load(cache / f"{it.name}.npz")["kernel"]
    row = {"image": it.name}
    tags = (sys.argv[3] if len(sys.argv) > 3 else "ABC")
    for tag, tr in [t for t in (("A", 0.1), ("B", 0.0), ("C", None)) if t[0] in tags]:
        f = out / f"{it.name}_{tag}.npy"
        if f.exists(): k = np.load(f)
        elif tr is None:
            k = L.l0_kernel(it.blurry, L.L0Config(kernel_size=k0.shape[0], **over)); np.save(f, k)
        else:
            k = L.refine_kernel(it.blurry, k0, levels=99, iters=10, trim=tr, config=L.L0Config(**over)); np.save(f, k)
        x = deconvolve(it.blurry, k)
        s = score(it, x, k, None)
        row[tag] = dict(psnr=round(s["psnr"], 2), ncc=round(s["kernel_ncc"], 3), **{a: round(b, 6) for a, b in crit(it.blurry, x, k).items()})
    print(json.dumps(row), flush=True)
