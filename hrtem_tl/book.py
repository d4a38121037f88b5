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
    from .study import run_study, simulation_device
    from .train import pick_device

    pr = get_preset(preset)
    dev = pick_device(device)
    cache = cache_dir(cache).resolve()
    start = time.perf_counter()
    simulate_series("all", pr, cache, simulation_device(str(dev)), scheduler)
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
    index = render_html(src)
    record_timing("book", pr.name, time.perf_counter() - start, cache)
    return index


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
    settings["html_js_files"] = [("vega-bundle.js", {"type": "module"})]  # an ES module: no global clashes
    settings["html_favicon"] = "_static/favicon.png"
    settings["html_context"] = {"default_mode": "light"}
    icon = np.zeros((32, 32), np.uint8)
    icon[8:24, 8:24] = 255
    Image.fromarray(icon).save(src / "_static" / "favicon.png")
    conf.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    return conf


def render_html(src: Path) -> Path:
    """Render the book source folder ``src`` (warnings are errors); return ``index.html``."""
    write_sphinx_conf(src)
    html = src / "_build" / "html"
    _run([str(Path(sys.executable).parent / "sphinx-build"), "-W", "--keep-going", "-n", "-q", "-b", "html",
          str(src), str(html)], "sphinx-build")
    return html / "index.html"
