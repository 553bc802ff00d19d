"""The grader: run submitted notebooks headless and score every exercise.

``python -m coursekit grade PATH... [--json] [--csv FILE] [--timeout S]``

Each notebook (or each ``*.ipynb`` under a folder) is read (never written),
copied in memory and executed in a fresh kernel, cell by cell, with a time
limit per cell; a cell that errors or runs too long is interrupted and the
next one runs. Then, in the same kernel, the grader appends one cell per
exercise that looks up the student's function by name and runs its check
from :mod:`coursekit.exercises`. So a student who deleted the check cells is
graded all the same, and what a student prints cannot pass for a result
(results travel as a display message of the grader's own cells, with a random
nonce per run).

Every exercise ends up ``passed``, ``failed`` (with the check's message),
``not done`` (the ``NotImplementedError`` stub, or no such function) or
``error`` (the kernel died, the check did not finish, the notebook could not
be read). A broken submission (invalid JSON, a kernel that dies, an infinite
loop) gets a per-student error and grading goes on.

Cells run in the submission's folder (as in Jupyter), in a kernel started
with this Python (``sys.executable -m ipykernel_launcher``), whatever
kernel specs are installed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

__all__ = [
    "STATUSES", "ExerciseResult", "StudentResult", "grade_notebook", "grade_paths",
    "collect_notebooks", "format_table", "to_json", "write_csv", "add_arguments", "run", "main",
]

STATUSES = ("passed", "failed", "not done", "error")
MIME = "application/vnd.coursekit.grade+json"
DEFAULT_TIMEOUT = 60

_log = logging.getLogger("coursekit.grading.nbclient")
_log.addHandler(logging.NullHandler())
_log.propagate = False


# --------------------------------------------------------------------------- results

@dataclass
class ExerciseResult:
    id: str
    title: str
    function: str
    status: str
    points: float
    max_points: float
    message: str = ""


@dataclass
class StudentResult:
    student: str
    path: str
    notebook: str | None
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    cell_errors: list[dict] = field(default_factory=list)  # {"cell": 1-based, "ename", "evalue"} per failing cell

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["points"], d["max_points"] = self.points, self.max_points
        d["seconds"] = round(self.seconds, 2)
        return d


def _num(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------- in the kernel

def _grade_in_kernel(ex_id: str, nonce: str, call_timeout: float | None = None) -> None:
    """Run one exercise's check on the student's function; runs inside the student's kernel.

    Emits the result as a display message of type :data:`MIME`.
    """
    from IPython import get_ipython
    from IPython.display import display

    namespace = get_ipython().user_ns

    from . import exercises
    from .exercises import check as check_module

    ex = exercises.exercise(ex_id)
    if call_timeout:
        check_module.CALL_TIMEOUT = call_timeout
    fn = namespace.get(ex.function)
    if fn is None:
        status, message = "not done", (f"{ex.label}: no function `{ex.function}` in the notebook "
                                       "(was its cell deleted, renamed, or did it fail to run?)")
    else:
        out = io.StringIO()
        try:
            with redirect_stdout(out):
                ex.check(fn)
            lines = [s for s in out.getvalue().splitlines() if s.strip()]
            status, message = "passed", (lines[-1] if lines else f"{ex.label}: passed")
        except exercises.NotDone as e:
            status, message = "not done", str(e)
        except exercises.CheckFailed as e:
            status, message = "failed", str(e)
        except KeyboardInterrupt:
            status, message = "error", f"{ex.label}: the check was interrupted (cell time limit)"
        except BaseException as e:  # noqa: BLE001 - anything else is the grader's to report
            status, message = "error", f"{ex.label}: the check failed with {type(e).__name__}: {e}"
    display({MIME: {"nonce": nonce, "id": ex_id, "status": status, "message": message}}, raw=True)


# --------------------------------------------------------------------------- the kernel

# Run before the student's cells, out of the notebook: `exit()` in a cell would stop the kernel.
_PRELUDE = "get_ipython().ask_exit = lambda: print('exit() is ignored while grading')"


def _kernel_manager_class():
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class _ThisPythonSpecs(KernelSpecManager):
        """Every kernel name resolves to this interpreter's ipykernel."""

        def get_kernel_spec(self, kernel_name):
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3 (coursekit grader)", language="python",
                interrupt_mode="signal", metadata={},
            )

    class _KernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _default_kernel_spec_manager(self):
            return _ThisPythonSpecs()

    return _KernelManager


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _short_source(source: str) -> str:
    text = "; ".join(line.strip() for line in source.splitlines() if line.strip())
    return text if len(text) <= 60 else text[:57] + "..."


def _tail(f, n: int = 3) -> str:
    try:
        f.seek(0)
        lines = [s for s in f.read().decode("utf-8", "replace").splitlines()
                 if s.strip() and "running over TCP without encryption" not in s]
    except Exception:  # noqa: BLE001
        return ""
    return " | ".join(lines[-n:])


# --------------------------------------------------------------------------- one notebook

def _read(path: Path):
    import nbformat

    text = path.read_bytes().decode("utf-8")
    nb = nbformat.reads(text, as_version=4)
    if not isinstance(nb.get("cells"), list):
        raise ValueError("no list of cells")
    return nb


def _errors_for(exercises, message: str) -> list[ExerciseResult]:
    return [ExerciseResult(e.id, e.title, e.function, "error", 0, e.points, message) for e in exercises]


def grade_notebook(
    path: str | Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    student: str | None = None,
    notebook: str | None = None,
) -> StudentResult:
    """Execute one submission in a fresh kernel and check each of its exercises.

    ``timeout``: seconds per cell. ``notebook``: the notebook id ("00"), when
    the file's metadata and name do not say it. Never raises for a broken
    submission: the result's ``error`` (and each exercise's message) says
    what went wrong. The file is only read.
    """
    from . import exercises as registry

    path = Path(path)
    result = StudentResult(student or path.stem, str(path), notebook)
    start = time.monotonic()
    try:
        return _grade_into(result, path, timeout, notebook)
    except Exception as e:  # noqa: BLE001 - one student's trouble never stops the others
        result.error = f"the grader failed on this notebook: {type(e).__name__}: {e}"
        exercises = registry.EXERCISES.get(result.notebook or "", [])
        result.exercises = _errors_for(exercises, result.error)
        return result
    finally:
        result.seconds = time.monotonic() - start


def _grade_into(result: StudentResult, path: Path, timeout: float, notebook: str | None) -> StudentResult:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    from . import exercises as registry

    try:
        nb = _read(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the student's error
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        result.notebook = notebook or registry.notebook_id(None, path)
        result.error = f"not a readable notebook ({type(e).__name__}: {reason[:150]})"
        result.exercises = _errors_for(registry.EXERCISES.get(result.notebook or "", []), result.error)
        return result

    result.notebook = notebook or registry.notebook_id(nb.metadata, path)
    exercises = registry.EXERCISES.get(result.notebook) if result.notebook else None
    if not exercises:
        result.error = (f"no exercises for notebook {result.notebook!r}" if result.notebook else
                        "cannot tell which notebook this is (no coursekit.notebook metadata, and the "
                        "file name does not start with its number, e.g. 00_): use --notebook")
        return result

    work = copy.deepcopy(nb)
    for c in work.cells:  # markdown cells stay, so that cell numbers are the student's
        if not isinstance(c.get("source", ""), str):
            c.source = "".join(c.source)
        if c.get("cell_type") == "code":
            c.outputs, c.execution_count = [], None
    n_student = len(work.cells)
    nonce = secrets.token_hex(16)
    call_timeout = max(1.0, min(10.0, timeout / 2))
    for ex in exercises:
        work.cells.append(nbformat.v4.new_code_cell(
            f'__import__("coursekit.grading", fromlist=["_"])._grade_in_kernel('
            f'{ex.id!r}, {nonce!r}, {call_timeout!r})'
        ))

    client = NotebookClient(
        work, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeout", "evalue": f"cell ran over {timeout:g} s"},
        kernel_name="python3", kernel_manager_class=_kernel_manager_class(), log=_log,
        record_timing=False, shutdown_kernel="immediate",
        resources={"metadata": {"path": str(path.resolve().parent)}},
    )
    replies: dict[int, dict] = {}  # cell index -> execute_reply content

    def on_cell_executed(cell, cell_index, execute_reply, **_):
        if execute_reply:
            replies[cell_index] = execute_reply.get("content", {})

    client.on_cell_executed = on_cell_executed
    died_at: int | None = None
    env = _kernel_env()
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryDirectory(prefix="coursekit-ipython-") as ipython_dir:
        env["IPYTHONDIR"] = ipython_dir  # a clean IPython: no one's startup files or history
        try:
            with client.setup_kernel(env=env, stderr=stderr):
                client.execute_cell(nbformat.v4.new_code_cell(_PRELUDE), 0, store_history=False)
                for index, cell in enumerate(work.cells):
                    try:
                        client.execute_cell(cell, index, execution_count=index + 1)
                    except DeadKernelError:
                        died_at = index
                        break
        except Exception as e:  # noqa: BLE001 - a kernel that would not start, and the like
            if died_at is None:
                message = f"could not run the notebook: {type(e).__name__}: {e}"
                result.error = message
                result.exercises = _errors_for(exercises, message)
                return result
        crash = _tail(stderr)

    if died_at is not None and died_at < n_student:
        where = f"cell {died_at + 1} (`{_short_source(work.cells[died_at].source)}`)"
        message = f"the kernel died while running {where}" + (f": {crash}" if crash else "")
        result.error = message
        result.exercises = _errors_for(exercises, message)
        return result

    for index in range(min(n_student, died_at if died_at is not None else n_student)):
        reply = replies.get(index, {})
        if reply.get("status") == "error":
            result.cell_errors.append({"cell": index + 1, "ename": reply.get("ename", ""),
                                       "evalue": str(reply.get("evalue", ""))[:300]})

    for offset, ex in enumerate(exercises):
        cell = work.cells[n_student + offset]
        payload = None
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get(MIME) if out.get("output_type") == "display_data" else None
            if isinstance(data, dict) and data.get("nonce") == nonce and data.get("id") == ex.id:
                payload = data
        if payload is not None and payload.get("status") in STATUSES:
            status, message = payload["status"], str(payload.get("message", ""))
        else:
            status = "error"
            if died_at is not None and n_student + offset >= died_at:
                message = f"{ex.label}: the kernel died while checking" + (f" ({crash})" if crash else "")
            else:
                reply = replies.get(n_student + offset, {})
                if reply.get("ename") == "CellTimeout":
                    message = f"{ex.label}: the check did not finish within {timeout:g} s"
                elif reply.get("status") == "error":
                    message = f"{ex.label}: grading failed: {reply.get('ename')}: {reply.get('evalue')}"
                else:
                    message = f"{ex.label}: the check reported no result"
        points = ex.points if status == "passed" else 0
        result.exercises.append(ExerciseResult(ex.id, ex.title, ex.function, status, points, ex.points, message))
    return result


# --------------------------------------------------------------------------- executing a notebook

def execute_notebook(src: str | Path, dest: str | Path, timeout: float = 1800) -> str | None:
    """Execute a notebook top to bottom in a fresh kernel of this Python and
    write the executed copy to ``dest`` (also when a cell fails, for reading).

    The kernel runs in the notebook's folder. Returns ``None`` when every
    cell ran, else one line naming the failing cell and its error.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    src, dest = Path(src), Path(dest)
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", log=_log,
                            kernel_manager_class=_kernel_manager_class(),
                            resources={"metadata": {"path": str(src.resolve().parent)}})
    error = None
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryDirectory(prefix="coursekit-ipython-") as ipython_dir:
        # figures inline, as in Jupyter (the grader's kernels draw nothing)
        env = {**_kernel_env(), "IPYTHONDIR": ipython_dir, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        try:
            client.execute(env=env, stderr=stderr)
        except CellExecutionError as e:
            failing = next((i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code" and any(
                o.get("output_type") == "error" for o in c.get("outputs", []))), None)
            where = f"cell {failing + 1}" if failing is not None else "a cell"
            error = f"{where}: {e.ename}: {e.evalue}"
        except (DeadKernelError, TimeoutError, RuntimeError) as e:
            error = f"{type(e).__name__}: {e}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, dest)
    return error


# --------------------------------------------------------------------------- many notebooks

def collect_notebooks(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """``(notebook path, student name)`` for every path: a file as it is (named by
    its stem), a folder's ``*.ipynb`` recursively (named by their path in the
    folder, without ``.ipynb``), skipping hidden folders and checkpoints.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    found: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            for nb in sorted(p.rglob("*.ipynb")):
                rel = nb.relative_to(p)
                if nb.is_file() and not any(part.startswith(".") for part in rel.parts):
                    found.append((nb, rel.with_suffix("").as_posix()))
        elif p.exists():
            found.append((p, p.stem))
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    names = [name for _, name in found]
    return [(nb, name if names.count(name) == 1 else nb.with_suffix("").as_posix()) for nb, name in found]


def grade_paths(
    paths: Iterable[str | Path],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    notebook: str | None = None,
    progress: Callable[[StudentResult], None] | None = None,
) -> list[StudentResult]:
    """Grade every notebook under ``paths`` (see :func:`collect_notebooks`), one
    fresh kernel each, in order; ``progress`` is called after each one."""
    from . import exercises as registry

    results = []
    for nb_path, name in collect_notebooks(paths):
        r = grade_notebook(nb_path, timeout, student=name, notebook=notebook)
        results.append(r)
        if progress:
            progress(r)
    # A file we could not read or place: if everyone else did the same notebook, list its exercises.
    known = {r.notebook for r in results if r.notebook in registry.EXERCISES}
    if len(known) == 1:
        only = known.pop()
        for r in results:
            if r.error and not r.exercises:
                r.notebook = only
                r.exercises = _errors_for(registry.EXERCISES[only], r.error)
    return results


# --------------------------------------------------------------------------- reports

_MARK = {"failed": "x", "not done": "-", "error": "!"}


def format_table(results: list[StudentResult]) -> str:
    """A plain-text table per notebook: one row per student, one column per
    exercise (its points when passed, else x failed, - not done, ! error),
    then the message of every exercise that did not pass."""
    lines: list[str] = []
    groups: dict[str | None, list[StudentResult]] = {}
    for r in results:
        groups.setdefault(r.notebook, []).append(r)
    for nb_id, group in groups.items():
        ids: list[str] = []
        for r in group:
            ids += [e.id for e in r.exercises if e.id not in ids]
        width = max([len("student")] + [len(r.student) for r in group])
        lines.append(f"notebook {nb_id}" if nb_id else "notebook unknown")
        header = f"{'student':<{width}}  " + "  ".join(f"{i:>5}" for i in ids) + "   total"
        lines += [header, "-" * len(header)]
        for r in group:
            by_id = {e.id: e for e in r.exercises}
            cells = []
            for i in ids:
                e = by_id.get(i)
                cells.append(f"{'':>5}" if e is None else
                             f"{_num(e.points) if e.status == 'passed' else _MARK[e.status]:>5}")
            total = f"{_num(r.points)}/{_num(r.max_points)}" if r.exercises else "-"
            lines.append(f"{r.student:<{width}}  " + "  ".join(cells) + f"   {total}")
        lines.append("")
    lines.append("legend: points when passed, x failed, - not done, ! error")
    details = []
    for r in results:
        if r.error:
            details.append(f"{r.student}: ERROR {r.error}")
        for e in r.exercises:
            if e.status == "not done" and "not done yet" in e.message:
                continue  # the table's "-" says it all
            if e.status != "passed" and e.message != r.error:
                details.append(f"{r.student}: {e.status}: {e.message}")
    if details:
        lines += ["", *details]
    return "\n".join(lines)


def to_json(results: list[StudentResult]) -> str:
    """A JSON list of students: student, path, notebook, error, points,
    max_points, seconds, and exercises (id, title, function, status,
    points, max_points, message)."""
    return json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False)


def write_csv(results: list[StudentResult], path: str | Path) -> None:
    """A gradebook an LMS can import: one row per student, with the columns
    ``student, file, notebook``, one per exercise (``"0.1 precision at k"``:
    its points), ``total, max, error``. Written whole, then moved into place."""
    from . import exercises as registry

    columns: list[tuple[str, str]] = []  # (exercise id, header)
    seen = set()
    ordered = [e for nb_id in registry.EXERCISES for e in registry.EXERCISES[nb_id]]
    present = {e.id for r in results for e in r.exercises}
    for e in ordered:
        if e.id in present and e.id not in seen:
            seen.add(e.id)
            columns.append((e.id, f"{e.id} {e.title}"))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "file", "notebook", *(h for _, h in columns), "total", "max", "error"])
        for r in results:
            by_id = {e.id: e for e in r.exercises}
            row = [r.student, r.path, r.notebook or ""]
            row += [_num(by_id[i].points) if i in by_id else "" for i, _ in columns]
            row += [_num(r.points), _num(r.max_points), r.error or ""]
            w.writerow(row)
    tmp.replace(path)


# --------------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``grade`` command's arguments, for :mod:`coursekit.cli` to reuse in a sub-parser."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="submitted notebooks, or folders of them (searched recursively)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--csv", metavar="FILE", help="also write a gradebook CSV (one row per student)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --csv file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit per cell (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--notebook", metavar="ID",
                        help="the notebook the submissions are ('00'), when their metadata and "
                             "file names do not say")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def run(args: argparse.Namespace) -> int:
    """Grade as ``args`` (from :func:`add_arguments`) say. 0 when grading ran, 2 on bad arguments."""
    from . import exercises as registry

    def bad(message: str) -> int:
        print(f"coursekit grade: error: {message}", file=sys.stderr)
        return 2

    if args.timeout <= 0:
        return bad("--timeout must be positive")
    if args.notebook is not None and args.notebook not in registry.EXERCISES:
        return bad(f"no notebook {args.notebook!r}; known: {', '.join(registry.EXERCISES)}")
    if args.csv and Path(args.csv).exists() and not args.force:
        return bad(f"{args.csv} exists; use --force to overwrite it")
    try:
        found = collect_notebooks(args.paths)
    except FileNotFoundError as e:
        return bad(str(e))
    if not found:
        return bad("no notebooks (*.ipynb) under " + " ".join(args.paths))

    def progress(r: StudentResult) -> None:
        if not args.quiet:
            what = f"ERROR {r.error}" if r.error else f"{_num(r.points)}/{_num(r.max_points)}"
            print(f"graded {r.student}: {what} ({r.seconds:.1f} s)", file=sys.stderr, flush=True)

    results = grade_paths(args.paths, args.timeout, notebook=args.notebook, progress=progress)
    try:
        print(to_json(results) if args.json else format_table(results), flush=True)
    except BrokenPipeError:  # `... | head`
        sys.stdout = open(os.devnull, "w")
    if args.csv:
        write_csv(results, args.csv)
        if not args.quiet:
            print(f"wrote {args.csv}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m coursekit grade PATH... [--json] [--csv FILE] [--force] [--timeout S] [--notebook ID]``.

    ``argv`` are the arguments after ``grade`` (a leading ``"grade"`` is skipped).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "grade" and not Path("grade").exists():
        argv = argv[1:]
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m coursekit grade",
        description="Execute submitted notebooks headless and grade their exercises.",
    ))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: 2 on bad arguments, 0 for --help
        return int(e.code or 0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
