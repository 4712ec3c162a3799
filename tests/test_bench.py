"""cbid bench: datasets, the classical baseline, resume, sharding, CLI."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbid_meta.physics import centre_kernel, gradient_sparsity
from cbid_meta.pipeline.l0_map import drop_small_components, l0_deblur, refine_kernel, salient_threshold, trim_support
from cbid_meta.pipeline.selection import is_path_like, select_kernel
from cbid_meta.cli.main import main
from cbid_meta.data import demo_pair
from cbid_meta.errors import InputError
from cbid_meta.evaluation import kernel_similarity, levin_scores
from cbid_meta.evaluation.bench import BenchSettings, run_bench
from cbid_meta.evaluation.datasets import load_dataset, load_folder, synthetic_set, write_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    items = synthetic_set(n=2, size=64, kernel_sizes=(9,), noise=0.0, seed=3)
    return write_folder(items, tmp_path_factory.mktemp("tiny") / "set")


def test_synthetic_set_is_seeded_and_aligned():
    a = synthetic_set(n=3, size=48, kernel_sizes=(9, 41), noise=0.01, seed=1)
    b = synthetic_set(n=3, size=48, kernel_sizes=(9, 41), noise=0.01, seed=1)
    assert [i.name for i in a] == [i.name for i in b]
    assert all(np.array_equal(x.blurry, y.blurry) for x, y in zip(a, b))
    assert a[1].kernel.shape == (41, 41) and abs(a[1].kernel.sum() - 1) < 1e-9
    assert a[0].blurry.shape == a[0].sharp.shape == (48, 48)
    c = synthetic_set(n=3, size=48, kernel_sizes=(9, 41), noise=0.01, seed=2)
    assert not np.array_equal(a[0].blurry, c[0].blurry)


def test_folder_roundtrip(tiny_set):
    items = load_folder(tiny_set)
    assert len(items) == 2 and items[0].kernel is not None
    assert abs(items[0].kernel.sum() - 1) < 1e-9


def test_folder_errors(tmp_path, tiny_set):
    with pytest.raises(InputError, match="not found"):
        load_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no '<name>_blurry"):
        load_folder(empty)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_set, broken)
    sharp = sorted(broken.glob("*_sharp.png"))[0]
    sharp.unlink()
    with pytest.raises(InputError, match="no matching"):
        load_folder(broken)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_set, bad)
    sorted(bad.glob("*_blurry.png"))[0].write_bytes(b"not a png")
    with pytest.raises(InputError):
        load_folder(bad)
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("nope")


def test_l0_baseline_recovers_demo_kernel():
    y, x, k = demo_pair(size=128, kernel_size=15)
    est, kk = l0_deblur(y, kernel_size=15)
    assert kk.shape == (15, 15) and abs(kk.sum() - 1) < 1e-9 and kk.min() >= 0
    assert kernel_similarity(kk, k)["ncc"] > 0.7
    assert levin_scores(est, x, crop=10)["psnr"] > levin_scores(y, x, crop=10)["psnr"] + 2.0


def test_trim_support_keeps_the_significant_taps():
    k = np.zeros((21, 21))
    k[9:12, 8:13] = 1.0  # 3x5 blob near the centre
    k[0, 0] = 1e-4  # a faint tap far away is dropped
    t = trim_support(k, thresh=0.05, margin=2)
    assert t.shape == (9, 9) and abs(t.sum() - 1) < 1e-12
    assert np.count_nonzero(t > 0.01) == 15


def test_refine_kernel_improves_a_rough_estimate():
    from scipy.ndimage import gaussian_filter

    y, x, k = demo_pair(size=128, kernel_size=15)
    rough = np.pad(gaussian_filter(k, 2.0), 5)  # blurred truth in a support 10 px too large
    rough /= rough.sum()
    kk = refine_kernel(y, rough, levels=3, iters=10, trim=0.05)
    assert kk.shape == rough.shape and abs(kk.sum() - 1) < 1e-9 and kk.min() >= 0
    before, after = kernel_similarity(rough, k)["ncc"], kernel_similarity(kk, k)["ncc"]
    assert after > before + 0.05, (before, after)


def test_drop_small_components_keeps_the_main_path():
    k = np.zeros((15, 15))
    k[7, 3:12] = 1.0  # a 9-tap motion path: 90 % of the mass
    k[1, 1] = 0.5  # two isolated specks, 5 % each
    k[13, 12] = 0.5
    out = drop_small_components(k, 0.1)
    assert abs(out.sum() - 1) < 1e-12
    assert out[1, 1] == 0 and out[13, 12] == 0 and np.count_nonzero(out) == 9
    # a threshold above every piece still keeps the largest one
    assert np.count_nonzero(drop_small_components(k, 0.95)) == 9
    # a diagonal (8-connected) path is one piece
    d = np.eye(9)
    assert np.count_nonzero(drop_small_components(d, 0.5)) == 9


def test_gradient_sparsity_is_lower_for_the_sharp_image():
    from scipy.ndimage import uniform_filter

    y, x, k = demo_pair(size=128, kernel_size=15)
    assert gradient_sparsity(x, 10) < 0.9 * gradient_sparsity(y, 10)
    assert gradient_sparsity(x, 10) < gradient_sparsity(uniform_filter(x, 3), 10)


def test_select_kernel_prefers_the_true_support_over_a_too_small_one():
    y, x, k = demo_pair(size=128, kernel_size=15, noise=0.005)
    small = centre_kernel(k)[4:11, 4:11].copy()  # the truth cut to its central 7 px
    small = np.pad(small / small.sum(), 4)
    pick, scores = select_kernel(y, [small, k])
    assert pick == 1 and scores[1] < scores[0], scores
    pick, scores = select_kernel(y, [k, small])
    assert pick == 0


def test_select_kernel_passes_over_kernels_that_are_not_paths():
    y, x, k = demo_pair(size=128, kernel_size=15, noise=0.005)
    delta = np.zeros_like(k)
    delta[7, 7] = 1.0
    n = np.count_nonzero(k)
    assert is_path_like(k, n / 15) and not is_path_like(k, (n - 1) / 15) and is_path_like(delta, 0.1)
    pick, scores = select_kernel(y, [k, delta])
    assert pick == 0 and scores[0] < scores[1]
    # the true kernel has more taps than allowed: the delta is kept although its score is worse
    pick2, scores2 = select_kernel(y, [k, delta], max_taps=(n - 1) / 15)
    assert pick2 == 1 and scores2 == scores
    # every candidate fails: the guard is ignored
    assert select_kernel(y, [k, delta], max_taps=0.01)[0] == 0


def test_salient_threshold_is_the_tightest_four_orientation_count():
    rng = np.random.default_rng(0)
    y = rng.random((64, 64))
    px, py = y[:-1, 1:] - y[:-1, :-1], y[1:, :-1] - y[:-1, :-1]
    pm = px**2 + py**2
    with np.errstate(divide="ignore", invalid="ignore"):
        pd = np.arctan(py / px)
    q = np.pi / 4
    bins = [(pd >= lo) & (pd < hi) for lo, hi in ((0, q), (q, 2 * q), (-q, 0), (-2 * q, -q))]
    t = salient_threshold(y, 5, r=20)
    assert t > 0
    counts = [int((pm[b] >= t).sum()) for b in bins]
    assert min(counts) >= 100  # 20 × 5 pixels at least in every orientation
    assert min(int((pm[b] > t).sum()) for b in bins) < 100  # and no larger threshold would do
    # a bin with fewer pixels than asked for: no thresholding
    assert salient_threshold(y[:8, :8], 5, r=20) == 0.0


def test_bench_resume_skips_finished_pairs(tiny_set, tmp_path):
    items = load_folder(tiny_set)
    out = tmp_path / "run"
    df = run_bench(items, ("blurry", "true_kernel"), out, BenchSettings(), panels=True)
    assert set(df["method"]) == {"blurry", "true_kernel"} and len(df) == 4
    assert np.allclose(df[df.method == "true_kernel"]["error_ratio"], 1.0)
    rows = sorted((out / "rows").glob("*.json"))
    stamp = {p: p.stat().st_mtime_ns for p in rows}
    # delete one row: only that pair is redone
    rows[0].unlink()
    df2 = run_bench(items, ("blurry", "true_kernel"), out, BenchSettings(), panels=False)
    assert len(df2) == 4
    assert all(p.stat().st_mtime_ns == stamp[p] for p in rows[1:])
    assert rows[0].exists()
    assert len(list((out / "panels").glob("*.png"))) == 4


def test_bench_keeps_outputs_that_rescore_to_their_rows(tiny_set, tmp_path):
    """Every finished pair keeps its image and kernel; scoring them again gives the row (float32 image)."""
    from cbid_meta.evaluation.bench import output_paths, score
    from cbid_meta.pipeline.nonblind import deconvolve

    items = load_folder(tiny_set)
    out = tmp_path / "run"
    df = run_bench(items, ("blurry", "true_kernel"), out, BenchSettings(), panels=False)
    for _, r in df.iterrows():
        it = next(i for i in items if i.name == r.image)
        paths = output_paths(out, r.image, r.method)
        assert paths["x"].is_file() and paths["kernel"].is_file() == (r.method == "true_kernel")
        k = np.load(paths["kernel"]) if paths["kernel"].is_file() else None
        again = score(it, np.load(paths["x"]).astype(np.float64), k, deconvolve(it.blurry, it.kernel))
        assert abs(again["psnr"] - r.psnr) < 1e-3 and abs(again["ssim"] - r.ssim) < 1e-5


def test_cli_bench_end_to_end(tiny_set, tmp_path, capsys):
    out = tmp_path / "b"
    main(["bench", str(tiny_set), "--methods", "full,l0_map,blurry,true_kernel", "--steps", "12", "-o", str(out), "--kernel-margin", "2"])
    df = pd.read_csv(out / "results.csv", comment="#")
    assert {"method", "image", "psnr", "ssim", "error_ratio", "kernel_ncc", "seconds", "peak_mib", "seed", "git_revision"} <= set(df.columns)
    assert len(df) == 8 and df["psnr"].notna().all()
    text = (out / "summary.md").read_text()
    assert "| full" in text and "git_revision" in text and "command" in text


def test_cli_bench_bad_inputs(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["bench", "synthetic", "--methods", "nope", "--n", "1", "-o", str(tmp_path / "x")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["bench", "folder", "-o", str(tmp_path / "y")])
    assert e.value.code == 2


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not installed")
def test_two_processes_give_the_same_table(tiny_set, tmp_path):
    """Sharding over 2 gloo processes (torchrun) gives the same metrics as 1 process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    args = ["bench", str(tiny_set), "--methods", "full,l0_map,blurry", "--steps", "9", "--kernel-margin", "2", "--no-panels"]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    code = "from cbid_meta.cli.main import main; import sys; main(sys.argv[1:])"
    runner = tmp_path / "run_cbid.py"
    runner.write_text(code)
    subprocess.run([sys.executable, str(runner), *args, "-o", str(tmp_path / "one")], check=True, env=env, capture_output=True, timeout=300)
    r = subprocess.run([torchrun, "--nproc_per_node", "2", str(runner), *args, "-o", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a = pd.read_csv(tmp_path / "one" / "results.csv", comment="#")
    b = pd.read_csv(tmp_path / "two" / "results.csv", comment="#")
    cols = ["method", "image", "psnr", "ssim", "error_ratio", "kernel_ncc"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert len(a) == 6


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "levin").is_dir(), reason="needs ../shared/data/levin")
def test_levin_core_script_writes_table_and_kernels(tmp_path):
    out, kd, readme = tmp_path / "core.csv", tmp_path / "kernels", tmp_path / "README.md"
    readme.write_text("x\n<!-- core:start -->\nold\n<!-- core:end -->\n")  # the section named after --out
    cmd = [sys.executable, str(ROOT / "benchmarks" / "levin_core.py"), "--recipe", "paper_grid", "--steps", "6", "--images", "im1_kernel5",
           "--out", str(out), "--save-kernels", str(kd), "--readme", str(readme)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_csv(out, comment="#")
    assert list(df["image"]) == ["im1_kernel5"] and np.isfinite(df["psnr"]).all()
    k = np.load(kd / "im1_kernel5.npy")
    assert k.shape[0] == k.shape[1] == int(df["kernel_size"][0]) + 10 and abs(k.sum() - 1) < 1e-5
    assert (kd / "im1_kernel5.json").exists()
    text = readme.read_text()
    assert "old" not in text and "mean PSNR" in text


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "levin").is_dir(), reason="needs ../shared/data/levin")
def test_levin_paper_script_is_resumable_and_never_redoes_an_image(tmp_path):
    out, curve = tmp_path / "lp.csv", tmp_path / "lp_curve.csv"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "levin_paper.py"), "--images", "im1_kernel5", "--width", "8", "--steps", "20",
           "--curve-every", "10", "--checkpoint-every", "5", "--out", str(out), "--curve", str(curve)]
    r = subprocess.run(cmd + ["--work", str(tmp_path / "w1")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_csv(out, comment="#")
    assert list(df["image"]) == ["im1_kernel5"] and list(df["width"]) == [8]
    its = int(df["iterations"][0])  # --steps 20, as the recipe's schedule rounds it
    assert 0 < its <= 20
    assert np.isfinite(df[["psnr", "psnr_shift5", "psnr_nonblind", "kernel_ncc", "s_per_iter"]].to_numpy()).all()
    assert list(df["seed"]) == [2024] and list(df["scored_at"]) == [10]
    tag = "im1_kernel5__w8__s2024__20it"
    assert all((tmp_path / "w1" / "outputs" / f"{tag}_{k}.npy").is_file() for k in ("x", "delta", "kernel"))
    assert list(pd.read_csv(curve, comment="#")["iteration"]) == list(range(10, its + 1, 10))
    assert "git_revision" in out.read_text() and (tmp_path / "lp.md").is_file()
    # a run stopped after its last checkpoint but before its row resumes from the checkpoint (its last iteration)
    for row in (tmp_path / "w1" / "rows").glob("*.json"):
        row.unlink()
    out2 = tmp_path / "lp2.csv"
    cmd2 = [c if c != str(out) else str(out2) for c in cmd]
    r = subprocess.run(cmd2 + ["--work", str(tmp_path / "w1")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list(pd.read_csv(out2, comment="#")["iterations"]) == [its]
    # a fresh work folder (a new checkout) takes the finished row from the table and does not run it again
    r = subprocess.run(cmd + ["--work", str(tmp_path / "w2")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "taken from" in r.stdout and ": done" in r.stdout, r.stdout + r.stderr[-2000:]
    assert len(pd.read_csv(out, comment="#")) == 1
