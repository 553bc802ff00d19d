"""Generate the student notebooks (``notebooks/``) from the solutions (``solutions/``).

``solutions/`` is the source of truth. In a solution notebook the student's
part of a code cell sits between two marker lines, as in nbgrader::

    # Exercise 0.3: average precision
    def average_precision(labels, n_relevant):
        ### BEGIN SOLUTION
        hits = np.cumsum(labels)
        ...
        ### END SOLUTION

The student version replaces each block, at the indentation of its
``### BEGIN SOLUTION`` line, with::

        raise NotImplementedError("Exercise 0.3: average precision")

The exercise is named by the nearest ``# Exercise X.Y: title`` comment line
above the block in the same cell (required: a block without one is an
error). A block may state its own stub instead: its lines that start with
``### STUB`` (comments, so the solution does not run them) become the
student's code with the marker removed::

        ### BEGIN SOLUTION
        ### STUB hist = ...  # a (bins,) histogram
        hist = np.bincount(idx, minlength=bins)
        ### END SOLUTION

Outputs and execution counts are cleared; every other cell, line and piece
of metadata is kept verbatim. A ``### BEGIN SOLUTION`` without its
``### END SOLUTION`` (or the reverse, or one in a markdown cell) is an error
naming the notebook and the cell.

``python -m coursekit.course.studentify`` (``make notebooks``) writes
``notebooks/<name>.ipynb`` for each ``solutions/<name>.ipynb`` of this
repository and nothing else; ``--check`` only reports what is out of date.
It refuses to overwrite a notebook that has outputs (someone worked in it)
unless given ``--force``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import nbformat

from ..cache import atomic_write

__all__ = [
    "StudentifyError", "studentify", "studentify_source", "render", "generate", "stale",
    "is_up_to_date", "repo_dirs", "main",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "### STUB"
_HEADER = re.compile(r"^\s*#\s*Exercise\s+(\d+(?:\.\d+)*)\s*[:.\-—]\s*(.*?)\s*$")


class StudentifyError(ValueError):
    """A solution notebook's markers do not pair up or name no exercise."""


def studentify_source(source: str, where: str = "cell") -> str:
    """The student version of one code cell's source (see the module docstring)."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    exercise: tuple[str, str] | None = None
    block: list[str] | None = None  # the lines of the open block
    begin_line, begin_number = "", 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if block is None:
            m = _HEADER.match(line)
            if m:
                exercise = (m.group(1), m.group(2))
            if stripped == BEGIN:
                if exercise is None:
                    raise StudentifyError(
                        f"{where}, line {number}: a solution block without an exercise; put a "
                        f"'# Exercise X.Y: title' comment line above {BEGIN!r} in the same cell"
                    )
                block, begin_line, begin_number = [], line, number
            elif stripped == END:
                raise StudentifyError(f"{where}, line {number}: {END!r} without {BEGIN!r} before it")
            else:
                out.append(line)
            continue
        if stripped == BEGIN:
            raise StudentifyError(f"{where}, line {number}: {BEGIN!r} inside another solution block")
        if stripped != END:
            block.append(line)
            continue
        # End of the block: its stub, or a raise at the BEGIN line's indentation.
        newline = "\n" if line.endswith("\n") else ""
        stubs = [b for b in block if b.lstrip().startswith(STUB)]
        if stubs:
            for b in stubs:
                indent = b[: len(b) - len(b.lstrip())]
                code = b.lstrip()[len(STUB):]
                code = code[1:] if code.startswith(" ") else code
                out.append(indent + code.rstrip("\r\n") + "\n" if code.strip() else "\n")
        else:
            indent = begin_line[: len(begin_line) - len(begin_line.lstrip())]
            message = f"Exercise {exercise[0]}: {exercise[1]}" if exercise[1] else f"Exercise {exercise[0]}"
            out.append(f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})\n")
        if not newline and out:  # the END line was the cell's last line: no trailing newline
            out[-1] = out[-1].rstrip("\n")
        block = None
    if block is not None:
        raise StudentifyError(f"{where}, line {begin_number}: {BEGIN!r} without {END!r}")
    return "".join(out)


def studentify(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new notebook; ``nb`` is left as it is).

    ``name`` (the file name) only appears in error messages.
    """
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells, 1):
        cell_id = f" (id {cell['id']})" if cell.get("id") else ""
        where = f"{name}, cell {index}{cell_id}"
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "code":
            if BEGIN in source or END in source:
                cell.source = studentify_source(source, where)
            cell.outputs = []
            cell.execution_count = None
        elif any(line.strip() in (BEGIN, END) for line in source.splitlines()):
            raise StudentifyError(f"{where}: solution markers in a {cell.cell_type} cell; "
                                  "solution blocks are only supported in code cells")
    return nb


def render(solution_path: str | Path) -> str:
    """The text of the student notebook generated from ``solution_path``."""
    path = Path(solution_path)
    nb = nbformat.read(path, as_version=4)
    text = nbformat.writes(studentify(nb, path.name), version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def repo_dirs() -> tuple[Path, Path]:
    """This repository's ``solutions/`` and ``notebooks/`` folders (beside the package)."""
    root = Path(__file__).resolve().parents[2]
    solutions = root / "solutions"
    if not solutions.is_dir():
        raise StudentifyError(
            f"no solutions/ folder at {root}: generate student notebooks from a clone of the "
            "course repository (pip install -e .), not from an installed package"
        )
    return solutions, root / "notebooks"


def _solutions(solutions_dir: Path) -> list[Path]:
    return sorted(p for p in Path(solutions_dir).glob("*.ipynb") if p.is_file())


def stale(solutions_dir: str | Path, notebooks_dir: str | Path) -> list[str]:
    """What ``generate`` would change, one line each; empty when ``notebooks_dir`` is up to date."""
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    problems = []
    for src in _solutions(solutions_dir):
        dst = notebooks_dir / src.name
        if not dst.exists():
            problems.append(f"{dst} is missing (generated from {src})")
        elif dst.read_text(encoding="utf-8") != render(src):
            problems.append(f"{dst} is out of date with {src}")
    if notebooks_dir.is_dir():
        sources = {p.name for p in _solutions(solutions_dir)}
        for extra in sorted(notebooks_dir.glob("*.ipynb")):
            if extra.name not in sources:
                problems.append(f"{extra} has no source in {solutions_dir}")
    return problems


def is_up_to_date(solutions_dir: str | Path, notebooks_dir: str | Path) -> bool:
    """True when every student notebook is exactly what ``generate`` would write."""
    return not stale(solutions_dir, notebooks_dir)


def _has_work(path: Path) -> bool:
    """True when a notebook looks worked in (outputs or execution counts) or is unreadable."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable: not ours to overwrite
        return True
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


def generate(solutions_dir: str | Path, notebooks_dir: str | Path, *, force: bool = False) -> list[Path]:
    """Write ``notebooks_dir/<name>.ipynb`` for each ``solutions_dir/<name>.ipynb``.

    Writes nothing else, and only the notebooks whose text changes. Returns
    the paths written. Refuses (:class:`StudentifyError`, before writing
    anything) to overwrite a notebook that has outputs or cannot be read,
    unless ``force``.
    """
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    if solutions_dir.resolve() == notebooks_dir.resolve():
        raise StudentifyError("the solutions and the student notebooks must be different folders")
    plan = []
    for src in _solutions(solutions_dir):
        dst = notebooks_dir / src.name
        text = render(src)
        if dst.exists():
            if dst.read_text(encoding="utf-8") == text:
                continue
            if not force and _has_work(dst):
                raise StudentifyError(
                    f"{dst} has outputs (someone worked in it) or is not a readable notebook: "
                    "not overwriting it. Move it away, or use --force."
                )
        plan.append((dst, text))
    written = []
    if plan:
        notebooks_dir.mkdir(parents=True, exist_ok=True)
    for dst, text in plan:
        with atomic_write(dst) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m coursekit.course.studentify [--check] [--force]``: this repository's
    ``solutions/`` -> ``notebooks/``. Exit 0 on success, 1 when ``--check``
    finds stale notebooks or generation is refused, 2 on bad arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m coursekit.course.studentify",
        description="Generate notebooks/ (student versions) from solutions/ in this repository.",
    )
    parser.add_argument("--check", action="store_true", help="only report out-of-date notebooks")
    parser.add_argument("--force", action="store_true",
                        help="overwrite student notebooks even when they have outputs")
    args = parser.parse_args(argv)
    try:
        solutions, notebooks = repo_dirs()
        if args.check:
            problems = stale(solutions, notebooks)
            for p in problems:
                print(p)
            if problems:
                print("notebooks/ is out of date: run `make notebooks`.", file=sys.stderr)
                return 1
            print("notebooks/ is up to date.")
            return 0
        written = generate(solutions, notebooks, force=args.force)
    except StudentifyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in written:
        print(f"wrote {p}")
    if not written:
        print("notebooks/ is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
