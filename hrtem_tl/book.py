"""The main job: make missing data and models, execute the chapters with papermill, build the book offline.

The source notebooks in ``chapters/`` carry no outputs; executed copies go to ``<out>/src/chapters`` beside
copies of ``_config.yml`` and ``_toc.yml``, with the Vega bundle in ``<out>/src/_static``, and
``jupyter-book build -W`` renders ``<out>/src`` into ``<out>/src/_build/html``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .cache import atomic_write, cache_dir

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ("intro", "methods", "dose", "defocus", "structure")


def timings_path(cache=None) -> Path:
    return cache_dir(cache) / "timings.json"


def record_timing(stage: str, preset: str, seconds: float, cache=None) -> None:
    """Remember how long a stage of the last build took (read by the introduction)."""
    path = timings_path(cache)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(preset, {})[stage] = round(seconds, 1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1)))


def read_timings(preset: str, cache=None) -> dict:
    path = timings_path(cache)
    return json.loads(path.read_text()).get(preset, {}) if path.exists() else {}


def execute_chapter(name: str, out_dir: Path, parameters: dict) -> Path:
    """Run ``chapters/<name>.ipynb`` with papermill into ``out_dir``."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.ipynb"
    pm.execute_notebook(str(ROOT / "chapters" / f"{name}.ipynb"), str(target), parameters=parameters,
                        kernel_name="python3", cwd=str(out_dir), progress_bar=False)
    return target


def build_book(preset: str = "cpu", cache=None, device: str = "auto", scheduler: str | None = None,
               out: str = "_build", chapters=CHAPTERS) -> Path:
    """Everything from atoms to ``index.html``; returns the path of ``index.html``."""
    from .datasets import simulate_series
    from .figures import write_vega_bundle
    from .presets import get_preset
    from .simulate import gpu_available
    from .study import run_study
    from .train import pick_device

    pr = get_preset(preset)
    dev = pick_device(device)
    cache = cache_dir(cache).resolve()
    start = time.perf_counter()
    sim_device = "gpu" if dev.type == "cuda" and gpu_available() else "cpu"
    simulate_series("all", pr, cache, sim_device, scheduler)
    record_timing("simulate", pr.name, time.perf_counter() - start, cache)
    t0 = time.perf_counter()
    run_study("all", pr, cache, str(dev), scheduler)
    record_timing("train", pr.name, time.perf_counter() - t0, cache)
    out_dir = Path(out).resolve()
    src = out_dir / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, src / name)
    write_vega_bundle(src / "_static" / "vega-bundle.js")
    t0 = time.perf_counter()
    params = {"preset": pr.name, "cache": str(cache), "device": str(dev.type),
              "static_dir": str(out_dir / "figures")}
    for name in chapters:
        execute_chapter(name, src / "chapters", params)
    record_timing("chapters", pr.name, time.perf_counter() - t0, cache)
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(src), "-W", "-n", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    record_timing("book", pr.name, time.perf_counter() - start, cache)
    return src / "_build" / "html" / "index.html"
