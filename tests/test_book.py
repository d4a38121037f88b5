"""The book: chapters execute under papermill at the smoke preset, the build passes -W, and the pages work in a
real browser with every non-loopback request blocked.

Set ``HRTEM_TL_BOOK_DIR`` to the ``--out`` folder of an existing build to check that one instead (for example
the cpu-preset book); screenshots are written to ``<out>/screenshots``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hrtem_tl import claims
from hrtem_tl.book import CHAPTERS, ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
EXPECTED_CHARTS = {"intro": 1, "methods": 2, "handson": 3, "dose": 3, "defocus": 6, "structure": 3, "ablation": 2}
MAIN_FIGURE = {"intro": "claims_forest", "methods": "examples", "handson": "handson_learning_curve",
               "dose": "dose_pt", "defocus": "defocus_pt", "structure": "structure_pt", "ablation": "ablation_claims"}
MORE_FIGURES = {"dose": ("dose_distance",), "defocus": ("defocus_distance",),
                "handson": ("handson_epochs",), "ablation": ("ablation_fit",)}  # also saved from file://


@pytest.fixture(scope="session")
def build(smoke_cache, tmp_path_factory) -> tuple[Path, str | None]:
    """(the ``--out`` folder of a built book, what its build printed): the smoke book built here by the README's
    command, or ``$HRTEM_TL_BOOK_DIR`` (its terminal then unknown)."""
    if os.environ.get("HRTEM_TL_BOOK_DIR"):
        return Path(os.environ["HRTEM_TL_BOOK_DIR"]), None
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "book", "--preset", "smoke", "--cache",
                             str(smoke_cache), "--device", "cpu", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stdout + result.stderr


@pytest.fixture(scope="session")
def book(build) -> Path:
    return build[0]


def html_dir(book: Path) -> Path:
    return book / "src" / "_build" / "html"


def screenshots(book: Path, site: str) -> tuple[Path, str]:
    """The folder for a build's screenshots, and the scheme a page was opened with (file or http)."""
    shots = book / "screenshots"
    shots.mkdir(exist_ok=True)
    return shots, site.split(":", 1)[0]


def test_every_chapter_executed_and_rendered(book):
    for name in CHAPTERS:
        executed = json.loads((book / "src" / "chapters" / f"{name}.ipynb").read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, name
        assert (html_dir(book) / "chapters" / f"{name}.html").exists()
    assert (html_dir(book) / "index.html").exists()
    assert list((book / "figures").glob("*.png")), "static PNG copies of the figures"


def test_the_build_terminal_is_progress_bars_and_a_few_lines(build):
    out, terminal = build
    if terminal is None:
        pytest.skip("an existing build: its terminal was not captured")
    lines = [line for line in terminal.replace("\r", "\n").splitlines() if line.strip()]
    finished = [line for line in lines if "100%" in line]
    for stage in ("scenes", "datasets", "pretrainings", "transfers", "chapters", "HTML"):
        assert any(line.startswith(stage) for line in finished), f"no finished {stage} bar"
    others = [line for line in lines if "%|" not in line]
    assert len(others) <= 4, others  # the index and log paths, nothing else
    for chatter in ("INFO", "distributed", "without encryption", "Warning"):
        assert chatter not in terminal
    log = (out / "hrtem_tl.log").read_text()
    assert "distributed" in log  # the chatter is kept in the build's log file


def test_pages_reference_no_remote_script_or_style(book):
    for page in (html_dir(book) / "chapters").glob("*.html"):
        text = page.read_text()
        for attr in ('src="http', "src='http", 'href="http'):
            for hit in [line for line in text.splitlines() if attr in line and "<script" in line or
                        attr in line and "stylesheet" in line]:
                pytest.fail(f"{page.name} loads a remote resource: {hit.strip()[:200]}")


def test_papermill_runs_a_chapter_with_parameters(smoke_cache, tmp_path):
    out = tmp_path / "dose.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "chapters" / "dose.ipynb"), str(out), "-p", "preset",
           "smoke", "-p", "cache", str(smoke_cache), "-p", "device", "cpu", "--cwd", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    nb = json.loads(out.read_text())
    assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])


# ---------------------------------------------------------------- browser

@pytest.fixture(scope="session")
def server(book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html_dir(book)))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="session", params=["http", "file"])
def site(request, server, book) -> str:
    """The book's root URL, served over http or opened from disk (file://, as a double-click opens it)."""
    return server if request.param == "http" else html_dir(book).resolve().as_uri()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium): .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A chapter page opened with every request off this machine blocked and its console errors recorded."""

    def __init__(self, browser, url):
        self.errors, self.outside = [], []
        self.page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")

    def _route(self, route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "file://", "blob:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def views(self) -> list[str]:
        self.page.wait_for_function(
            "document.querySelectorAll('.hrtem-chart').length == Object.keys(window.hrtemViews || {}).length")
        return self.page.evaluate("Object.keys(window.hrtemViews || {})")

    def data(self, view: str) -> str:
        """Every dataset of a chart's Vega view (plain fields of each datum), as JSON."""
        return self.page.evaluate(
            f"""async () => {{ const v = window.hrtemViews['{view}']; await v.runAsync(); const out = {{}};
            for (const name of Object.keys(v._runtime.data)) {{
              try {{ out[name] = v.data(name).map(d => Object.fromEntries(
                       Object.entries(d).filter(([k, x]) => typeof x !== 'object'))); }} catch (e) {{}} }}
            return JSON.stringify(out); }}""")

    def drawn(self, view: str) -> list[str]:
        """Fill colours and image links of the marks drawn in a chart's SVG."""
        return self.page.evaluate(
            f"""() => Array.from(document.querySelectorAll('#{view} svg path[fill], #{view} svg image'))
            .map(e => (e.getAttribute('fill') || '') + (e.getAttribute('href') || '').slice(-40))""")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_in_a_browser(browser, site, book, chapter):
    page = Page(browser, f"{site}/chapters/{chapter}.html")
    views = page.views()
    n_charts = page.page.evaluate("document.querySelectorAll('.hrtem-chart').length")
    assert len(views) == n_charts == EXPECTED_CHARTS[chapter]
    for view in views:
        marks = page.page.evaluate(f"document.querySelectorAll('#{view} svg .mark-rect path, #{view} svg "
                                   f".mark-symbol path, #{view} svg .mark-image image, #{view} svg .mark-rule line')"
                                   ".length")
        assert marks > 0, f"{chapter}: chart {view} drew nothing"
    shots, scheme = screenshots(book, site)
    page.page.screenshot(path=str(shots / f"{chapter}-{scheme}.png"), full_page=True)
    if MAIN_FIGURE[chapter] and scheme == "file":  # as a reader who double-clicked the page sees it
        page.page.locator(f"#{MAIN_FIGURE[chapter]}").screenshot(path=str(shots / f"{chapter}-main.png"))
        for view in MORE_FIGURES.get(chapter, ()):
            page.page.locator(f"#{view}").screenshot(path=str(shots / f"{view}.png"))
    assert not page.errors, page.errors
    assert not page.outside, page.outside
    page.page.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_pages_show_no_machine_details_and_the_run_parameters_once(browser, site, book, chapter):
    page = Page(browser, f"{site}/chapters/{chapter}.html")
    text = page.page.inner_text("body")
    cache = json.loads((book / "src" / "chapters" / f"{chapter}.ipynb").read_text())
    injected = [c for c in cache["cells"] if "injected-parameters" in c["metadata"].get("tags", [])][0]
    cache_path = next(line.split("=", 1)[1].strip().strip('"') for line in "".join(injected["source"]).splitlines()
                      if line.startswith("cache ="))
    for secret in (cache_path, str(Path.home()), str(book.resolve()), "PosixPath("):
        assert secret not in text, f"{chapter} shows {secret!r}"
    assert text.count("This page was computed with preset") == 1
    page.page.close()


def test_charts_export_png_and_svg_offline(browser, site):
    page = Page(browser, f"{site}/chapters/dose.html")
    page.views()
    menu = page.page.locator("#dose_pt details")
    menu.locator("summary").click()
    links = menu.locator(".vega-actions a")
    labels = links.all_text_contents()
    assert any("PNG" in label for label in labels) and any("SVG" in label for label in labels), labels
    assert not any("Editor" in label or "View Source" in label for label in labels), labels
    with page.page.expect_download() as download:
        links.filter(has_text="SVG").click()
    assert download.value.suggested_filename.endswith(".svg")
    assert "<svg" in Path(download.value.path()).read_text()
    assert not page.errors and not page.outside
    page.page.close()


@pytest.mark.parametrize("chapter", ["dose", "defocus", "structure"])
def test_each_chapter_offers_its_figure_data_as_csv(browser, site, chapter):
    header = "source,target,stage,freeze,seed,replicate,loss,loss_study"
    page = Page(browser, f"{site}/chapters/{chapter}.html")
    with page.page.expect_download() as download:
        page.page.locator("a.hrtem-download").first.click()
    assert download.value.suggested_filename == f"{chapter}_models.csv"
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == header and len(lines) > 10
    page.page.close()


@pytest.mark.parametrize("chapter", ["dose", "defocus", "structure"])
def test_freeze_and_reduction_pickers_change_the_drawn_values(browser, site, chapter):
    page = Page(browser, f"{site}/chapters/{chapter}.html")
    view = MAIN_FIGURE[chapter]
    page.views()
    before_data, before_drawn = page.data(view), page.drawn(view)
    page.page.locator(f"#{view} input[type=radio][value=max]").check()
    after_reduction = page.data(view), page.drawn(view)
    assert after_reduction[0] != before_data and after_reduction[1] != before_drawn
    boxes = page.page.locator(f"#{view} input[type=checkbox]")
    assert boxes.count() == 3
    boxes.nth(0).uncheck()  # drop "none"
    boxes.nth(1).uncheck()  # drop "encoder": only decoder-frozen models remain
    after_freeze = page.data(view), page.drawn(view)
    assert after_freeze[0] != after_reduction[0] and after_freeze[1] != after_reduction[1]
    boxes.nth(2).uncheck()  # no transfer left: the P cells (every pretraining of a source) stay drawn
    cells = page.page.evaluate(f"document.querySelectorAll('#{view} svg .mark-rect path').length")
    assert 0 < cells < len(after_freeze[1])
    assert not page.errors, page.errors
    page.page.close()


def test_the_forest_plot_shows_every_claim_with_its_interval(browser, site, book):
    page = Page(browser, f"{site}/chapters/intro.html")
    page.views()
    data = json.loads(page.data("claims_forest"))
    rows = max(data.values(), key=len)
    assert len({r["claim"] for r in rows}) == len(claims.CLAIMS)  # every claim of the scorecard, one row each
    assert any(r.get("low") is not None and r.get("high") is not None and r["low"] <= r["run"] <= r["high"]
               for r in rows)
    n_rules = page.page.evaluate("document.querySelectorAll('#claims_forest svg .mark-rule line').length")
    assert n_rules > 1  # the zero line and the intervals
    assert not page.errors and not page.outside
    page.page.close()


def test_example_viewer_switches_images(browser, site):
    page = Page(browser, f"{site}/chapters/methods.html")
    page.views()
    select = page.page.locator("#examples select")
    options = select.locator("option").all_text_contents()
    assert len(options) == 34  # 11 defocus + 5 dose + 18 structure datasets
    before = page.drawn("examples")
    select.select_option(options[-1])
    page.data("examples")
    after = page.drawn("examples")
    images = page.page.evaluate("document.querySelectorAll('#examples svg .mark-image image').length")
    assert before != after and images == 2  # image and mask
    assert not page.errors, page.errors
    page.page.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_exercises_render_with_their_solutions_folded_until_opened(browser, site, book, chapter):
    page = Page(browser, f"{site}/chapters/{chapter}.html")
    exercises = page.page.locator(".exercise")
    solutions = page.page.locator(".solution")
    assert exercises.count() >= 3 and solutions.count() == exercises.count()
    first = solutions.first
    body = first.locator("section, p").last
    first.scroll_into_view_if_needed()
    assert not body.is_visible()  # folded
    shots, scheme = screenshots(book, site)
    if scheme == "file":
        first.screenshot(path=str(shots / f"{chapter}-solution-closed.png"))
    first.locator(".toggle-button").click()
    body.wait_for(state="visible")
    text = first.inner_text()
    assert "{glue" not in text and "glue:text" not in text  # every number was filled in by the run
    if scheme == "file":
        exercises.first.screenshot(path=str(shots / f"{chapter}-exercise.png"))
        first.screenshot(path=str(shots / f"{chapter}-solution-open.png"))
    first.locator(".toggle-button").click()
    body.wait_for(state="hidden")
    assert not page.errors, page.errors
    assert not page.outside, page.outside
    page.page.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_download_button_offers_the_chapter_notebook_offline(browser, site, book, chapter):
    page = Page(browser, f"{site}/chapters/{chapter}.html")
    link = page.page.locator("a[href$='.ipynb']").first
    href = link.get_attribute("href")
    assert href and href.endswith(f"{chapter}.ipynb") and not href.startswith("http")
    target = (html_dir(book) / "chapters" / href).resolve()
    notebook = json.loads(target.read_text())
    assert notebook["cells"] and any(c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
    # the executed notebook, without the injected parameters cell that holds this machine's paths
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in notebook["cells"])
    assert str(book.resolve()) not in target.read_text()
    page.page.locator(".dropdown-download-buttons button").first.click()
    assert link.is_visible()
    assert not page.errors and not page.outside
    page.page.close()


# ---------------------------------------------------------------- source hygiene

def test_paired_chapters_are_in_sync_and_clean(tmp_path):
    chapters = tmp_path / "chapters"
    shutil.copytree(ROOT / "chapters", chapters, ignore=shutil.ignore_patterns("figures"))
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    before = {p.name: p.read_text() for p in chapters.glob("*.*")}
    result = subprocess.run([sys.executable, "-m", "jupytext", "--sync", *map(str, sorted(chapters.glob("*.py")))],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    changed = [p.name for p in chapters.glob("*.*") if p.read_text() != before[p.name]]
    assert not changed, f"jupytext --sync changed {changed}: run it and commit"
    for name in CHAPTERS:
        nb = json.loads((ROOT / "chapters" / f"{name}.ipynb").read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        assert "widgets" not in nb["metadata"]
        for cell in nb["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), f"{name} carries outputs"
        first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        assert "parameters" in first_code["metadata"].get("tags", [])


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "hrtem_tl", "tests", "chapters"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chapters_run_side_by_side_after_the_chapters_they_show(tmp_path):
    """The introduction and the ablation page read the series chapters' scorecards: they start only after them;
    the rest run two at a time, and a failed chapter raises its error."""
    import time

    from hrtem_tl.book import CHAPTER_AFTER, run_chapters

    started, ended = {}, {}

    def execute(name):
        started[name] = time.perf_counter()
        time.sleep(0.05)
        ended[name] = time.perf_counter()

    order = run_chapters(CHAPTERS, execute, workers=2)
    assert sorted(order) == sorted(CHAPTERS)
    for chapter, before in CHAPTER_AFTER.items():
        assert all(started[chapter] >= ended[b] for b in before)
    assert any(started[b] < ended[a] and started[a] < ended[b] for a in CHAPTERS for b in CHAPTERS if a != b)

    def fails(name):
        if name == "dose":
            raise RuntimeError("dose failed")

    with pytest.raises(RuntimeError, match="dose failed"):
        run_chapters(CHAPTERS, fails, workers=2)


def _chart_domains(nb: dict, title: str) -> set:
    """The source and target domains in the data of the chapter's chart titled ``title...`` (Vega-Lite)."""
    found = set()
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            spec = output.get("data", {}).get("application/vnd.vegalite.v5+json")
            if not spec or not json.dumps(spec.get("title", "")).startswith(json.dumps(title)[:-1]):
                continue
            for values in [spec.get("data", {}).get("values", []), *spec.get("datasets", {}).values()]:
                found |= {row[k] for row in values for k in ("source", "target") if k in row}
    return found


def test_a_chapter_re_executed_with_other_doses_trains_only_those(smoke_cache, tmp_path):
    """papermill -p doses: the dose chapter's heatmaps hold exactly those doses, the page says so at the top, and
    the cache gains only their datasets and models (the CdSe scenes are shared; no other series trains)."""
    from hrtem_tl import datasets as ds
    from hrtem_tl import study

    cache = tmp_path / "cache"  # a copy: the session's smoke cache stays the study's for the other tests
    shutil.copytree(smoke_cache, cache)

    def files(folder):
        root = cache / folder
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    before = {folder: files(folder) for folder in ("scenes", "datasets", "models", "results/rows")}
    out = tmp_path / "dose.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "chapters" / "dose.ipynb"), str(out), "-p", "preset",
           "smoke", "-p", "cache", str(cache), "-p", "device", "cpu", "-p", "doses", "[20, 40, 80]",
           "--cwd", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    nb = json.loads(out.read_text())
    assert _chart_domains(nb, "Loss on the target dose") == {"20", "40", "80"}
    text = json.dumps(nb, ensure_ascii=False)
    assert "doses `20, 40, 80 e-/Å²`" in text or "doses <code>20, 40, 80 e-/Å²</code>" in text
    assert files("scenes") == before["scenes"]
    new_sets = files("datasets") - before["datasets"]
    assert len(new_sets) == 6 and all(p.parts[1] == "dose" and p.name.split("-")[0] in ("20", "40", "80")
                                      for p in new_sets)
    grid = study.grid("dose", ds.with_parameters(ds.get_preset("smoke"), doses=[20, 40, 80]))
    new_weights = {p for p in files("models") - before["models"] if p.suffix == ".pt"}
    assert len(new_weights) == sum(j.kind == "pretrain" for j in grid)  # transfers keep their rows only
    assert all(p.parts[1] == "dose" for p in new_weights)
    new_rows = files("results/rows") - before["results/rows"]
    assert len(new_rows) == len(grid) and all(p.parts[0] == "dose" for p in new_rows)


def test_the_structure_chapter_re_executed_with_gold_and_a_cif_material(smoke_cache, tmp_path):
    """papermill -p lattices: the structure chapter's heatmaps hold exactly gold and a CIF crystal (written here
    with ASE); the cache gains only their scenes and structure models; the page names them at the top."""
    from ase.build import bulk
    from ase.io import write

    cache = tmp_path / "cache"  # a copy: the session's smoke cache stays the study's for the other tests
    shutil.copytree(smoke_cache, cache)
    cif = tmp_path / "NaCl.cif"
    write(cif, bulk("NaCl", "rocksalt", a=5.64, cubic=True), format="cif")

    def files(folder):
        root = cache / folder
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    before = {folder: files(folder) for folder in ("scenes", "models", "results/rows")}
    out = tmp_path / "structure.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "chapters" / "structure.ipynb"), str(out), "-p", "preset",
           "smoke", "-p", "cache", str(cache), "-p", "device", "cpu", "-p", "lattices", f"['Au', '{cif}']",
           "--cwd", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    nb = json.loads(out.read_text())
    assert _chart_domains(nb, "Loss on the target lattice") == {"Au_small", "NaCl_small"}
    assert "Au, NaCl" in json.dumps(nb, ensure_ascii=False)  # the changed parameter, on the page
    new_scenes = files("scenes") - before["scenes"]
    assert new_scenes and {p.parts[0] for p in new_scenes} == {"Au", "NaCl"}
    assert {p.parts[1] for p in files("models") - before["models"]} == {"structure"}
    assert {p.parts[0] for p in files("results/rows") - before["results/rows"]} == {"structure"}


def test_the_dose_chapter_re_executed_with_gold_particles(smoke_cache, tmp_path):
    """papermill -p material: the dose chapter on gold particles (two doses, to keep it short) simulates only gold
    scenes, trains only dose models, titles its heatmaps with gold and names it at the top of the page."""
    cache = tmp_path / "cache"  # a copy: the session's smoke cache stays the study's for the other tests
    shutil.copytree(smoke_cache, cache)

    def files(folder):
        root = cache / folder
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    before = {folder: files(folder) for folder in ("scenes", "models")}
    out = tmp_path / "dose.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "chapters" / "dose.ipynb"), str(out), "-p", "preset",
           "smoke", "-p", "cache", str(cache), "-p", "device", "cpu", "-p", "material", "Au", "-p", "doses",
           "[30, 300]", "--cwd", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    nb = json.loads(out.read_text())
    assert _chart_domains(nb, "Loss on the target dose (Au, defocus -10 nm)") == {"30", "300"}
    text = json.dumps(nb, ensure_ascii=False)
    assert "material `Au`" in text or "material <code>Au</code>" in text
    new_scenes = files("scenes") - before["scenes"]
    assert new_scenes and {p.parts[0] for p in new_scenes} == {"Au"}
    assert {p.parts[1] for p in files("models") - before["models"]} == {"dose"}
