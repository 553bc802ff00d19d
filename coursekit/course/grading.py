"""The grader: run submitted notebooks headless and score every exercise where no student code runs.

``python -m coursekit grade PATH... [--json] [--csv FILE] [--timeout S] [--budget S] [--memory GB] [--jobs N]``

For each notebook (or each ``*.ipynb`` under a folder), read once and never written:

1. **Execute** it in a fresh kernel of this Python, started through :mod:`coursekit.course.sandbox`: from a
   private temporary copy (never in the graded folder), with a memory limit, a time limit per cell
   and for the whole notebook, no access to any graded path, and write access only to its scratch
   folder and the feature cache (Landlock, where Linux has it). A cell that ignores the interrupt
   is given 3 s, then the kernel is stopped. What cells print never reaches the grader (it does not
   subscribe to the kernel's output).
   After every cell, the exercise functions that changed are copied out of the kernel
   (:func:`coursekit.course.remote.export_functions`), so a kernel that dies later costs only what came after.
2. **Check** each exercise in the grader's own process: its check calls a
   :class:`~coursekit.course.remote.RemoteFunction`, which runs the student's function in a fresh sandboxed
   process per exercise and brings back plain values. The comparison with coursekit's reference, the
   named slips, and the verdict happen here, where nothing the notebook or the function did (patching
   coursekit, numpy or builtins, printing, writing files, reading the expected values) can reach.
   A function that is, calls or runs the code of the exercise's reference (``Exercise.references``)
   fails with "calls coursekit's reference ...; write it yourself".
3. **Clean up**: every process the submission started is killed (by the token in its environment,
   also those that left the process group), and the scratch folder is removed.

Every exercise ends up ``passed``, ``failed`` (with the check's message), ``not done`` (the
``NotImplementedError`` stub, or no such function) or ``error`` (the function could not be copied
out or crashed its process, the notebook could not be read). ``flags`` records what an instructor
may want to look at: ``reference:0.3``, ``kernel-died``, ``stopped``, ``no-landlock``.
"""

from __future__ import annotations

import argparse
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

from ..cache import atomic_write

__all__ = [
    "STATUSES", "ExerciseResult", "StudentResult", "grade_notebook", "grade_paths",
    "collect_notebooks", "format_table", "to_json", "write_csv", "add_arguments", "run", "main",
]

STATUSES = ("passed", "failed", "not done", "error")
DEFAULT_TIMEOUT = 60
DEFAULT_BUDGET = 1800       # seconds for one whole notebook
DEFAULT_MEMORY_GB = 8       # per process of a submission (its kernel, each function runner)

_log = logging.getLogger("coursekit.course.grading.nbclient")
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
    flags: list[str] = field(default_factory=list)  # "reference:0.3", "kernel-died", "stopped", "no-landlock"

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


# --------------------------------------------------------------------------- the kernel

# Sent to the kernel before the student's cells, as no cell: `exit()` in a cell would stop the kernel.
_PRELUDE = "get_ipython().ask_exit = lambda: print('exit() is ignored while grading')"
_EXPORT = "__import__('coursekit.course.remote', fromlist=['_']).export_functions({names!r}, {folder!r})"


def _kernel_specs(argv_wrapper: Callable[[list[str]], list[str]] | None = None):
    """Kernel specs in which every name resolves to this interpreter's ipykernel (its argv wrapped
    by ``argv_wrapper``, e.g. the sandbox's launcher)."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if argv_wrapper is not None:
        argv = argv_wrapper(argv)

    class _ThisPythonSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=argv, display_name="Python 3 (coursekit grader)", language="python",
                              interrupt_mode="signal", metadata={})

    return _ThisPythonSpecs()


def _kernel_manager_class():
    """nbclient's kernel manager, on this interpreter's ipykernel whatever kernel specs are installed."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class _KernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _default_kernel_spec_manager(self):
            return _kernel_specs()

    return _KernelManager


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
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


@dataclass
class _Run:
    """What executing a submission's cells left: each code cell's reply, and why it stopped early."""
    replies: dict[int, dict] = field(default_factory=dict)   # cell index -> {"status", "ename", "evalue"}
    died_at: int | None = None        # the cell during which the kernel died
    stopped_at: int | None = None     # the cell at which grading stopped it (a cell that ignored the interrupt, the budget)
    stop_reason: str = ""
    crash: str = ""


def _wait_reply(kc, km, msg_id: str, timeout: float) -> dict | str:
    """The content of the shell reply to ``msg_id``, or "dead" / "timeout"."""
    from queue import Empty

    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        try:
            msg = kc.get_shell_msg(timeout=min(0.2, left))
        except Empty:
            if not km.is_alive():
                return "dead"
            continue
        if msg.get("parent_header", {}).get("msg_id") == msg_id:
            return msg.get("content", {})


def _interrupt(kc, km, msg_id: str, grace: float = 3.0) -> dict | str:
    """Interrupt the kernel (as Jupyter's stop button does); a cell that ignores it gets ``grace``
    seconds, then the kernel is killed (returns "killed")."""
    try:
        km.interrupt_kernel()
    except Exception:  # noqa: BLE001 - a kernel already gone
        return "dead"
    reply = _wait_reply(kc, km, msg_id, grace)
    if reply == "timeout":
        km.shutdown_kernel(now=True)
        return "killed"
    return reply


def _run_cells(cells: list[str], *, env: dict[str, str], cwd: Path, timeout: float, budget: float,
               export: str | None, argv_wrapper) -> _Run:
    """Execute ``cells`` (code, or None for markdown) in a fresh kernel, each within ``timeout``
    seconds and all within ``budget``; after each cell run ``export`` silently (the student's
    functions, pickled into the scratch folder)."""
    from jupyter_client.manager import KernelManager

    run = _Run()
    end = time.monotonic() + budget
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_kernel_specs(argv_wrapper))
    with tempfile.TemporaryFile() as stderr:
        km.start_kernel(env=env, cwd=str(cwd), stderr=stderr)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            # Unsubscribe from IOPub: what cells print and draw decides nothing, and unread it would
            # pile up in this process (a cell printing 300 MB); with no subscriber the kernel drops it.
            kc.iopub_channel.stop()
            prelude = kc.execute(_PRELUDE, silent=True, store_history=False)
            _wait_reply(kc, km, prelude, 30)
            for index, source in enumerate(cells):
                if source is None:
                    continue
                left = end - time.monotonic()
                if left <= 0:
                    run.stopped_at, run.stop_reason = index, f"the notebook ran over its time budget ({budget:g} s)"
                    break
                msg_id = kc.execute(source, store_history=True, allow_stdin=False, stop_on_error=False)
                reply = _wait_reply(kc, km, msg_id, min(timeout, left))
                if reply == "timeout":
                    reply = _interrupt(kc, km, msg_id)
                    if isinstance(reply, dict):
                        reply = {"status": "error", "ename": "CellTimeout", "evalue": f"cell ran over {timeout:g} s"}
                if reply == "killed":
                    run.replies[index] = {"status": "error", "ename": "CellTimeout",
                                          "evalue": f"cell ran over {timeout:g} s and ignored the interrupt"}
                    run.stopped_at, run.stop_reason = index, (
                        f"cell {index + 1} (`{_short_source(source)}`) ran over {timeout:g} s and ignored the "
                        "interrupt, so its kernel was stopped")
                    break
                if reply == "dead":
                    run.died_at = index
                    break
                run.replies[index] = reply
                if export:
                    exported = kc.execute(export, silent=True, store_history=False)
                    if _wait_reply(kc, km, exported, 30) == "timeout" and _interrupt(kc, km, exported) in ("killed", "dead"):
                        run.stopped_at, run.stop_reason = index, "copying the notebook's functions out of it hung"
                        break
        finally:
            kc.stop_channels()
            if km.has_kernel:
                km.shutdown_kernel(now=True)
        run.crash = _tail(stderr)
    return run


# --------------------------------------------------------------------------- one notebook

def _read(data: bytes):
    import nbformat

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    if not isinstance(nb.get("cells"), list):
        raise ValueError("no list of cells")
    return nb


def _errors_for(exercises, message: str) -> list[ExerciseResult]:
    return [ExerciseResult(e.id, e.title, e.function, "error", 0, e.points, message) for e in exercises]


@dataclass
class _Limits:
    """What one submission may use: seconds per cell and in all, bytes of memory per process, and
    the paths it may not read (every submission of the run)."""
    timeout: float = DEFAULT_TIMEOUT
    budget: float = DEFAULT_BUDGET
    memory: int = int(DEFAULT_MEMORY_GB * 2**30)
    deny: tuple[str, ...] = ()


def grade_notebook(
    path: str | Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    student: str | None = None,
    notebook: str | None = None,
    budget: float = DEFAULT_BUDGET,
    memory_gb: float = DEFAULT_MEMORY_GB,
    deny: Iterable[str | Path] = (),
) -> StudentResult:
    """Execute one submission in a fresh, fenced kernel and check each of its exercises in the grader.

    ``timeout``: seconds per cell; ``budget``: seconds for the whole notebook; ``memory_gb``: the
    memory of each process the submission runs in; ``deny``: paths it may not read besides its own
    file (the other submissions). ``notebook``: the notebook id ("00"), when the file's metadata and
    name do not say it. Never raises for a broken submission: the result's ``error`` (and each
    exercise's message) says what went wrong. The file is only read.
    """
    from .. import exercises as registry
    from .sandbox import become_subreaper

    path = Path(path)
    become_subreaper()
    result = StudentResult(student or path.stem, str(path), notebook)
    limits = _Limits(timeout, budget, int(memory_gb * 2**30),
                     tuple(os.path.realpath(p) for p in (path, *deny)))
    start = time.monotonic()
    try:
        return _grade_into(result, path, limits, notebook)
    except Exception as e:  # noqa: BLE001 - one student's trouble never stops the others
        result.error = f"the grader failed on this notebook: {type(e).__name__}: {e}"
        exercises = registry.EXERCISES.get(result.notebook or "", [])
        result.exercises = _errors_for(exercises, result.error)
        return result
    finally:
        result.seconds = time.monotonic() - start


def _grade_into(result: StudentResult, path: Path, limits: _Limits, notebook: str | None) -> StudentResult:
    from .. import exercises as registry
    from .sandbox import kill_tagged, landlock_abi

    try:
        data = path.read_bytes()
        nb = _read(data)
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
    if not landlock_abi():
        result.flags.append("no-landlock")

    cells = [("".join(c.source) if isinstance(c.get("source"), list) else c.get("source", ""))
             if c.get("cell_type") == "code" else None for c in nb.cells]
    token = secrets.token_hex(12)
    with tempfile.TemporaryDirectory(prefix="coursekit-grade-") as scratch_dir:
        scratch = Path(scratch_dir)
        work, exports = scratch / "work", scratch / "exports"
        for folder in (work, exports, scratch / "tmp", scratch / "ipython", scratch / "runner"):
            folder.mkdir()
        (work / _safe_name(path.name)).write_bytes(data)  # the private copy it runs beside, as in Jupyter
        env = _fenced_env(scratch, token, limits)
        try:
            run = _run_cells(cells, env=env, cwd=work, timeout=limits.timeout, budget=limits.budget,
                             export=_EXPORT.format(names=[e.function for e in exercises], folder=str(exports)),
                             argv_wrapper=_sandboxed)
        finally:
            kill_tagged(token)
        _record_run(result, run, cells)
        runner_env = {**env, "HOME": str(scratch / "runner")}
        try:
            for ex in exercises:
                status, message = _verdict(ex, exports, runner_env, scratch / "runner", limits, run)
                points = ex.points if status == "passed" else 0
                result.exercises.append(ExerciseResult(ex.id, ex.title, ex.function, status, points, ex.points,
                                                       message))
                if "calls coursekit's reference" in message or "copies coursekit's reference" in message:
                    result.flags.append(f"reference:{ex.id}")
        finally:
            kill_tagged(token)
    return result


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name) or "submission.ipynb"


def _sandboxed(argv: list[str]) -> list[str]:
    from .sandbox import sandbox_argv

    return sandbox_argv(argv)


def _fenced_env(scratch: Path, token: str, limits: _Limits) -> dict[str, str]:
    """The environment of a submission's processes: its scratch folder for temporary files and
    IPython, the limits for :mod:`coursekit.course.sandbox`, and the token that finds its processes."""
    from ..cache import cache_root
    from .sandbox import sandbox_env

    env = {**_kernel_env(), "TMPDIR": str(scratch / "tmp"), "IPYTHONDIR": str(scratch / "ipython")}
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)  # a rule needs the folder to exist (the first notebook fills it)
    writable = [str(scratch), str(cache)]
    return sandbox_env(env, token=token, memory_bytes=limits.memory,
                       deny_read=[p for p in limits.deny if not str(scratch).startswith(p)], allow_write=writable)


def _record_run(result: StudentResult, run: _Run, cells: list[str | None]) -> None:
    """The cells that failed, and why execution ended early (the kernel died, or was stopped)."""
    for index, reply in sorted(run.replies.items()):
        if reply.get("status") == "error":
            result.cell_errors.append({"cell": index + 1, "ename": reply.get("ename", ""),
                                       "evalue": str(reply.get("evalue", ""))[:300]})
    if run.died_at is not None:
        where = f"cell {run.died_at + 1} (`{_short_source(cells[run.died_at] or '')}`)"
        result.error = f"the kernel died while running {where}" + (f": {run.crash}" if run.crash else "") + \
            "; the exercises defined before it are graded"
        result.flags.append("kernel-died")
    elif run.stopped_at is not None:
        result.error = run.stop_reason + "; the exercises defined before it are graded"
        result.flags.append("stopped")


def _verdict(ex, exports: Path, env: dict[str, str], cwd: Path, limits: _Limits, run: _Run) -> tuple[str, str]:
    """``(status, message)`` of one exercise: its exported function, called by its check from here."""
    from ..exercises import CheckFailed, NotDone
    from ..exercises import check as check_module
    from .remote import ERROR_SUFFIX, EXPORT_SUFFIX, FunctionRunner, ReferenceUsed, RemoteFunction, RunnerDied

    exported, failed = exports / (ex.function + EXPORT_SUFFIX), exports / (ex.function + ERROR_SUFFIX)
    if failed.exists():
        return "error", (f"{ex.label}: `{ex.function}` could not be copied out of the notebook "
                         f"({failed.read_text(errors='replace')[:200]}); does it use a global that cannot be "
                         "copied, such as an open file or a generator? Create it inside the function")
    if not exported.exists():
        ended = run.died_at if run.died_at is not None else run.stopped_at
        why = f" (the notebook stopped at cell {ended + 1}, before it was defined)" if ended is not None else \
            " (was its cell deleted, renamed, or did it fail to run?)"
        return "not done", f"{ex.label}: no function `{ex.function}` in the notebook{why}"
    preload = ["torch"] if any(r.startswith(("coursekit.cnn", "coursekit.learning")) for r in ex.references) else []
    call_timeout = max(1.0, min(10.0, limits.timeout / 2))
    with FunctionRunner(exported.read_bytes(), ex.function, list(ex.references), env=env, cwd=str(cwd),
                        preload=preload) as runner:
        if not runner.outcome.loaded:
            if runner.outcome.problem == "reference-code":
                return "failed", f"{ex.label}: `{ex.function}` runs the code of coursekit's reference " \
                                 f"`{ex.references[0]}`; write it yourself"
            return "error", f"{ex.label}: `{ex.function}` could not be loaded in the grader's sandbox: " \
                            f"{runner.outcome.problem}"
        out, saved = io.StringIO(), check_module.CALL_TIMEOUT
        check_module.CALL_TIMEOUT = call_timeout  # what each call of the check may take, as its messages say
        try:
            with redirect_stdout(out):
                ex.check(RemoteFunction(runner, call_timeout + 1))
            lines = [line for line in out.getvalue().splitlines() if line.strip()]
            status, message = "passed", (lines[-1] if lines else f"{ex.label}: passed")
        except ReferenceUsed as e:
            status, message = "failed", ""
            runner.used_reference = runner.used_reference or str(e)
        except NotDone as e:
            status, message = "not done", str(e)
        except CheckFailed as e:
            status, message = "failed", str(e)
        except RunnerDied as e:
            status, message = "error", f"{ex.label}: `{ex.function}` crashed the process running it: {e}"
        except BaseException as e:  # noqa: BLE001 - anything else is the grader's to report
            status, message = "error", f"{ex.label}: the check failed with {type(e).__name__}: {e}"
        finally:
            check_module.CALL_TIMEOUT = saved
        if runner.used_reference:
            status, message = "failed", (f"{ex.label}: `{ex.function}` calls coursekit's reference "
                                         f"`{runner.used_reference}`; write it yourself")
    return status, message


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
    with atomic_write(dest) as tmp:
        nbformat.write(nb, tmp)
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
    jobs: int = 1,
    budget: float = DEFAULT_BUDGET,
    memory_gb: float = DEFAULT_MEMORY_GB,
) -> list[StudentResult]:
    """Grade every notebook under ``paths`` (see :func:`collect_notebooks`), one fresh kernel each,
    ``jobs`` at a time (in worker processes); ``progress`` is called after each one. No submission
    can read another: every path given is denied to all of them."""
    from .. import exercises as registry

    found = collect_notebooks(paths)
    deny = tuple(os.path.realpath(p) for p in paths)
    kwargs = dict(notebook=notebook, budget=budget, memory_gb=memory_gb, deny=deny)
    results: list[StudentResult | None] = [None] * len(found)
    if jobs <= 1 or len(found) <= 1:
        for i, (nb_path, name) in enumerate(found):
            results[i] = grade_notebook(nb_path, timeout, student=name, **kwargs)
            if progress:
                progress(results[i])
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(grade_notebook, nb_path, timeout, student=name, **kwargs): i
                       for i, (nb_path, name) in enumerate(found)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress:
                    progress(results[futures[future]])
    done = [r for r in results if r is not None]
    # A file we could not read or place: if everyone else did the same notebook, list its exercises.
    known = {r.notebook for r in done if r.notebook in registry.EXERCISES}
    if len(known) == 1:
        only = known.pop()
        for r in done:
            if r.error and not r.exercises:
                r.notebook = only
                r.exercises = _errors_for(registry.EXERCISES[only], r.error)
    return done


# --------------------------------------------------------------------------- reports

_MARK = {"failed": "x", "not done": "-", "error": "!"}


def shown(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (an ANSI escape, a carriage return)
    and bytes that were not UTF-8 in a file name written as escapes (``\\x1b``)."""
    out = []
    for ch in text:
        if 0xDC80 <= ord(ch) <= 0xDCFF:          # os.fsdecode's stand-in for a byte that was not UTF-8
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch != " " and (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def spreadsheet_safe(text: str) -> str:
    """A CSV cell that no spreadsheet runs as a formula: one starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return gets a leading ``'`` (OWASP's advice for CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


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
        width = max([len("student")] + [len(shown(r.student)) for r in group])
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
            lines.append(f"{shown(r.student):<{width}}  " + "  ".join(cells) + f"   {total}")
        lines.append("")
    lines.append("legend: points when passed, x failed, - not done, ! error")
    details = []
    for r in results:
        if r.error:
            details.append(shown(f"{r.student}: ERROR {r.error}"))
        for e in r.exercises:
            if e.status == "not done" and "not done yet" in e.message:
                continue  # the table's "-" says it all
            if e.status != "passed" and e.message != r.error:
                details.append(shown(f"{r.student}: {e.status}: {e.message}"))
    if details:
        lines += ["", *details]
    return "\n".join(lines)


def to_json(results: list[StudentResult]) -> str:
    """A JSON list of students: student, path, notebook, error, points,
    max_points, seconds, cell_errors, flags, and exercises (id, title, function,
    status, points, max_points, message). ASCII only: control characters and
    names that were not UTF-8 come as ``\\u`` escapes."""
    return json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=True)


def write_csv(results: list[StudentResult], path: str | Path) -> None:
    """A gradebook an LMS can import: one row per student, with the columns
    ``student, file, notebook``, one per exercise (``"0.1 precision at k"``:
    its points), ``total, max, error, flags``. Written whole, then moved into place.

    Text cells that would start a formula get a leading ``'``; a file name that is not UTF-8 is
    written with its own bytes (``surrogateescape``), so nothing of it is lost."""
    from .. import exercises as registry

    columns: list[tuple[str, str]] = []  # (exercise id, header)
    seen = set()
    ordered = [e for nb_id in registry.EXERCISES for e in registry.EXERCISES[nb_id]]
    present = {e.id for r in results for e in r.exercises}
    for e in ordered:
        if e.id in present and e.id not in seen:
            seen.add(e.id)
            columns.append((e.id, f"{e.id} {e.title}"))
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        w = csv.writer(f)
        w.writerow(["student", "file", "notebook", *(h for _, h in columns), "total", "max", "error", "flags"])
        for r in results:
            by_id = {e.id: e for e in r.exercises}
            row = [spreadsheet_safe(r.student), spreadsheet_safe(r.path), r.notebook or ""]
            row += [_num(by_id[i].points) if i in by_id else "" for i, _ in columns]
            row += [_num(r.points), _num(r.max_points), spreadsheet_safe(r.error or ""), " ".join(r.flags)]
            w.writerow(row)


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
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help=f"time limit for a whole notebook (default {DEFAULT_BUDGET})")
    parser.add_argument("--memory", type=float, default=DEFAULT_MEMORY_GB, metavar="GB",
                        help=f"memory per process of a submission (default {DEFAULT_MEMORY_GB})")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="submissions graded at once (default: half the cores, at least 1)")
    parser.add_argument("--notebook", metavar="ID",
                        help="the notebook the submissions are ('00'), when their metadata and "
                             "file names do not say")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def run(args: argparse.Namespace) -> int:
    """Grade as ``args`` (from :func:`add_arguments`) say. 0 when grading ran, 2 on bad arguments."""
    from .. import exercises as registry

    def bad(message: str) -> int:
        print(f"coursekit grade: error: {message}", file=sys.stderr)
        return 2

    if args.timeout <= 0 or args.budget <= 0 or args.memory <= 0:
        return bad("--timeout, --budget and --memory must be positive")
    jobs = args.jobs if args.jobs is not None else max(1, (os.cpu_count() or 2) // 2)
    if jobs < 1:
        return bad("--jobs must be at least 1")
    if args.csv and not Path(args.csv).resolve().parent.is_dir():
        return bad(f"the folder of --csv {args.csv} does not exist; create it first")
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
            print(shown(f"graded {r.student}: {what} ({r.seconds:.1f} s)"), file=sys.stderr, flush=True)

    from .sandbox import landlock_abi

    if not landlock_abi() and not args.quiet:
        print("coursekit grade: warning: this system has no Landlock (Linux 5.13 or newer), so a submission "
              "runs in a private copy but can still read and write other files by absolute path",
              file=sys.stderr)
    results = grade_paths(args.paths, args.timeout, notebook=args.notebook, progress=progress, jobs=jobs,
                          budget=args.budget, memory_gb=args.memory)
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
