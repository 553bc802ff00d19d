"""The course's notebooks, executed: what ``make course`` and ``make site`` run first.

:func:`execute_notebooks` executes every notebook of ``solutions/`` in order
(each through :func:`coursekit.course.grading.execute_notebook`, in a fresh
sandboxed kernel) and keeps a stamp beside each executed copy: a notebook
whose source, whose package code (:func:`package_digest`) and whose dataset
settings are unchanged since its last run is not executed again.
:func:`unprinted_numbers` then lists the numbers an executed notebook's
prose quotes that none of its outputs prints (prose gone stale).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..timing import timed

__all__ = ["REPO", "package_digest", "execute_notebooks", "unprinted_numbers"]

REPO = Path(__file__).resolve().parents[2]


def package_digest() -> str:
    """A digest of coursekit's source: executed notebooks are redone when it changes."""
    h = hashlib.sha256()
    for path in sorted((REPO / "coursekit").rglob("*.py")):
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def execute_notebooks(out: Path, timeout: int) -> list[dict]:
    """Execute ``solutions/*.ipynb`` in order into ``out``; skip unchanged ones. One record a notebook:
    ``{"notebook": name, "status": "ok" | "failed" | "unchanged", "seconds": float or None, ...}``."""
    from .grading import execute_notebook

    records = []
    solutions = sorted((REPO / "solutions").glob("[0-9][0-9]*.ipynb"))
    for src in solutions:
        dest = out / src.name
        stamp = out / f".{src.stem}.stamp"
        key = json.dumps({"notebook": hashlib.sha256(src.read_bytes()).hexdigest(),
                          "package": package_digest(),
                          "env": {k: os.environ.get(k) for k in ("COURSEKIT_DATASET", "COURSEKIT_DATA",
                                                                 "COURSEKIT_FAST")}})
        if dest.exists() and stamp.exists() and stamp.read_text() == key:
            print(f"[course] {src.name}: unchanged since its last run, kept", flush=True)
            records.append({"notebook": src.name, "status": "unchanged", "seconds": None})
            continue
        print(f"[course] executing {src.name} ...", flush=True)
        seconds, error = timed(lambda: execute_notebook(src, dest, timeout=timeout))
        seconds = round(seconds, 1)
        if error:
            print(f"[course] {src.name} FAILED after {seconds} s: {error}", flush=True)
            records.append({"notebook": src.name, "status": "failed", "error": error, "seconds": seconds})
            stamp.unlink(missing_ok=True)
        else:
            print(f"[course] {src.name}: done in {seconds} s", flush=True)
            stamp.write_text(key)
            records.append({"notebook": src.name, "status": "ok", "seconds": seconds})
    for record in records:
        if record["status"] != "failed":
            record["unprinted"] = unprinted_numbers(out / record["notebook"])
    return records


_PROSE_NUMBER = re.compile(r"(?<![\w.])0\.\d{3}(?![\d])")      # 0.483 as a sentence quotes an mAP
_MATH_OR_CODE = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", re.DOTALL)
_OUTPUT_NUMBER = re.compile(r"\d+\.\d+")


def unprinted_numbers(path: Path) -> list[str]:
    """The three-decimal numbers (``0.483``) of an executed notebook's markdown that none of its outputs prints.

    The prose quotes what its cells print; when a change moves those numbers (a rebuilt dataset, another
    version of a library), the prose goes stale without an error. An output number counts as printed when
    it rounds to the quoted one (``0.4831`` prints ``0.483``). Numbers the prose quotes from other datasets
    (the course report's COIL-100 and SMVS) are listed too: the list is for a person to read, in the order
    the prose gives them, each once. Math (``$...$``) and code spans are not prose.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    printed: set[float] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:                   # nbformat.read joins each text into one string
            data = output.get("data", {})
            for text in (output.get("text", ""), data.get("text/plain", ""), data.get("text/html", ""),
                         data.get("text/markdown", "")):
                printed.update(round(float(x), 3) for x in _OUTPUT_NUMBER.findall(text))
    quoted = [m for cell in nb.cells if cell.cell_type == "markdown"
              for m in _PROSE_NUMBER.findall(_MATH_OR_CODE.sub(" ", cell.source))]
    return list(dict.fromkeys(q for q in quoted if round(float(q), 3) not in printed))
