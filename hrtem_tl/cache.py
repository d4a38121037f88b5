"""On-disk cache: artefacts keyed by their parameters and the package version, written atomically.

A write goes to a temporary file in the target folder and is renamed into place, so a killed run leaves either
the complete artefact or nothing. A corrupt or truncated ``.npz`` fails its zip CRC or structure check on load:
it is reported, deleted and recomputed, never used.
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
    return meta, arrays


def load_or_none(path: Path):
    """``(meta, arrays)`` of a sound artefact; None if missing; a corrupt one is reported, removed, None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_npz(path)
    except CorruptArtefact as err:
        log.warning("corrupt artefact, recomputing: %s", err)
        path.unlink(missing_ok=True)
        return None


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")
