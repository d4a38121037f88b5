"""Student notebooks: ``python -m hrtem_tl student OUT`` writes every chapter without its solutions; each runs
under papermill at the smoke preset up to its first exercise stub."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from hrtem_tl.book import CHAPTERS, ROOT
from hrtem_tl.student import STUB_TAG, strip_solutions, write_student_notebooks


def _solution_cells(name: str) -> list:
    nb = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
    return [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_has_exercises_with_folded_solutions(name):
    nb = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    labels = [line.split(":label:", 1)[1].strip() for line in text.splitlines() if line.startswith(":label:")]
    assert 3 <= len(labels) <= 6, labels
    for label in labels:  # one folded solution per exercise, plain {solution} blocks (never solution-start)
        block = text.split(f":::{{solution}} {label}\n", 1)
        assert len(block) == 2, f"{name}: no solution for {label}"
        assert block[1].startswith(":class: dropdown"), f"{name}: the solution of {label} is not folded"
    assert "solution-start" not in text
    assert all("remove-cell" in c.metadata["tags"] for c in _solution_cells(name) if c.cell_type == "code")


def test_the_student_command_writes_every_chapter_without_its_solutions(tmp_path):
    out = tmp_path / "students"
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "student", str(out)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{len(CHAPTERS)} student notebooks" in result.stdout
    for name in CHAPTERS:
        nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
        paired = (out / f"{name}.py").read_text()
        assert paired.startswith("# ---") and "# %%" in paired
        stubs = [c for c in nb.cells if STUB_TAG in c.metadata.get("tags", [])]
        assert len(stubs) == len(_solution_cells(name)) > 0
        everything = "\n".join(c.source for c in nb.cells) + paired
        assert "{solution}" not in everything

        def plain(line: str) -> str:  # a line of the notebook or of its .py twin, without the comment mark
            return line.strip().removeprefix("#").strip()

        kept = {plain(line) for line in everything.splitlines()}
        for cell in _solution_cells(name):  # no line of a solution survives, in the notebook or its .py twin
            for line in cell.source.splitlines():
                if len(line.strip()) > 25 and not line.strip().startswith(("import ", "from ")):
                    assert plain(line) not in kept, f"{name}: {line!r}"
        parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert 'preset = "class"' in parameters.source


def test_a_bad_preset_writes_nothing(tmp_path):
    out = tmp_path / "students"
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "student", str(out), "--preset", "huge"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: preset='huge' is unknown; allowed: paper, cpu, cpu-fine, class, smoke"]
    assert not out.exists()
    with pytest.raises(ValueError, match="preset='huge' is unknown"):
        strip_solutions(nbformat.v4.new_notebook(), "huge")


@pytest.mark.parametrize("name", CHAPTERS)
def test_each_student_notebook_runs_up_to_its_first_stub(name, smoke_cache, tmp_path):
    path = write_student_notebooks(tmp_path, "smoke", chapters=[name])[0]
    nb = nbformat.read(path, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if STUB_TAG in c.metadata.get("tags", []))
    nb.cells = nb.cells[:first]
    head = tmp_path / f"{name}-head.ipynb"
    nbformat.write(nb, head)
    out = tmp_path / f"{name}-out.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(head), str(out), "-p", "cache", str(smoke_cache), "-p", "device",
           "cpu", "--cwd", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
