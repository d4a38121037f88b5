"""``python -m hrtem_tl cache``: what the cache holds, what a book still needs, damaged and stale artefacts.

- summary: per stage (scenes, datasets, models, results rows, scorecards, FFTW plans, damaged) the number of files
  and their size;
- missing: for a preset and seeds, the datasets and the models of the book (the hands-on chapter's included)
  that the cache lacks;
- ``--check``: every artefact read back whole (npz CRCs, results rows with their keys, model weights); a damaged
  one is moved to ``<cache>/damaged/`` and named, and the stage that owns it rebuilds it on the next run;
  temporary files that a killed write left (older than 10 minutes: no write in flight) are removed;
- ``--prune``: artefacts that no preset makes any more (their parameters changed in ``presets.py``): datasets and
  scenes outside every preset's series, results rows and models whose key is no longer the key of their own job.
  A dry run lists them; ``--yes`` removes them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import datasets as ds
from . import lesson, study
from .cache import CorruptArtefact, cache_dir, load_npz, move_aside
from .presets import PRESETS, Preset

LEFTOVER_AGE = 600  # s: a temporary file older than this belongs to a write that will never finish
STAGES = ("scenes", "datasets", "models", "results/rows", "results/scorecards", "fftw", "damaged")


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")] if folder.exists() else []


def summary(cache=None) -> list[tuple[str, int, int]]:
    """(stage, files, bytes) per stage folder of the cache."""
    root = cache_dir(cache)
    return [(stage, len(f := _files(root / stage)), sum(p.stat().st_size for p in f)) for stage in STAGES]


def missing(preset: Preset, cache=None) -> dict[str, int]:
    """How many datasets and models of ``preset``'s book (at its seeds) the cache lacks."""
    sets = [(name, d, split) for name in ds.SERIES for d in ds.SERIES[name].domains for split in ds.SPLITS]
    jobs = [j for name in ds.SERIES for j in study.grid(name, preset)] + lesson.all_jobs(preset)
    return {"datasets": sum(not ds.dataset_path(*s, preset, cache).exists() for s in sets),
            "datasets_total": len(sets),
            "models": sum(not study.row_path(j, preset, cache).exists() for j in jobs), "models_total": len(jobs)}


def check(cache=None) -> tuple[int, list[str]]:
    """Read every artefact back; move damaged ones aside. Returns (artefacts checked, one line per damaged one)."""
    from .train import load_model

    root, damaged, n = cache_dir(cache), [], 0
    old = time.time() - LEFTOVER_AGE
    leftovers = [p for p in root.rglob(".*.tmp") if p.stat().st_mtime < old] if root.exists() else []
    for path in leftovers:  # temporary files of a write that a kill interrupted (never read as artefacts)
        path.unlink(missing_ok=True)
    if leftovers:
        print(f"removed {len(leftovers)} temporary files of interrupted writes")
    for path in _files(root / "scenes") + _files(root / "datasets"):
        n += 1
        try:
            load_npz(path)
        except CorruptArtefact as err:
            move_aside(path, cache, str(err).rsplit(": ", 1)[-1])
            damaged.append(f"{path}: {str(err).rsplit(': ', 1)[-1]}")
    for path in _files(root / "results" / "rows"):
        n += 1
        try:
            study.read_row(path, cache)
        except study.DamagedRow as err:
            damaged.append(str(err))
    for path in [p for p in _files(root / "models") if p.suffix == ".pt"]:
        n += 1
        try:
            load_model(path)
        except Exception as err:  # any unreadable model (torch and JSON raise many kinds)
            damaged.append(f"{path}: {study.set_aside_model(path, cache, err)}")
    return n, damaged


def stale(cache=None) -> list[Path]:
    """Artefacts that no preset makes any more (module docstring)."""
    root = cache_dir(cache)
    wanted_sets, wanted_scenes = set(), set()
    for pr in PRESETS.values():
        for name in ds.SERIES:
            for domain in ds.SERIES[name].domains:
                for split in ds.SPLITS:
                    wanted_sets.add(ds.dataset_path(name, domain, split, pr, cache).resolve())
        wanted_scenes |= {ds.scene_path(s, cache).resolve() for s in ds.all_scene_specs(list(ds.SERIES), pr)}
    out = [p for p in _files(root / "datasets") if p.resolve() not in wanted_sets]
    out += [p for p in _files(root / "scenes") if p.resolve() not in wanted_scenes]
    current_keys = set()
    for path in _files(root / "results" / "rows"):
        try:
            row = json.loads(path.read_text())
            job = study.Job(**{k: row.get(k) for k in study.Job.__dataclass_fields__})
            if isinstance(job.mixture, list):
                job = study.Job(**{**job.__dict__, "mixture": tuple(job.mixture)})
            ok = row.get("preset") in PRESETS and row["key"] in _keys_of(job, row["preset"])
        except (ValueError, TypeError, KeyError):
            ok = False
        if ok:
            current_keys.add(row["key"])
        else:
            out.append(path)
    out += [p for p in _files(root / "models") if p.stem not in current_keys]
    return out


def _keys_of(job, preset: str) -> set:
    """The keys ``job`` has at the preset called ``preset`` and at every ablation arm based on it (the ablation's
    models are made by ``python -m hrtem_tl ablate``: not stale)."""
    from .ablation import ARMS

    return {job.key(PRESETS[preset])} | {job.key(a.preset(job.series)) for a in ARMS if a.base == preset}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def report(preset: Preset, cache=None, do_check: bool = False, prune: bool = False, yes: bool = False) -> int:
    """The ``cache`` command: print the summary and what is missing; check and prune on request. Exit code: 0, or
    2 when ``--check`` found damaged artefacts."""
    root = cache_dir(cache)
    print(f"cache {root}")
    for stage, files, size in summary(cache):
        print(f"  {stage:20s} {files:6d} files  {_size(size):>10s}")
    need = missing(preset, cache)
    print(f"book at preset {preset.name}, seeds {','.join(map(str, preset.seeds))}: missing "
          f"{need['datasets']}/{need['datasets_total']} datasets, {need['models']}/{need['models_total']} models")
    code = 0
    if do_check:
        start = time.perf_counter()
        n, damaged = check(cache)
        print(f"checked {n} artefacts in {time.perf_counter() - start:.1f} s: {len(damaged)} damaged"
              + "".join(f"\n  {line}" for line in damaged))
        code = 2 if damaged else 0
    if prune:
        old = stale(cache)
        size = sum(p.stat().st_size for p in old)
        verb = "removed" if yes else "would remove (rerun with --yes)"
        print(f"stale artefacts no preset makes any more: {len(old)} ({_size(size)}); {verb}"
              + "".join(f"\n  {p}" for p in old[:20]) + (f"\n  ... {len(old) - 20} more" if len(old) > 20 else ""))
        if yes:
            for p in old:
                p.unlink(missing_ok=True)
    return code
