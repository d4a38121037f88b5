"""On-disk cache: artefacts keyed by their parameters and the package version, written atomically.

A write goes to a temporary file in the target folder and is renamed into place, so a killed run leaves either
the complete artefact or nothing. A corrupt or truncated ``.npz`` fails its zip CRC or structure check on load, a
damaged results row its parse and key check, damaged model weights their load: each is moved to
``<cache>/damaged/`` with a one-line warning naming it and the reason, and its stage rebuilds it, never using it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import __version__

log = logging.getLogger("hrtem_tl")


ARTEFACT_NAME = "_artefact"  # meta key: the file name an artefact was written under


class CorruptArtefact(Exception):
    """An artefact on disk that cannot be read back whole."""


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The cache root: ``cache``, else ``$HRTEM_TL_CACHE``, else ``./.hrtem_cache``."""
    return Path(cache or os.environ.get("HRTEM_TL_CACHE") or ".hrtem_cache")


def key_of(params: dict) -> str:
    """A short stable hash of ``params`` (JSON-serialisable) and the package version."""
    text = json.dumps({"params": params, "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write(path: Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_npz(path: Path, meta: dict, compress: bool = True, **arrays) -> Path:
    """Write arrays (compressed unless ``compress=False``) plus a JSON ``meta`` record atomically.

    Either way every member carries a CRC32 that ``load_npz`` verifies.
    """
    save = np.savez_compressed if compress else np.savez
    meta = {**meta, ARTEFACT_NAME: Path(path).name}  # read back, it must sit under its own name

    def write(tmp):
        with open(tmp, "wb") as f:
            save(f, meta=np.array(json.dumps(meta, default=_jsonable)), **arrays)
    return atomic_write(path, write)


def load_npz(path: Path) -> tuple[dict, dict]:
    """Read every array of an artefact (verifying CRCs) and its meta; ``CorruptArtefact`` if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError, json.JSONDecodeError) as err:
        raise CorruptArtefact(f"{path}: {err}") from err
    name = meta.pop(ARTEFACT_NAME, Path(path).name)  # artefacts written before the name was recorded pass
    if name != Path(path).name:
        raise CorruptArtefact(f"{path}: holds another artefact ({name})")
    return meta, arrays


def load_or_none(path: Path):
    """``(meta, arrays)`` of a sound artefact; None if missing; a corrupt one is reported, removed, None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_npz(path)
    except CorruptArtefact as err:
        move_aside(path, _cache_root_of(path), str(err).rsplit(": ", 1)[-1])
        return None


def _cache_root_of(path: Path) -> Path:
    """The cache folder an artefact lives in: the parent of its stage folder (scenes, datasets, ...)."""
    for parent in Path(path).resolve().parents:
        if parent.name in ("scenes", "datasets", "models", "results", "fftw"):
            return parent.parent
    return Path(path).resolve().parent


def move_aside(path: Path, cache, reason: str) -> Path:
    """Move a damaged artefact to ``<cache>/damaged/`` (same relative path), with a one-line warning; return
    where it went. Its stage rebuilds it on the next run."""
    path, root = Path(path), cache_dir(cache)
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(path.name)
    dest = root / "damaged" / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    log.warning("damaged artefact %s (%s) moved to %s; it will be rebuilt", path, reason, dest)
    return dest


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")
