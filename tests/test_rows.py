"""RowStore: the resumable tables of every benchmark (one JSON per finished row)."""
import math

import pandas as pd
import pytest

from cbid_meta.errors import InputError
from cbid_meta.evaluation.rows import RowStore


def test_rows_are_kept_one_file_each_and_read_back(tmp_path):
    store = RowStore(tmp_path / "rows", key=("image", "mode", "budget"))
    store.add({"image": "a", "mode": "meta", "budget": 40, "psnr": 30.5})
    store.add({"image": "b", "mode": "scratch", "budget": 8, "psnr": 29.0})
    assert ("a", "meta", 40) in store and ("a", "meta", 8) not in store
    assert (tmp_path / "rows" / "a__meta__40.json").is_file()
    again = RowStore(tmp_path / "rows", key=("image", "mode", "budget"))  # a later run sees them
    assert again.frame().sort_values("image")["psnr"].tolist() == [30.5, 29.0]


def test_other_settings_are_refused_once_rows_exist(tmp_path):
    RowStore(tmp_path, key=("image",), settings={"recipe": "fast", "seed": 0})  # no rows yet: settings may change
    store = RowStore(tmp_path, key=("image",), settings={"recipe": "paper", "seed": 0})
    store.add({"image": "a", "psnr": 1.0})
    RowStore(tmp_path, key=("image",), settings={"recipe": "paper", "seed": 0})
    with pytest.raises(InputError, match="recipe 'paper' \\(now 'fast'\\)"):
        RowStore(tmp_path, key=("image",), settings={"recipe": "fast", "seed": 0})


def test_seed_takes_missing_rows_from_a_table_and_keeps_the_rest(tmp_path):
    store = RowStore(tmp_path, key=("image", "width", "steps"), stem=lambda k: f"{k[0]}__w{k[1]}" + (f"__{k[2]}it" if k[2] else ""))
    store.add({"image": "a", "width": 32, "steps": None, "psnr": 1.0})
    table = pd.DataFrame({"image": ["a", "b", "c"], "width": [32, 32, 64], "steps": [None, None, 20.0], "psnr": [9.0, 2.0, 3.0]})
    assert store.seed(table) == 2
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["a__w32.json", "b__w32.json", "c__w64__20it.json"]
    rows = {r["image"]: r for r in store.rows()}
    assert rows["a"]["psnr"] == 1.0  # a finished row is never replaced
    assert "steps" not in rows["b"] and rows["c"]["steps"] == 20.0  # NaN fields are dropped, not written as NaN
    assert store.key_of(rows["b"]) == ("b", 32, None)
    store.clear()
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_integral_float_keys_name_the_same_file(tmp_path):
    store = RowStore(tmp_path, key=("image", "budget"))
    store.add({"image": "a", "budget": 40})
    assert ("a", 40.0) in store and not math.isnan(store.frame()["budget"][0])
