"""The main job: make missing data and models, execute the chapters with papermill, build the book offline.

The source notebooks in ``chapters/`` carry no outputs; executed copies go to ``<out>/src/chapters`` beside
copies of ``_config.yml`` and ``_toc.yml``, with the Vega bundle in ``<out>/src/_static``. The Sphinx
configuration is generated from ``_config.yml`` by ``jupyter-book config sphinx`` and then rendered by
``sphinx-build -W`` (warnings are errors) into ``<out>/src/_build/html``. Two fixes are applied to the generated
configuration, both needed for an offline page with no console errors: jupyter-book 1.0.4 repeats list
settings (our script was loaded three times) and its sphinx-thebe extension writes a CDN script tag twice (a
JavaScript redeclaration error); we keep lists unique and leave sphinx-thebe and sphinx-comments out (the book
has no launch or comment buttons).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .cache import atomic_write, cache_dir
from .presets import Preset, get_preset

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ("intro", "methods", "handson", "dose", "defocus", "structure", "ablation")
EMPTY_CACHE = "from an empty cache"
# chapters that show what others computed (their cached scorecards) run after them; the rest run side by side, one
# kernel per core (the chapters are independent notebooks; their shared files are written atomically)
CHAPTER_AFTER = {"intro": ("dose", "defocus", "structure"), "ablation": ("dose", "structure")}


def timings_path(cache=None) -> Path:
    return cache_dir(cache) / "timings.json"


def _all_timings(cache=None) -> dict:
    """preset -> stage -> seconds, as recorded on this machine."""
    path = timings_path(cache)
    return json.loads(path.read_text()) if path.exists() else {}


def record_timing(stage: str, preset: str, seconds: float, cache=None) -> None:
    """Remember how long a stage of the last build took (read by the introduction). Chapters run side by side:
    the read and the write hold a lock, so that no chapter's time is lost."""
    import fcntl

    path = timings_path(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _all_timings(cache)
        data.setdefault(preset, {})[stage] = round(seconds, 1)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1)))


def read_timings(preset: str, cache=None) -> dict:
    return _all_timings(cache).get(preset, {})


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


BOOK_STAGES = ("scenes and datasets", "pretrainings", "transfers")  # a book's stages before its chapters


def empty_cache_times(chapter: str, cache=None) -> str:
    """The measured times of ``chapter`` from an empty cache on this machine, per preset, as prose: the chapter
    run alone from an empty cache, or else the stages of a whole book built from one (which made every series)."""
    stage = f"chapter {chapter} {EMPTY_CACHE}"
    found = []
    for name, stages in _all_timings(cache).items():
        if stage in stages:
            found.append(f"{_minutes(stages[stage])} at preset {name}")
        elif all(f"book {s} {EMPTY_CACHE}" in stages for s in BOOK_STAGES):
            parts = ", ".join(f"{s} {_minutes(stages[f'book {s} {EMPTY_CACHE}'])}" for s in BOOK_STAGES)
            found.append(f"at preset {name}, as part of a whole book built from an empty cache: {parts} for every "
                         f"series, then this page's own run")
    return ("; ".join(found) if found else
            "not measured on this machine yet (`python -m hrtem_tl bench class` measures it at the class preset)")


class ChapterClock:
    """A chapter's time to run: started in its first code cell, stopped (and glued) in its last. A run that began
    with an empty cache folder records its time as the chapter's time from an empty cache at its preset."""

    def __init__(self, chapter: str, preset: str | Preset, cache=None):
        self.chapter, self.preset, self.cache = chapter, get_preset(preset).name, cache
        root = cache_dir(cache)
        self.empty = not root.exists() or not any(root.iterdir())
        self.start = time.perf_counter()

    def stop(self, glue) -> float:
        """Record the time, then glue ``<chapter>_time_run`` (this run) and ``<chapter>_time_empty`` (prose)."""
        seconds = time.perf_counter() - self.start
        record_timing(f"chapter {self.chapter}", self.preset, seconds, self.cache)
        if self.empty:
            record_timing(f"chapter {self.chapter} {EMPTY_CACHE}", self.preset, seconds, self.cache)
        glue(f"{self.chapter}_time_run", f"{_minutes(seconds)} at preset {self.preset}"
             + (" from an empty cache" if self.empty else ", with the data and models it found in the cache"))
        glue(f"{self.chapter}_time_empty", empty_cache_times(self.chapter, self.cache))
        return seconds


def _kernel_manager(stderr_path: Path):
    """A kernel manager whose kernel writes its own stderr (start-up notices) to the build log, not the terminal."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(stderr_path, "a") as stderr:  # the kernel process keeps its own copy of the descriptor
                kw["stderr"] = stderr
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def execute_chapter(name: str, out_dir: Path, parameters: dict, log_file: Path | None = None) -> Path:
    """Run ``chapters/<name>.ipynb`` with papermill into ``out_dir``; the page shows no parameter cell.

    The source's default parameters and papermill's injected ones (machine paths among them) are both tagged
    ``remove-cell``: the chapter prints the run's parameters once, tidily, itself.
    """
    import nbformat
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.ipynb"
    partial = out_dir / f".{name}.partial.ipynb"  # papermill writes as it goes: a killed run leaves no page
    extra = {"kernel_manager_class": _kernel_manager(log_file)} if log_file else {}
    try:
        pm.execute_notebook(str(ROOT / "chapters" / f"{name}.ipynb"), str(partial), parameters=parameters,
                            kernel_name="python3", cwd=str(out_dir), progress_bar=False, **extra)
        nb = nbformat.read(partial, as_version=4)
        for cell in nb.cells:
            tags = cell.metadata.get("tags", [])
            if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]
        nbformat.write(nb, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def build_book(preset: str | Preset = "cpu", cache=None, device: str = "auto", scheduler: str | None = None,
               out: str = "_build", chapters=CHAPTERS, progress: bool = True, settings: dict | None = None) -> Path:
    """Everything from atoms to ``index.html``; returns the path of ``index.html``. ``settings``: scientific
    parameters (``datasets.PARAMETERS``, the study's units), given to every chapter too.

    One progress bar per stage (scenes, datasets, pretrainings, transfers, chapters, HTML); one Dask cluster
    serves the simulation and the training.
    """
    from . import lesson
    from .datasets import simulate_series, with_parameters
    from .figures import write_vega_bundle
    from .parallel import n_cores, progress_bar, session
    from .study import run_study, simulation_device
    from .train import pick_device

    pr = with_parameters(get_preset(preset), settings)
    dev = pick_device(device)
    cache = cache_dir(cache).resolve()
    empty = not cache.exists() or not any(cache.iterdir())
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stages: dict = {}
    with session(scheduler, gpu=dev.type == "cuda"):
        simulate_series("all", pr, cache, simulation_device(str(dev)), scheduler, progress=progress)
        stages["scenes and datasets"] = time.perf_counter() - start
        record_timing("simulate", pr.name, stages["scenes and datasets"], cache)
        t0 = time.perf_counter()
        run_study("all", pr, cache, str(dev), scheduler, progress=progress, extra_jobs=lesson.all_jobs(pr),
                  stage_seconds=stages)
        record_timing("train", pr.name, time.perf_counter() - t0, cache)
    if empty:  # the chapters' time boxes read the stages of this build from an empty cache
        for stage in BOOK_STAGES:
            record_timing(f"book {stage} {EMPTY_CACHE}", pr.name, stages.get(stage, 0.0), cache)
    src = out_dir / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, src / name)
    write_vega_bundle(src / "_static" / "vega-bundle.js")
    t0 = time.perf_counter()
    params = {"preset": pr.name, "cache": str(cache), "device": str(dev.type), "seeds": ",".join(map(str, pr.seeds)),
              "static_dir": str(out_dir / "figures"), "settings": dict(settings or {})}
    bar = progress_bar(len(chapters), "chapters", progress, unit="chapter")
    run_chapters(chapters, lambda name: execute_chapter(name, src / "chapters", params, out_dir / "hrtem_tl.log"),
                 bar, workers=1 if dev.type == "cuda" else n_cores())
    bar.close()
    record_timing("chapters", pr.name, time.perf_counter() - t0, cache)
    bar = progress_bar(1, "HTML", progress, unit="build")
    index = render_html(src)
    scrub_downloads(index.parent)
    bar.update()
    bar.close()
    record_timing("book", pr.name, time.perf_counter() - start, cache)
    return index


def run_chapters(names, execute, bar=None, workers: int = 2) -> list[str]:
    """``execute(name)`` for every chapter, ``workers`` at a time, each after the chapters it shows
    (``CHAPTER_AFTER``, those of ``names``); returns the names in the order they finished. A failed chapter
    stops the others from starting and raises once the running ones are done."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pending, done, order, running = list(names), set(), [], {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while pending or running:
            ready = [n for n in pending if set(CHAPTER_AFTER.get(n, ())) & set(names) <= done]
            for name in ready[:max(1, workers) - len(running)]:
                pending.remove(name)
                running[pool.submit(execute, name)] = name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                future.result()  # a failed chapter raises here; the pool waits for the running ones
                done.add(name)
                order.append(name)
                if bar is not None:
                    bar.set_postfix_str(name, refresh=False)
                    bar.update()
    return order


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


def write_sphinx_conf(src: Path) -> Path:
    """``conf.py`` from ``_config.yml`` (jupyter-book), with the two offline fixes of the module docstring."""
    import numpy as np
    from PIL import Image

    _run([str(Path(sys.executable).parent / "jupyter-book"), "config", "sphinx", str(src)], "jupyter-book config")
    conf = src / "conf.py"
    namespace: dict = {}
    exec(conf.read_text(), namespace)  # the generated file only assigns plain values
    settings = {k: v for k, v in namespace.items() if not k.startswith("__")}
    settings["extensions"] = [e for e in settings["extensions"] if e not in ("sphinx_thebe", "sphinx_comments")]
    settings["html_static_path"] = ["_static"]
    settings["html_js_files"] = ["vega-bundle.js"]  # a classic script: loads from file:// too
    settings["html_favicon"] = "_static/favicon.png"
    settings["html_context"] = {"default_mode": "light"}
    icon = np.zeros((32, 32), np.uint8)
    icon[8:24, 8:24] = 255
    Image.fromarray(icon).save(src / "_static" / "favicon.png")
    conf.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    return conf


def scrub_downloads(html: Path) -> None:
    """The notebooks the download button offers (``_sources``) without papermill's injected parameters cell and
    its run record, which hold this machine's paths (the page shows the run's parameters; the notebook keeps its
    defaults cell)."""
    import nbformat

    for path in (html / "_sources").rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        nb.metadata.pop("papermill", None)
        atomic_write(path, lambda tmp: nbformat.write(nb, tmp))


def render_html(src: Path) -> Path:
    """Render the book source folder ``src`` (warnings are errors); return ``index.html``."""
    write_sphinx_conf(src)
    html = src / "_build" / "html"
    _run([str(Path(sys.executable).parent / "sphinx-build"), "-W", "--keep-going", "-n", "-q", "-b", "html",
          str(src), str(html)], "sphinx-build")
    return html / "index.html"
