"""Which pipeline should ``cbid deblur`` run by default? Candidates side by side on Levin, as users run them.

    python benchmarks/default_choice.py benchmarks/results/levin_default_fast.csv \\
        benchmarks/results/levin_default_fast_scratch.csv benchmarks/results/levin_default.csv

Each table is written by ``benchmarks/levin_default.py`` (one recipe, each image deblurred from its
file with the CLI's defaults, scored at ±10 px).  Tables of one recipe and mode (runs with other
``--seed`` values) are pooled: an image's value is its mean over those runs, and the summary gives
the runs, each run's mean and the per-image spread between them.  For the images every table has:
per recipe the mean PSNR (±10 and ±5), SSIM, kernel NCC, median seconds, peak MiB, the images below
their blurry input and below it + 3 dB; per image the PSNR of each and the difference to the first
recipe (the baseline); the paired difference's mean, spread and the images where it exceeds the
noise floor either way (``--floor``, dB: how far a run moves under a rounding-level change of its
input, ``docs/evaluation.md``).  The criteria a new default must meet: median at most ``--max-seconds``
per image and peak at most ``--max-mib``; among those that do, the highest mean PSNR wins.
Writes ``--out`` (``benchmarks/results/default_choice.md``) and its ``.csv``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, write_table  # noqa: E402

from cbid_meta.io import read_table_header  # noqa: E402


def load(path: Path) -> tuple[str, pd.DataFrame, dict]:
    """``(name, rows, header)``: the name is the recipe and the mode its rows ran in (the header's, else the rows' own)."""
    meta = read_table_header(path)
    df = pd.read_csv(path, comment="#")
    modes = df["mode"].dropna().unique() if "mode" in df else []
    mode = meta.get("mode") or (modes[0] if len(modes) == 1 else None)
    return str(meta.get("recipe", path.stem)) + (f" ({mode})" if mode else ""), df, meta


SCORES = ["psnr", "psnr_shift5", "ssim", "kernel_ncc", "psnr_blurry"]


def pool(tables: list[tuple[str, pd.DataFrame]]) -> list[tuple[str, pd.DataFrame]]:
    """Tables of one name (one recipe and mode run with several seeds) as one, in first-seen order: the rows
    of the images all of them have, with a ``run`` column (the table's index within its name)."""
    groups: dict[str, list[pd.DataFrame]] = {}
    for name, d in tables:
        groups.setdefault(name, []).append(d)
    out = []
    for name, ds in groups.items():
        common = set.intersection(*(set(d.image) for d in ds))
        out.append((name, pd.concat([d[d.image.isin(common)].assign(run=i) for i, d in enumerate(ds)], ignore_index=True)))
    return out


def compare(tables: list[tuple[str, pd.DataFrame]], floor: float, max_seconds: float, max_mib: float) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``(summary per recipe, per-image PSNR, verdict sentence)`` over the images all tables have; tables of
    one name are pooled (:func:`pool`: an image's scores are their mean over its runs)."""
    tables = pool(tables)
    common = set.intersection(*(set(d.image) for _, d in tables))
    rows, per, spread = [], None, []
    for name, d in tables:
        d = d[d.image.isin(common)]
        m = d.groupby("image", sort=True)[SCORES].mean()  # the seed mean of each image
        runs = d["run"].nunique()
        rows.append({"recipe": name, "runs": runs, "images": len(m), "PSNR ±10": m.psnr.mean(), "PSNR ±5": m.psnr_shift5.mean(), "SSIM": m.ssim.mean(),
                     "kernel NCC": m.kernel_ncc.mean(), "median s": d.seconds.median(), "peak MiB": d.peak_mib.max(),
                     "below blurry": int((m.psnr < m.psnr_blurry).sum()), "below blurry + 3 dB": int((m.psnr < m.psnr_blurry + 3).sum()),
                     "meets time and memory": bool(d.seconds.median() <= max_seconds and d.peak_mib.max() <= max_mib)})
        if runs > 1:
            by_run = d.groupby("run").psnr.mean()
            seeds = d.groupby("run")["seed"].first() if "seed" in d else by_run.index.to_series()
            per_image = d.groupby("image").psnr
            std, moved = per_image.std(), per_image.max() - per_image.min()
            spread.append(f"{name}: {runs} runs (seeds {', '.join(str(s) for s in seeds)}), mean PSNR {', '.join(f'{v:.2f}' for v in by_run)} dB; "
                          f"per-image spread between runs: mean std {std.mean():.2f} dB, largest {std.max():.2f} ({std.idxmax()}); "
                          f"images that moved by more than the {floor:.2f} dB noise floor between runs: {int((moved > floor).sum())}.")
        col = m[["psnr"]].rename(columns={"psnr": name})
        per = col if per is None else per.join(col)
    summary = pd.DataFrame(rows)
    base = tables[0][0]
    for name, _ in tables[1:]:
        per[f"{name} − {base}"] = per[name] - per[base]
    per = per.reset_index()
    lines = list(spread)
    for name, _ in tables[1:]:
        diff = per[f"{name} − {base}"]
        lines.append(f"{name} against {base}: mean difference {diff.mean():+.2f} dB (std {diff.std():.2f}) over {len(diff)} images; "
                     f"above the {floor:.2f} dB noise floor on {int((diff > floor).sum())}, below it on {int((diff < -floor).sum())}, "
                     f"within it on {int((diff.abs() <= floor).sum())}.")
    ok = summary[summary["meets time and memory"]].sort_values("PSNR ±10", ascending=False)
    best = ok.iloc[0]["recipe"] if len(ok) else None
    lines.append(f"Best mean PSNR among the recipes within {max_seconds:.0f} s median and {max_mib:.0f} MiB peak: {best}."
                 if best else f"No recipe is within {max_seconds:.0f} s median and {max_mib:.0f} MiB peak.")
    if len(ok) > 1 and ok.iloc[1]["recipe"] != base:  # the winner against the runner-up, when that is not the baseline
        second = ok.iloc[1]["recipe"]
        diff = per.set_index("image")[best] - per.set_index("image")[second]
        lines.append(f"{best} against the runner-up {second}: mean difference {diff.mean():+.2f} dB (std {diff.std():.2f}); "
                     f"above the {floor:.2f} dB noise floor on {int((diff > floor).sum())}, below it on {int((diff < -floor).sum())}, "
                     f"within it on {int((diff.abs() <= floor).sum())}.")
    return summary, per, " ".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tables", nargs="+", type=Path, help="levin_default.py tables; the first is the baseline the others are paired with")
    ap.add_argument("--floor", type=float, default=1.05, help="noise floor in dB (the fast recipe's largest single-image move under a 1e-6 input jitter)")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--max-mib", type=float, default=2048.0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/default_choice.md"))
    a = ap.parse_args(argv)
    missing = [str(t) for t in a.tables if not t.is_file()]
    if missing or len(a.tables) < 2:
        print(f"error: need at least two levin_default.py tables ({'missing: ' + ', '.join(missing) if missing else 'one given'})", file=sys.stderr)
        return 2
    loaded = [load(t) for t in a.tables]
    summary, per, verdict = compare([(n, d) for n, d, _ in loaded], a.floor, a.max_seconds, a.max_mib)
    prov = provenance() | {"tables": ", ".join(f"{t} ({m.get('git_revision', '?')}, {m.get('images', '?')})" for t, (_, _, m) in zip(a.tables, loaded))}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(per, a.out.with_suffix(".csv"), prov)
    md = ["# The default pipeline: candidates on Levin, as users run them", ""]
    md += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in prov.items()]
    md += ["", summary.to_markdown(index=False, floatfmt=".3f"), "", verdict, "", per.to_markdown(index=False, floatfmt=".2f"), ""]
    a.out.write_text("\n".join(md))
    print(summary.to_string(index=False))
    print(verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
