"""Print the summaries quoted in docs/design.md §8 and docs/meta.md (session 4).

    exp_report.py extent CACHE_DIR                  # extent of cached INR kernels vs the true kernels (im2)
    exp_report.py select LOG [LOG ...]              # exp_select.py JSON lines: A / C / selected / oracle means
    exp_report.py levin benchmarks/results/levin_core.csv   # per-kernel means, hypothesis choices
    exp_report.py hyps runs/scores.log              # session 5: selection among 2/4/6 hypotheses, blob guard, size gate
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def extent(cache):
    from cbid_meta.baselines.l0_map import center_kernel
    from cbid_meta.evaluation.datasets import load_dataset

    for it in load_dataset("levin"):
        if not it.name.startswith("im2"):
            continue
        k = center_kernel(np.load(Path(cache) / f"{it.name}.npz")["kernel"])
        n = k.shape[0]
        c = n // 2
        yy, xx = np.mgrid[:n, :n]
        r = np.maximum(abs(yy - c), abs(xx - c))
        kt = center_kernel(np.pad(it.kernel, (n - it.kernel.shape[0]) // 2))
        ext = lambda q, t: int(r[q > t * q.max()].max()) * 2 + 1  # noqa: E731
        print(it.name, "true size", it.kernel.shape[0], "INR extent @0.1", ext(k, 0.1), "true extent @0.1", ext(kt, 0.1))


def select(logs):
    for log in logs:
        rows = [json.loads(line) for line in open(log) if line.startswith("{")]
        a = np.array([r["A"]["psnr"] for r in rows])
        c = np.array([r["C"]["psnr"] for r in rows])
        pick_a = np.array([r["A"]["ns"] <= r["C"]["ns"] for r in rows])
        out = f"{log}: n {len(rows)} A {a.mean():.2f} C {c.mean():.2f} selected(A,C) {np.where(pick_a, a, c).mean():.2f} A chosen {pick_a.sum()} oracle {np.maximum(a, c).mean():.2f}"
        if all("B" in r for r in rows):
            b = np.array([r["B"]["psnr"] for r in rows])
            best = [min("ABC", key=lambda t: (r[t]["ns"], -r[t]["psnr"])) for r in rows]
            out += f" B {b.mean():.2f} selected(A,B,C) {np.mean([r[t]['psnr'] for r, t in zip(rows, best)]):.2f}"
        print(out)
        for r, pa in zip(rows, pick_a):
            if pa:
                print("   A chosen:", r["image"], r["A"]["psnr"], "vs C", r["C"]["psnr"])


def levin(csv):
    d = pd.read_csv(csv, comment="#")
    k = d.image.str.extract(r"kernel(\d+)")[0]
    print("mean PSNR per kernel:", d.groupby(k).psnr.mean().round(2).to_dict())
    print("without kernel 4: %.2f" % d[k != "4"].psnr.mean(), " kernel 4: %.2f" % d[k == "4"].psnr.mean())
    print("choices:", d.refine_choice.value_counts().to_dict(), "mean PSNR per choice:", d.groupby("refine_choice").psnr.mean().round(2).to_dict())
    print("median refine_seconds: %.1f" % d.refine_seconds.median())


def hyps(log):
    """b/p/s = prune 0.05 / prune 0.02 / salient edges; A = polished INR kernel, C = L0 MAP on the full support."""
    rows = [json.loads(line) for line in open(log) if line.startswith("{")]

    def run(hs, key="ns5000", max_taps=0.0, gate=0):
        sel = []
        for r in rows:
            side = r["bA"].get("side") or np.load(f"runs/kcache/full/{r['image']}_C.npy").shape[0]
            c = [h for h in hs if h[0] == "b" or side >= gate]
            ok = [h for h in c if max_taps <= 0 or r[h]["nnz"] <= max_taps * side] or c
            sel.append(r[min(ok, key=lambda h: r[h][key])]["psnr"])
        return np.mean(sel)

    print(f"{len(rows)} images")
    for h in ("bA", "bC", "pA", "pC", "sA", "sC"):
        print(f"  {h} alone: {np.mean([r[h]['psnr'] for r in rows]):.2f}")
    for hs in (("bA", "bC"), ("bA", "bC", "sA", "sC"), ("bA", "bC", "pA", "pC"), ("bA", "bC", "pA", "pC", "sA", "sC")):
        orc = np.mean([max(r[h]["psnr"] for h in hs) for r in rows])
        scores = " ".join(f"{k}: {run(hs, k):.2f}" for k in ("ns1000", "ns5000", "ns20000"))
        print(f"  {'+'.join(hs)}: oracle {orc:.2f}; selected by {scores}")
    four = ("bA", "bC", "pA", "pC")
    print("  four, blob guard (max taps per side):", " ".join(f"{g}: {run(four, max_taps=g):.2f}" for g in (4, 5, 6, 7, 8, 10, 0)))
    print("  four, guard 8, prune-0.02 candidates only for supports >= N px:", " ".join(f"{n}: {run(four, max_taps=8, gate=n):.2f}" for n in (23, 25, 27, 29, 31, 33, 99)))


if __name__ == "__main__":
    {"extent": lambda a: extent(a[0]), "select": select, "levin": lambda a: levin(a[0]), "hyps": lambda a: hyps(a[0])}[sys.argv[1]](sys.argv[2:])
