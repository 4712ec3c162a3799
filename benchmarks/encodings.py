"""Time one optimisation step of candidate image encodings at Levin size.

    .venv/bin/python benchmarks/encodings.py --out benchmarks/results/encodings.csv

Compares the multi-resolution feature grid (separable matrix interpolation,
the default), the same grid through ``grid_sample``, and a Fourier-feature MLP
(SIREN-like capacity) on the 287×287 latent of a 255×255 image with a 33-tap
kernel: forward + L_fit + backward + Adam step, median of 20 steps after 3
warm-up steps.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, write_table  # noqa: E402

from cbid_meta.config import ImageGeneratorConfig
from cbid_meta.generators import ImageINR, Pyramid
from cbid_meta.losses import fit_loss


class GridSampleINR(ImageINR):
    def features(self, rows, cols, params=None):
        top, left, bottom, right = self.extent
        gy = (rows - top) / (bottom - top) * 2 - 1
        gx = (cols - left) / (right - left) * 2 - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]
        feats = [torch.nn.functional.grid_sample(g[None], grid, align_corners=False, padding_mode="border")[0] for g in self.grids]
        return torch.cat(feats, 0).permute(1, 2, 0)


class FourierMLP(nn.Module):
    def __init__(self, extent, features=128, hidden=128, layers=3, sigma=10.0):
        super().__init__()
        self.extent = extent
        self.register_buffer("b", torch.randn(2, features) * sigma)
        mods, w = [], 2 * features
        for _ in range(layers):
            mods += [nn.Linear(w, hidden), nn.ReLU()]
            w = hidden
        mods.append(nn.Linear(w, 1))
        self.mlp = nn.Sequential(*mods)

    def forward(self, rows, cols):
        top, left, bottom, right = self.extent
        u = torch.stack(torch.meshgrid((rows - top) / (bottom - top), (cols - left) / (right - left), indexing="ij"), -1)
        p = 2 * math.pi * u @ self.b
        return torch.sigmoid(self.mlp(torch.cat([p.cos(), p.sin()], -1))).permute(2, 0, 1)[None]


def time_model(model, axes, k, y, steps=20):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        opt.zero_grad()
        loss = fit_loss(model(*axes), k, y)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2] * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/encodings.csv"))
    a = ap.parse_args()
    pyr = Pyramid(255, 255, 27, 3)
    axes = pyr.latent_axes(0)
    k = torch.full((1, 1, pyr.k0, pyr.k0), 1.0 / pyr.k0**2)
    y = torch.rand(1, 1, 255, 255)
    cfg = ImageGeneratorConfig()
    models = {
        "feature grid, matrix interpolation (default)": ImageINR(cfg, pyr.extent),
        "feature grid, grid_sample": GridSampleINR(cfg, pyr.extent),
        "Fourier-feature MLP 3x128": FourierMLP(pyr.extent),
    }
    rows = []
    for name, m in models.items():
        ms = time_model(m, axes, k, y)
        rows.append({"encoding": name, "params": sum(p.numel() for p in m.parameters()), "ms_per_step": ms})
        print(f"{name}: {ms:.1f} ms/step")
    write_table(pd.DataFrame(rows), a.out, provenance())


if __name__ == "__main__":
    main()
