"""Student notebooks: every chapter with its solutions taken out (``python -m hrtem_tl student OUT``).

A chapter's solutions are the cells tagged ``solution``: the code that computes an exercise's answer and the
folded ``{solution}`` block that explains it. In a student copy each becomes a stub tagged ``exercise-stub`` (a
"your code here" code cell, or a markdown cell for the answer); everything else is kept, and the parameters
cell's preset is set to the one asked for (``class`` by default: a lab session on a laptop). Each notebook is
written with its paired py:percent file beside it, as the chapters are.
"""

from __future__ import annotations

import re
from pathlib import Path

from .presets import get_preset

SOLUTION_TAG = "solution"
STUB_TAG = "exercise-stub"
CODE_STUB = "# Your code here: compute what the exercise above asks for.\n"
MARKDOWN_STUB = "**Your answer:** (write it here; the solution is in the book)"


def _chapters_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "chapters"


def strip_solutions(nb, preset: str = "class"):
    """A copy of notebook ``nb`` (nbformat) whose solution cells are stubs, with ``preset`` as its default."""
    import copy

    import nbformat

    get_preset(preset)  # a one-line error for an unknown preset
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        tags = cell.metadata.get("tags", [])
        if SOLUTION_TAG in tags:
            make = nbformat.v4.new_code_cell if cell.cell_type == "code" else nbformat.v4.new_markdown_cell
            stub = make(CODE_STUB if cell.cell_type == "code" else MARKDOWN_STUB)
            stub.metadata["tags"] = [STUB_TAG]
            cells.append(stub)
            continue
        if "parameters" in tags:
            cell.source = re.sub(r'^preset = "[^"]*"', f'preset = "{preset}"', cell.source, flags=re.M)
        cells.append(cell)
    out.cells = cells
    return out


def write_student_notebooks(out: str | Path, preset: str = "class", chapters=None) -> list[Path]:
    """Write ``<out>/<chapter>.ipynb`` and ``<out>/<chapter>.py`` for every chapter (or ``chapters``); return the
    notebooks' paths. Nothing is written when ``preset`` is unknown."""
    import jupytext
    import nbformat

    from .book import CHAPTERS

    get_preset(preset)  # before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in chapters or CHAPTERS:
        nb = strip_solutions(nbformat.read(_chapters_dir() / f"{name}.ipynb", as_version=4), preset)
        path = out / f"{name}.ipynb"
        nbformat.write(nb, path)
        jupytext.write(nb, out / f"{name}.py", fmt="py:percent")
        paths.append(path)
    return paths
