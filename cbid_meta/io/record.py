"""The run record ``<name>.json`` that ``cbid deblur`` writes beside its outputs, and reading it back.

Everything that determines the output is in the record's ``run`` section —
the input (path and sha256), the resolved recipe values (``config``, seed and
kernel size included), where the seed and kernel size came from, the region,
the noise setting and the σ used, the initialiser or known kernel (path and
sha256), device, dtype and thread count — so ``cbid deblur --replay NAME.json``
can run it again.  :func:`read_record` accepts only a complete record of this
package version and :data:`RECORD_FORMAT`; anything else is one
:class:`~cbid_meta.errors.InputError` line.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import InputError

__all__ = ["RECORD_FORMAT", "sha256_file", "read_record"]

#: Version of the record's layout (1: the records before ``format`` existed, which cannot be replayed).
RECORD_FORMAT = 2

_HEX = set("0123456789abcdef")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_sha(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and set(v) <= _HEX


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_file_ref(v) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("path"), str) and _is_sha(v.get("sha256")))


#: field of ``run`` -> (check, what it must be)
_RUN_FIELDS = {
    "input": (lambda v: isinstance(v, str) and v != "", "a file path"),
    "input_sha256": (_is_sha, "a sha256"),
    "recipe": (lambda v: isinstance(v, str), "a recipe name or path"),
    "config": (lambda v: isinstance(v, dict), "a table of recipe values"),
    "seed": (_is_int, "an integer"),
    "seed_source": (lambda v: v in ("recipe", "--seed"), "'recipe' or '--seed'"),
    "kernel_size": (lambda v: _is_int(v) and v >= 3, "an integer of at least 3"),
    "kernel_size_auto": (lambda v: isinstance(v, bool), "true or false"),
    "mode": (lambda v: v in ("meta", "scratch", "non-blind"), "meta, scratch or non-blind"),
    "init": (_is_file_ref, "null or a file path with its sha256"),
    "kernel": (_is_file_ref, "null or a file path with its sha256"),
    "region": (lambda v: isinstance(v, list) and len(v) == 4 and all(_is_int(x) for x in v), "four integers"),
    "region_source": (lambda v: v in ("given", "chosen"), "'given' or 'chosen'"),
    "noise": (lambda v: v is None or v == "auto" or _is_num(v), "'auto', null or a number"),
    "noise_sigma": (lambda v: v is None or _is_num(v), "null or a number"),
    "device": (lambda v: isinstance(v, str) and v != "", "a device name"),
    "dtype": (lambda v: isinstance(v, str), "a dtype name"),
    "threads": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "output_bits": (lambda v: v in (8, 16), "8 or 16"),
    "panels": (lambda v: isinstance(v, bool), "true or false"),
}


def read_record(path: str | Path) -> dict:
    """The record at ``path``, checked: JSON, this :data:`RECORD_FORMAT`, this package version,
    every ``run`` field present and well-formed and consistent with ``run.config``.

    Raises
    ------
    InputError
        one line: missing, not JSON, older format, other version, edited into an invalid record.
    """
    from .. import __version__

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: record not found" if not p.exists() else f"{p}: is not a record file")
    try:
        rec = json.loads(p.read_text())
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a cbid record (not text)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not a valid JSON record ({exc.msg} at line {exc.lineno}); was it edited?") from None
    if not isinstance(rec, dict):
        raise InputError(f"{p}: not a cbid record (a JSON object expected)")
    fmt = rec.get("format")
    if fmt is None:
        if "settings" in rec and "versions" in rec:
            raise InputError(f"{p}: a record of an older format (no format number: written before runs could be replayed); rerun it with the options it lists")
        raise InputError(f"{p}: not a cbid record (no 'format' field)")
    if fmt != RECORD_FORMAT:
        raise InputError(f"{p}: record format {fmt!r}; this cbid_meta {__version__} replays format {RECORD_FORMAT} only")
    version = rec["versions"].get("cbid_meta") if isinstance(rec.get("versions"), dict) else None
    if not isinstance(version, str):
        raise InputError(f"{p}: not a complete record (versions.cbid_meta is missing); was it edited?")
    if version != __version__:
        raise InputError(f"{p}: written by cbid_meta {version}, this is {__version__}; replay it with cbid_meta {version}")
    run = rec.get("run")
    if not isinstance(run, dict):
        raise InputError(f"{p}: not a complete record (no 'run' section); was it edited?")
    for key, (ok, what) in _RUN_FIELDS.items():
        if key not in run:
            raise InputError(f"{p}: not a complete record (run.{key} is missing); was it edited?")
        if not ok(run[key]):
            raise InputError(f"{p}: run.{key} must be {what}, got {json.dumps(run[key])}; was the record edited?")
    cfg = run["config"]
    from ..config import DeblurConfig

    try:
        DeblurConfig.from_dict(cfg)
    except InputError as exc:
        raise InputError(f"{p}: run.config is not valid ({exc}); was the record edited?") from None
    for key in ("seed", "kernel_size"):
        if cfg.get(key) != run[key]:
            raise InputError(f"{p}: run.{key} is {run[key]} but run.config.{key} is {json.dumps(cfg.get(key))}; was the record edited?")
    if (run["mode"] == "non-blind") != (run["kernel"] is not None) or (run["mode"] == "meta") != (run["init"] is not None):
        raise InputError(f"{p}: run.mode '{run['mode']}' does not match run.init / run.kernel; was the record edited?")
    return rec
