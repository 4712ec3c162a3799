"""benchmarks/levin_default.py: the default pipeline as users run it, resumable, outputs kept, re-scorable."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
_spec = importlib.util.spec_from_file_location("levin_default", ROOT / "benchmarks" / "levin_default.py")
ld = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ld)


def test_runs_as_the_cli_keeps_outputs_resumes_and_rescores(fake_levin, tmp_path, capsys):
    work, out = tmp_path / "work", tmp_path / "levin_default.csv"
    # the fake image (72 px) is below the default recipe's minimum for a 31-px kernel: the fast recipe, as a user names it
    args = ["--data", str(fake_levin), "--work", str(work), "--out", str(out), "--steps", "4", "--recipe", "fast"]
    assert ld.main(args) == 0
    df = pd.read_csv(out, comment="#")
    row = df.iloc[0]
    assert row.image == "im1_kernel4" and row.kernel_size_true == 5 and row.kernel_size_used == 31  # the recipe's size, as the CLI
    assert row["mode"] == "scratch" and row.psnr >= row.psnr_shift5 and 0 < row.cpu_share  # the fast recipe's default mode
    assert (work / "outputs" / "im1_kernel4_x.npy").is_file() and (work / "outputs" / "im1_kernel4_kernel.npy").is_file()
    text = out.with_suffix(".md").read_text()
    assert "all images" in text and "git_revision" in text
    # a second run redoes nothing; --rescore gives the same numbers from the kept outputs
    stored = (work / "rows" / "im1_kernel4.json").read_text()
    assert ld.main(args) == 0 and (work / "rows" / "im1_kernel4.json").read_text() == stored
    assert ld.main(args + ["--rescore"]) == 0
    again, first = json.loads((work / "rows" / "im1_kernel4.json").read_text()), json.loads(stored)
    assert again["psnr"] == first["psnr"] and again["kernel_ncc"] == first["kernel_ncc"] and again["ssim"] == first["ssim"]
    assert again["kernel_edge_mass"] == first["kernel_edge_mass"] and 0 <= first["kernel_edge_mass"] <= 1
    assert "Kernel mass within 2 px of the support's edge" in out.with_suffix(".md").read_text()


def test_recipe_and_mode_as_users_name_them(fake_levin, tmp_path, capsys):
    from cbid_meta.config import DEFAULT_RECIPE

    work, out = tmp_path / "work", tmp_path / "fast_meta.csv"
    args = ["--data", str(fake_levin), "--work", str(work), "--out", str(out), "--steps", "4", "--recipe", "fast", "--mode", "meta"]
    assert ld.main(args) == 0
    from cbid_meta.io import read_table_header

    assert pd.read_csv(out, comment="#").iloc[0]["mode"] == "meta"
    assert read_table_header(out)["recipe"] == "fast" and read_table_header(out)["mode"] == "meta"
    # the same work folder with the default recipe (not fast) is refused: rows of two settings never mix
    assert ld.main(["--data", str(fake_levin), "--work", str(work), "--out", str(out), "--steps", "4"]) == 2
    assert DEFAULT_RECIPE in capsys.readouterr().err


def test_bad_image_name_is_one_error_line(fake_levin, tmp_path, capsys):
    assert ld.main(["--data", str(fake_levin), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o.csv"), "--images", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_seed_as_users_name_it_has_its_own_folder(fake_levin, tmp_path, capsys):
    from cbid_meta.io import read_table_header

    work, out = tmp_path / "work", tmp_path / "seed7.csv"
    args = ["--data", str(fake_levin), "--out", str(out), "--steps", "4", "--recipe", "fast", "--seed", "7"]
    assert ld.main(args + ["--work", str(work)]) == 0
    assert pd.read_csv(out, comment="#").iloc[0]["seed"] == 7 and read_table_header(out)["seed"] == "7"
    # the recipe's own seed in the same folder is refused: rows of two seeds never mix
    assert ld.main(args[:-2] + ["--work", str(work)]) == 2
    assert "seed" in capsys.readouterr().err
