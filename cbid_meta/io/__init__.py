"""Reading and writing images and kernels, with one-line errors and atomic writes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError

__all__ = ["load_image", "image_info", "save_image", "save_kernel", "save_kernel_npy", "save_npy", "load_kernel", "as_kernel", "save_json", "write_table", "read_table_header", "atomic_path", "MAX_PIXELS", "max_pixels"]

MAX_PIXELS = 50_000_000  # refuse absurd dimensions before decoding (decompression bombs)


def max_pixels() -> int:
    """The pixel limit: ``$CBID_MAX_PIXELS`` when set (a positive integer), else :data:`MAX_PIXELS`."""
    env = os.environ.get("CBID_MAX_PIXELS")
    if env:
        try:
            v = int(env)
            if v > 0:
                return v
        except ValueError:
            pass
        raise InputError(f"CBID_MAX_PIXELS must be a positive integer, got '{env}'")
    return MAX_PIXELS


def image_info(path: str | Path) -> dict:
    """Bit depth, channels and alpha of an image file (without decoding the pixels)."""
    p = Path(path)
    if p.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            with tifffile.TiffFile(p) as t:
                page = t.pages[0]
                bits = 16 if page.dtype.itemsize >= 2 else 8
                spp = page.samplesperpixel
                return {"bits": bits, "channels": min(spp, 3) if spp != 2 else 1, "alpha": spp in (2, 4), "format": "TIFF"}
        except Exception:
            pass
    try:
        with Image.open(p) as im:
            mode = im.mode
            bits = 16 if mode.startswith("I;16") or mode == "I" else 8
            alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
            gray = mode in ("L", "LA", "I", "F", "1") or mode.startswith("I;16")
            fmt = im.format
        if fmt == "PNG":  # Pillow reports 16-bit colour PNGs as 8-bit RGB: read the header
            with open(p, "rb") as f:
                head = f.read(26)
            if len(head) == 26:
                bits = 16 if head[24] == 16 else 8
        return {"bits": bits, "channels": 1 if gray else 3, "alpha": alpha, "format": fmt}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(f"{p}: not an image file (format not recognised)") from None


def load_image(path: str | Path, gray: bool = True) -> np.ndarray:
    """Read an image file as float64 in [0, 1]: (H, W) if ``gray`` else (H, W, C).

    8/16-bit PNG/TIFF and JPEG are accepted; EXIF orientation is applied;
    colour is converted to luminance (ITU-R 601) when ``gray``.

    Raises
    ------
    InputError
        missing file, directory, unreadable/truncated file, not an image,
        empty or 1-pixel image, more than ``MAX_PIXELS`` pixels, NaN/Inf.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an image file")
    limit = max_pixels()
    if p.suffix.lower() in (".tif", ".tiff") and not gray:
        arr = _read_tiff(p, limit)
        if arr is not None:
            return _check_array(p, arr)
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > limit:
                raise InputError(f"{p}: {w}x{h} image exceeds the limit of {limit} pixels (set CBID_MAX_PIXELS to raise it)")
            im = ImageOps.exif_transpose(im)
            im.load()
            arr = _to_array(im, gray)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{p}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{p}: cannot read image ({exc})") from None
    return _check_array(p, arr)


def _read_tiff(p: Path, limit: int):
    """16-bit colour TIFF at full precision (Pillow would reduce it); None to fall back to Pillow."""
    try:
        import tifffile

        with tifffile.TiffFile(p) as t:
            page = t.pages[0]
            if page.dtype.itemsize < 2 or page.samplesperpixel < 3:
                return None
            h, w = page.shape[:2]
            if w * h > limit:
                raise InputError(f"{p}: {w}x{h} image exceeds the limit of {limit} pixels (set CBID_MAX_PIXELS to raise it)")
            a = page.asarray()
    except InputError:
        raise
    except Exception:
        return None
    if a.ndim != 3:
        return None
    scale = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.integer) else 1.0
    return np.clip(a[:, :, :3].astype(np.float64) / scale, 0, 1)


def _check_array(p: Path, arr: np.ndarray) -> np.ndarray:
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{p}: image is {arr.shape[1]}x{arr.shape[0]} pixels, too small to deblur")
    if not np.isfinite(arr).all():
        raise InputError(f"{p}: image contains NaN or Inf values")
    return arr


def _to_array(im: Image.Image, gray: bool) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        a = a / (65535.0 if a.max() > 255 or mode.startswith("I;16") else 255.0)
        return np.clip(a, 0, 1) if gray else np.clip(a, 0, 1)[:, :, None]
    if mode == "F":
        return np.asarray(im, dtype=np.float64)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA" if mode != "LA" else "LA")
        im = im.convert("RGB") if im.mode == "RGBA" else im.convert("L")
    if gray:
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    a = np.asarray(im, dtype=np.float64) / 255.0
    return a if a.ndim == 3 else a[:, :, None]


def atomic_path(target: Path):
    """A temporary path next to ``target``; ``os.replace`` it once fully written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    return Path(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(target: Path, writer) -> Path:
    """Write through a temporary file renamed over ``target``; the file gets the mode a plain
    ``open()`` would give it (0666 less the umask: mkstemp alone would leave it 0600)."""
    target = Path(target)
    tmp = atomic_path(target)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:  # name the file the user asked for, not the temporary one
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _png16_rgb(path: Path, a: np.ndarray) -> None:
    """Minimal 16-bit RGB PNG encoder (Pillow cannot write 16-bit colour)."""
    import struct
    import zlib

    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def save_image(path: str | Path, img: np.ndarray, bits: int = 8) -> Path:
    """Write an (H, W), (H, W, 1) or (H, W, 3) float image in [0, 1] as 8- or 16-bit PNG, atomically."""
    a = np.clip(np.nan_to_num(np.asarray(img, dtype=np.float64)), 0.0, 1.0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if bits == 16 and a.ndim == 3:
        q = (a * 65535 + 0.5).astype(np.uint16)
        return _write_atomic(Path(path), lambda t: _png16_rgb(t, q))
    if bits == 16 and a.ndim == 2:
        out = Image.fromarray((a * 65535 + 0.5).astype(np.uint16))
    else:
        out = Image.fromarray((a * 255 + 0.5).astype(np.uint8))
    return _write_atomic(Path(path), lambda t: out.save(t, format="PNG"))


def save_kernel(path: str | Path, k: np.ndarray, zoom: int = 1) -> Path:
    """Write a kernel as an 8-bit PNG scaled to max 1 (the Levin convention), each tap
    drawn as a ``zoom`` × ``zoom`` block (``zoom = 0``: enough to make it about 256 px wide).

    The PNG is for looking at; :func:`save_kernel_npy` keeps the values."""
    k = np.asarray(k, dtype=np.float64)
    k = k / max(k.max(), 1e-12)
    if zoom == 0:
        zoom = max(1, 256 // max(k.shape))
    if zoom > 1:
        k = np.kron(k, np.ones((zoom, zoom)))
    return save_image(path, k)


def save_npy(path: str | Path, a: np.ndarray) -> Path:
    """Write an array as ``.npy``, atomically (a stopped run never leaves a truncated file)."""
    a = np.asarray(a)

    def writer(tmp):
        with open(tmp, "wb") as f:
            np.save(f, a)

    return _write_atomic(Path(path), writer)


def save_kernel_npy(path: str | Path, k: np.ndarray) -> Path:
    """Write a kernel as a float64 ``.npy`` normalised to sum 1 (what :func:`load_kernel` reads)."""
    k = np.asarray(k, dtype=np.float64)
    return save_npy(path, k / k.sum())


def load_kernel(path: str | Path) -> np.ndarray:
    """A blur kernel from a ``.npy`` array or an image file (PNG, …), returned non-negative,
    odd-sized (padded with a zero row/column if needed) and normalised to sum 1.

    Raises
    ------
    InputError
        missing file, unreadable, not 2-D, NaN/Inf, negative taps, all zero, larger than 255 px.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: kernel file not found")
    if p.suffix.lower() == ".npy":
        try:
            k = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{p}: not a kernel (.npy array expected: {exc})") from None
    else:
        k = load_image(p, gray=True)
    return as_kernel(k, str(p))


def as_kernel(k, name: str = "kernel") -> np.ndarray:
    """A 2-D array as a blur kernel: non-negative, odd and square (centred in zero padding),
    sum 1; :class:`InputError` for NaN/Inf, negative taps, all zero, not 2-D, over 255 px."""
    try:
        k = np.squeeze(np.asarray(k, dtype=np.float64))
    except (TypeError, ValueError):
        raise InputError(f"{name}: not a kernel (numbers expected)") from None
    if k.ndim != 2:
        raise InputError(f"{name}: not a kernel (a 2-D array expected, got shape {k.shape})")
    if not np.isfinite(k).all():
        raise InputError(f"{name}: kernel contains NaN or Inf values")
    if (k < -1e-6 * max(np.abs(k).max(), 1e-300)).any():
        raise InputError(f"{name}: kernel has negative taps")
    k = np.clip(k, 0, None)
    if k.sum() <= 0:
        raise InputError(f"{name}: kernel is all zero")
    if max(k.shape) > 255:
        raise InputError(f"{name}: kernel of {k.shape[0]}x{k.shape[1]} taps is larger than 255 px")
    n = max(k.shape) + (1 - max(k.shape) % 2)
    out = np.zeros((n, n))
    t, l = (n - k.shape[0]) // 2, (n - k.shape[1]) // 2
    out[t : t + k.shape[0], l : l + k.shape[1]] = k
    return out / out.sum()


def write_table(df, path: str | Path, meta: dict, float_format: str = "%.4f") -> Path:
    """CSV with ``# key: value`` provenance lines first, written atomically (fsync + rename);
    read back with ``pandas.read_csv(path, comment="#")``."""

    def writer(tmp):
        with open(tmp, "w") as f:
            for k, v in meta.items():
                f.write(f"# {k}: {v}\n")
            df.to_csv(f, index=False, float_format=float_format)
            f.flush()
            os.fsync(f.fileno())

    return _write_atomic(Path(path), writer)


def read_table_header(path: str | Path) -> dict:
    """The ``# key: value`` provenance lines of a table written by :func:`write_table`."""
    meta = {}
    for line in Path(path).read_text().splitlines():
        if not line.startswith("# "):
            break
        k, _, v = line[2:].partition(": ")
        meta[k] = v
    return meta


def save_json(path: str | Path, data: dict) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, default=_json_default)
    return _write_atomic(Path(path), lambda t: Path(t).write_text(text))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
