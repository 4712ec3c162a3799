"""Committed compare reports keep one copy of each figure: the HTML links the PNG next to it.

    .venv/bin/python benchmarks/dedup_reports.py benchmarks/results/compare_*

Reports written before ``cbid compare`` linked its figures embedded them as
base64 data URIs beside the same PNG files.  This replaces each embedded
image whose PNG exists in the report's folder, byte for byte the same
picture, by a link to that file; nothing else in the page changes.  A figure
with no PNG beside it, or whose PNG differs from the embedded bytes, is left
embedded (and reported).
"""
from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

PATTERN = re.compile(r'alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def dedup(report: Path) -> tuple[int, list[str]]:
    page = report.read_text()
    kept: list[str] = []

    def repl(m: re.Match) -> str:
        name, data = m.group(1), m.group(2)
        png = report.parent / name
        if png.is_file() and png.read_bytes() == base64.b64decode(data):
            return f'alt="{name}" src="{name}"'
        kept.append(name)
        return m.group(0)

    new, n = PATTERN.subn(repl, page)
    if new != page:
        tmp = report.with_name(report.name + ".tmp")
        tmp.write_text(new)
        tmp.replace(report)
    return n - len(kept), kept


def main(argv: list[str]) -> int:
    for folder in map(Path, argv):
        report = folder / "report.html"
        if report.is_file():
            linked, kept = dedup(report)
            print(f"{report}: {linked} figure(s) linked" + (f", left embedded: {', '.join(kept)}" if kept else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
