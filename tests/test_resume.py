"""kill -9 of the whole process group during simulation and during chapter execution, then a rerun: the result
equals a clean run's, nothing half-written is left where a reader looks, and no process of the group survives."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from hrtem_tl import datasets as ds
from hrtem_tl.cache import load_npz


def _start(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hrtem_tl", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)


def _kill_group_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    """SIGKILL the process group of ``proc`` as soon as ``ready()`` is true (fails if the command ends first)."""
    end = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the command finished before it could be killed"
        assert time.time() < end, "the command never reached the stage to kill"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _group_gone(pgid: int, wait: float = 10) -> bool:
    end = time.time() + wait
    while time.time() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _kernels_gone(parent: int, wait: float = 20) -> bool:
    """No kernel started by ``parent`` is alive (jupyter kernels run in their own session and watch their parent
    through JPY_PARENT_PID, exiting when it dies)."""
    import psutil

    end = time.time() + wait
    while time.time() < end:
        alive = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("JPY_PARENT_PID") == str(parent):
                    alive.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        if not alive:
            return True
        time.sleep(0.5)
    return False


def _dataset_hashes(cache: Path) -> dict:
    return {p.relative_to(cache).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((cache / "datasets").rglob("*.npz"))}


def _visible_artefacts_load(cache: Path) -> None:
    for path in list((cache / "scenes").rglob("*.npz")) + list((cache / "datasets").rglob("*.npz")):
        load_npz(path)  # CorruptArtefact if half-written


def test_kill_during_simulation_then_rerun_equals_a_clean_run(smoke_cache, tmp_path):
    wisdom = ds.wisdom_path(smoke_cache)  # the same FFTW plans in both caches: the same exit waves
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for cache in (clean, killed):
        (cache / "fftw").mkdir(parents=True)
        shutil.copy(wisdom, cache / "fftw" / wisdom.name)
    args = ["simulate", "--series", "dose", "--preset", "smoke"]
    assert subprocess.run([sys.executable, "-m", "hrtem_tl", *args, "--cache", str(clean)],
                          capture_output=True).returncode == 0
    proc = _start(*args, "--cache", str(killed))
    _kill_group_when(proc, lambda: len(list((killed / "scenes").rglob("*.npz"))) >= 3)
    assert _group_gone(proc.pid), "a process of the killed run (a Dask worker?) survived"
    _visible_artefacts_load(killed)
    assert len(list((killed / "scenes").rglob("*.npz"))) < len(list((clean / "scenes").rglob("*.npz")))
    assert subprocess.run([sys.executable, "-m", "hrtem_tl", *args, "--cache", str(killed)],
                          capture_output=True).returncode == 0
    assert _dataset_hashes(killed) == _dataset_hashes(clean) and _dataset_hashes(clean)


def test_kill_during_chapter_execution_leaves_no_page_and_no_kernel(smoke_cache, tmp_path):
    from hrtem_tl import study

    study.run_study("dose", "smoke", smoke_cache, device="cpu", scheduler="synchronous", progress=False)
    out = tmp_path / "book"
    proc = _start("book", "--preset", "smoke", "--cache", str(smoke_cache), "--device", "cpu", "--out", str(out))
    chapters = out / "src" / "chapters"
    _kill_group_when(proc, lambda: chapters.exists() and any(chapters.glob(".*.partial.ipynb")), timeout=600)
    assert _group_gone(proc.pid), "a process of the killed book survived"
    assert _kernels_gone(proc.pid), "the kernel of the killed book survived it"
    executed = [p for p in chapters.glob("*.ipynb") if not p.name.startswith(".")]  # not the partial ones
    for page in executed:  # a page is there only when its chapter ran to the end
        assert '"execution_count"' in page.read_text()
    assert not (out / "src" / "_build" / "html" / "index.html").exists()
