"""A recipe before and after a restructuring: same Levin numbers?

    .venv/bin/python benchmarks/levin_regression.py \
        --before benchmarks/results/restructure/levin_default_before.csv \
        --after benchmarks/results/restructure/levin_default_after.csv \
        --out benchmarks/results/restructure/levin_default_regression.md

Both tables are written by ``benchmarks/levin_core.py`` (one row per image, a
provenance header each).  The report gives PSNR, SSIM and kernel NCC per image
before and after, their differences, and whether every PSNR moved by at most
``--tolerance`` dB (0.05).  Exit code 1 when it did not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance  # noqa: E402

from cbid_meta.io import read_table_header  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--title", default="Default recipe before and after a change (Levin subset)")
    ap.add_argument("--note", default="", help="a sentence on what changed between the two runs")
    a = ap.parse_args(argv)
    b = pd.read_csv(a.before, comment="#")
    f = pd.read_csv(a.after, comment="#")
    m = b.merge(f, on="image", suffixes=("_before", "_after"))
    cols = ["image"]
    for c in ("psnr", "ssim", "kernel_ncc"):
        m[f"{c}_diff"] = m[f"{c}_after"] - m[f"{c}_before"]
        cols += [f"{c}_before", f"{c}_after", f"{c}_diff"]
    cols += ["refine_choice_before", "refine_choice_after", "seconds_before", "seconds_after"]
    worst = float(m["psnr_diff"].abs().max())
    ok = worst <= a.tolerance and len(m) == len(b) == len(f)
    lines = [f"# {a.title}", "", *[f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in provenance().items()], ""]
    for name, path in (("before", a.before), ("after", a.after)):
        h = read_table_header(path)
        lines.append(f"- {name}: `{path}` — `{h.get('command', '?')}` at {h.get('git_revision', '?')}, {h.get('date', '?')}")
    lines += ["", f"Images: {len(m)}; mean PSNR before {m.psnr_before.mean():.3f} dB, after {m.psnr_after.mean():.3f} dB; "
              f"largest |PSNR change| {worst:.3f} dB (tolerance {a.tolerance} dB): **{'same' if ok else 'DIFFERENT'}**.", "",
              " ".join(filter(None, [a.note, "Seconds are wall time of each run."])), "",
              m[cols].to_markdown(index=False, floatfmt=".3f"), ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines[-6:-1]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
