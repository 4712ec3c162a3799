"""Resumable result tables: one JSON file per finished row.

Every benchmark of the package (``cbid bench``, ``cbid compare``,
``benchmarks/levin_core.py``, ``benchmarks/levin_paper.py``) accumulates its
table through a :class:`RowStore`: a row is written, atomically, the moment
its run finishes, so a run that stops loses at most the row in progress and a
finished row is never redone.  The folder also records the settings the rows
were made with; resuming with other settings is refused (one error line)
rather than mixing two experiments in one table.  Long runs inside a row (the
published method) resume from their own checkpoints.

>>> import tempfile
>>> store = RowStore(tempfile.mkdtemp(), key=("method", "image"))
>>> store.add({"method": "inr", "image": "im1", "psnr": 30.0})
>>> ("inr", "im1") in store, ("inr", "im2") in store
(True, False)
>>> store.frame()[["method", "image", "psnr"]].values.tolist()
[['inr', 'im1', 30.0]]
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..io import save_json

__all__ = ["RowStore"]

SETTINGS = "settings.json"


class RowStore:
    """Finished rows in ``folder``, one ``<k1>__<k2>….json`` per row, keyed by the ``key`` fields.

    Parameters
    ----------
    folder : where the rows live (created).
    key : the row fields that identify a row (their values name its file).
    settings : what the rows depend on beyond their key (recipe, seed, …).  The
        first run writes them to ``settings.json``; a later run with different
        settings raises :class:`~cbid_meta.errors.InputError`.
    stem : optional ``key tuple -> file stem`` (default: the values joined by ``__``).
    """

    def __init__(self, folder: str | os.PathLike, key: tuple[str, ...], settings: dict | None = None, stem=None):
        self.folder, self.key = Path(folder), tuple(key)
        self._stem = stem or (lambda k: "__".join(str(v) for v in k))  # path() normalises the key first
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = {k: _plain(v) for k, v in (settings or {}).items()}
        if settings is not None:
            self._check_settings(self.settings)

    def _check_settings(self, settings: dict) -> None:
        path = self.folder / SETTINGS
        old = json.loads(path.read_text()) if path.exists() else None
        if old == settings:
            return
        if old is not None and len(self):
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            shown = ", ".join(f"{k} {old.get(k)!r} (now {settings.get(k)!r})" for k in diff)
            raise InputError(f"{self.folder} holds rows made with other settings: {shown}; use another output folder")
        save_json(path, settings)

    def key_of(self, row: dict) -> tuple:
        """The row's key (a field it lacks, or NaN, is None; a whole float is an int)."""
        return tuple(_norm(row.get(k)) for k in self.key)

    def path(self, key: tuple) -> Path:
        return self.folder / f"{self._stem(tuple(_norm(v) for v in key))}.json"

    def __len__(self) -> int:
        return sum(1 for p in self.folder.glob("*.json") if p.name != SETTINGS)

    def __contains__(self, key: tuple) -> bool:
        return self.path(key).exists()

    def add(self, row: dict) -> None:
        """Write one finished row (atomically)."""
        save_json(self.path(self.key_of(row)), row)

    def rows(self) -> list[dict]:
        """Every finished row, in file-name order."""
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json")) if p.name != SETTINGS]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows())

    def seed(self, table: pd.DataFrame) -> int:
        """Take the rows of an earlier table (e.g. a committed CSV) that the folder lacks; returns how many."""
        n = 0
        for row in table.to_dict("records"):
            row = {k: v for k, v in row.items() if not _missing(v)}
            if self.key_of(row) not in self:
                self.add(row)
                n += 1
        return n

    def clear(self) -> None:
        """Remove the rows and settings (the table they made is written)."""
        for p in self.folder.glob("*.json"):
            p.unlink()
        try:
            self.folder.rmdir()
        except OSError:
            pass


def _norm(v):
    if _missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v.item() if hasattr(v, "item") else v


def _missing(v) -> bool:
    return isinstance(v, float) and v != v


def _plain(v):
    return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
