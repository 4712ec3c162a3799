"""Open a `cbid compare` report in headless Chromium (Debian's chromium-headless-shell) and screenshot it.

    .venv/bin/python benchmarks/check_report.py benchmarks/results/compare_levin

Writes REPORT/report_screenshot.png and fails if the browser is missing,
exits with an error, or the screenshot is blank.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    for b in BROWSERS:
        p = shutil.which(b) or (f"/usr/lib/chromium/{b}" if Path(f"/usr/lib/chromium/{b}").exists() else None)
        if p:
            return p
    return None


def screenshot(report: Path, out: Path, width: int = 1200, height: int = 4000) -> Path:
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no headless Chromium found (apt-get install chromium-headless-shell)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}",
           f"--screenshot={out}", report.resolve().as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"browser failed ({r.returncode}): {r.stderr[-500:]}")
    a = np.asarray(Image.open(out).convert("L"), dtype=np.float64)
    if a.std() < 5:
        raise RuntimeError("the screenshot is blank")
    return out


if __name__ == "__main__":
    rep = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/compare_levin")
    p = screenshot(rep / "report.html", rep / "report_screenshot.png")
    print(f"screenshot: {p}")
