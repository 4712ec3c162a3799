"""The package's shape: subpackages import alone, no import cycles (not even inside
functions), the dataclass defaults are the default recipe, components by name."""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

import cbid_meta
from cbid_meta.config import DeblurConfig, load_recipe

ROOT = pathlib.Path(cbid_meta.__file__).parent
SUBPACKAGES = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()) + sorted(
    p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"
)


@pytest.fixture(scope="module")
def lone_imports():
    """Each subpackage imported in a fresh interpreter of its own, all started at once (the imports are
    single-threaded: side by side they take the time of a few)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {n: subprocess.Popen([sys.executable, "-c", f"import cbid_meta.{n}"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, env=env) for n in SUBPACKAGES}
    errs = {n: p.communicate(timeout=300)[1] for n, p in procs.items()}
    return {n: (procs[n].returncode, errs[n]) for n in procs}


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_subpackage_imports_alone(name, lone_imports):
    rc, err = lone_imports[name]
    assert rc == 0, err[-2000:]


def _import_graph() -> dict[str, set[str]]:
    """subpackage -> subpackages it imports, from every import statement (function bodies included)."""
    graph: dict[str, set[str]] = {}
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT)
        src = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if src == "__init__":
            continue
        pkg = ["cbid_meta", *rel.parts[:-1]]
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = pkg[: len(pkg) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                targets = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                parts = t.split(".")
                if parts[0] == "cbid_meta" and len(parts) > 1 and parts[1] in SUBPACKAGES and parts[1] != src:
                    graph.setdefault(src, set()).add(parts[1])
    return graph


def test_no_import_cycles_between_subpackages():
    graph = _import_graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(n, path):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycle.extend(path + [n, m])
                return True
            if m not in state and visit(m, path + [n]):
                return True
        state[n] = 2
        return False

    for n in sorted(graph):
        if n not in state and visit(n, []):
            break
    assert not cycle, " -> ".join(cycle)
    # the layers: the pipeline's components know nothing of the INR method or the CLI
    assert graph.get("pipeline", set()) <= {"errors", "config", "physics"}
    assert "cli" not in set().union(*graph.values())


def test_dataclass_defaults_are_the_default_recipe():
    assert DeblurConfig().to_dict() == load_recipe("fast").to_dict()


def test_recipes_name_their_components():
    from cbid_meta.pipeline import ESTIMATORS, RESTORERS, SELECTORS

    for name in ("fast", "paper", "paper_grid"):
        cfg = load_recipe(name)
        assert all(e == "inr" or e in ESTIMATORS for e in cfg.estimation.estimators)
        assert cfg.selection.method in SELECTORS
        assert cfg.restoration.method == "inr" or cfg.restoration.method in RESTORERS
    assert load_recipe("paper").estimation.estimators == ["inr"] and load_recipe("paper").restoration.method == "inr"


def test_unknown_components_are_one_line_errors(tmp_path):
    from cbid_meta.errors import InputError

    bad = tmp_path / "r.toml"
    bad.write_text('[estimation]\nestimators = "polish"\n')
    with pytest.raises(InputError, match="must be a list"):
        load_recipe(bad)
    import numpy as np

    from cbid_meta.data import demo_pair
    from cbid_meta.optim import Deblurrer

    y, _, _ = demo_pair(size=48, kernel_size=7)
    cfg = load_recipe("fast").with_total_steps(6, 2)
    cfg.kernel_size = 7
    cfg.estimation.estimators = ["polish", "magic"]
    with pytest.raises(InputError, match="magic"):
        Deblurrer(cfg).run(y)
    cfg.estimation.estimators = ["inr"]
    cfg.restoration.method = "nope"
    with pytest.raises(InputError, match="nope"):
        Deblurrer(cfg).run(y.astype(np.float32))
