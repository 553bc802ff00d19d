"""The check framework: run a student's function safely and say, in one line, what went wrong.

Every exercise of the course has one check, ``check_<name>(student_function)``,
built from the helpers here:

>>> c = Checker(exercise)                      # an :class:`Exercise`
>>> got = c.call(student_fn, labels=labels, k=3)           # positional call, named in messages
>>> c.compare(got, reference(labels, 3), atol=1e-6)        # shape, dtype, NaN, values
>>> return c.passed()                          # prints "✔ Exercise 0.1 (...): passed 12 cases."

:meth:`Checker.call` survives what students write: it passes copies of the
inputs and fails when the function changed them, turns ``NotImplementedError``
into :class:`NotDone`, any other exception into :class:`CheckFailed` naming
the exception and the input, and stops a function that runs longer than a
time limit (``SIGALRM`` in the main thread, where Jupyter runs cells; a
watchdog thread elsewhere).

A failed check raises :class:`CheckFailed`, an ``AssertionError`` that
IPython shows as its one-line message instead of a traceback. Its fields say
what happened (``e.kind == "mutated"``, ``e.argument``, ``e.call``, ...): a
check that adds its own advice to a failure tests them, never the message.
A check that tests an answer itself counts each case it passed with
:meth:`Checker.count`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = [
    "CheckFailed", "NotDone", "Exercise", "Checker", "call_student", "compare", "describe",
    "CALL_TIMEOUT", "TimeLimit", "input_changed",
]

#: Seconds one call of a student's function may take before the check fails.
CALL_TIMEOUT = 10.0


class CheckFailed(AssertionError):
    """A check failed. Jupyter shows only the message, one line, no traceback.

    Besides its message it says what happened in fields, which a check tests
    instead of parsing the message of another:

    ``kind``
        ``"wrong"`` (a wrong answer: the default), ``"raised"`` (the function
        raised an exception), ``"mutated"`` (it changed an input),
        ``"timeout"``, ``"exit"`` (it called ``exit()``), ``"not done"``
        (:class:`NotDone`) or ``"not callable"``.
    ``label``, ``call``
        the exercise's label and the call as messages name it
        (``"fn(x=[1 2 3], k=3)"``; ``""`` when there is none); :attr:`where`
        joins them as messages start.
    ``argument``
        for ``"mutated"``, the name of the input the function changed.
    ``exception_type``, ``exception_message``
        for ``"raised"``, the name of the exception's class (the student's,
        also through the grader's proxy) and its first line as the message
        shows it (at most 200 characters).

    The fields are plain strings, so a ``CheckFailed`` pickles with them.
    """

    def __init__(self, message: str = "", *, kind: str = "wrong", label: str = "", call: str = "",
                 argument: str | None = None, exception_type: str | None = None,
                 exception_message: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.label = label
        self.call = call
        self.argument = argument
        self.exception_type = exception_type
        self.exception_message = exception_message

    @property
    def where(self) -> str:
        """``"Exercise 0.1 (...): fn(k=3)"``: the label and the call, as a message about the call starts."""
        return f"{self.label}: {self.call}" if self.call else self.label

    def amended(self, text: str) -> CheckFailed:
        """The same failure (class and fields) with ``text`` added to the end of its message."""
        return type(self)(str(self) + text, **self._fields())

    def _fields(self) -> dict[str, Any]:
        return dict(kind=self.kind, label=self.label, call=self.call, argument=self.argument,
                    exception_type=self.exception_type, exception_message=self.exception_message)

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting a traceback.
        return [f"\x1b[31m{self}\x1b[0m"]


class NotDone(CheckFailed):
    """The student's function still raises ``NotImplementedError``."""

    def __init__(self, message: str = "", **fields: Any):
        fields.setdefault("kind", "not done")
        super().__init__(message, **fields)


class TimeLimit(BaseException):
    """A call of the student's function ran over its time limit (here, or in the grader's sandbox).

    A ``BaseException``, so that a student's ``except Exception:`` cannot swallow it."""


@dataclass(frozen=True)
class Exercise:
    """One autograded exercise.

    ``id`` is "0.2", ``title`` a few words ("recall at k"), ``function`` the
    name the student defines in the notebook, ``points`` what it is worth
    (declared only here), ``check`` the callable ``check(student_function)``,
    ``references`` the dotted names of coursekit's answer ("coursekit.evaluation.recall_at_k"):
    the grader refuses a function that is one of them or calls one.
    """

    id: str
    title: str
    function: str
    points: float
    check: Callable[..., bool]
    references: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"Exercise {self.id} ({self.title})"


# --------------------------------------------------------------------------- describing inputs

def _short_array(a: np.ndarray, limit: int = 10) -> str:
    flat = a.reshape(-1)
    if a.dtype == bool:
        limit = max(limit, 16)
        items = ["T" if v else "F" for v in flat[:limit]]
    elif a.dtype.kind == "f":
        items = [f"{v:.4g}" for v in flat[:limit]]
    else:
        items = [str(v) for v in flat[:limit]]
    more = " ..." if flat.size > limit else ""
    body = "[" + " ".join(items) + more + "]"
    if a.ndim != 1:
        body = f"array of shape {a.shape}, {a.dtype}: {body}"
    return body


def _is_sparse(x: Any) -> bool:
    """A scipy.sparse matrix or array (without importing scipy here)."""
    return any(c.__module__.startswith("scipy.sparse") for c in type(x).__mro__)


def describe(value: Any, limit: int = 10) -> str:
    """A short, readable description of an input or a result, for messages."""
    if _is_sparse(value):
        return f"<{value.shape[0]}x{value.shape[1]} sparse {value.format}, {value.dtype}, {value.nnz} stored>"
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return describe(value.item())
        return _short_array(value, limit)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    if isinstance(value, (list, tuple)):
        if value and all(dataclasses.is_dataclass(v) for v in value):
            return f"[{len(value)} {type(value[0]).__name__}]"
        inner = ", ".join(describe(v, limit) for v in value[:limit])
        more = ", ..." if len(value) > limit else ""
        return ("[" + inner + more + "]") if isinstance(value, list) else ("(" + inner + more + ")")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(f"{f.name}={describe(getattr(value, f.name), 6)}" for f in dataclasses.fields(value))
        return f"{type(value).__name__}({fields})"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _call_text(name: str, args: dict[str, Any], limit: int = 10) -> str:
    """``name(k=v, ...)`` with each value described (arrays shortened to ``limit`` values)."""
    return f"{name}(" + ", ".join(f"{k}={describe(v, limit)}" for k, v in args.items()) + ")"


def call_text(name: str, args: dict[str, Any]) -> str:
    """How a check's messages name a call: ``name(k=v, ...)``, arrays shortened to 6 values."""
    return _call_text(name, args, 6)


def diagnose(where: str, got: Any, expected: np.ndarray, slips: dict[str, Any], tol: dict) -> None:
    """Fail naming the slip when ``got`` (of the expected shape) equals one of ``slips``' answers instead.

    ``slips`` maps a hint (what the student probably did, and the fix) to the
    answer that slip gives. A slip whose answer equals the expected one on
    this case, or is not finite, says nothing.
    """
    if not isinstance(got, np.ndarray) or got.shape != expected.shape or got.dtype.kind not in "fiub":
        return
    g = got.astype(np.float64)
    if np.allclose(g, expected, **tol):
        return
    for hint, answer in slips.items():
        answer = np.asarray(answer, np.float64)
        if answer.shape == expected.shape and np.all(np.isfinite(answer)) \
                and not np.allclose(answer, expected, **tol) and np.allclose(g, answer, **tol):
            raise CheckFailed(f"{where}: {hint}")


# --------------------------------------------------------------------------- mutation

def _same(a: Any, b: Any) -> bool:
    """Deep equality for the kinds of inputs checks pass (arrays, sparse matrices, lists, dataclasses)."""
    if _is_sparse(a) or _is_sparse(b):
        return (_is_sparse(a) and _is_sparse(b) and a.shape == b.shape and a.dtype == b.dtype
                and (a != b).nnz == 0)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    try:
        return bool(a == b) or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    except Exception:
        return a is b


# --------------------------------------------------------------------------- time limit

@contextmanager
def _alarm(seconds: float):
    """Raise :class:`TimeLimit` in the main thread after ``seconds``."""
    def on_alarm(signum, frame):
        raise TimeLimit()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_with_time_limit(fn: Callable, args: tuple, seconds: float | None):
    """``fn(*args)``, raising :class:`TimeLimit` when it takes longer than ``seconds``."""
    if not seconds:
        return fn(*args)
    if hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread():
        with _alarm(seconds):
            return fn(*args)
    # Not the main thread (or no SIGALRM): a daemon thread, abandoned if it runs too long.
    box: dict[str, Any] = {}

    def target():
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True, name="coursekit-check")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeLimit()
    if "error" in box:
        raise box["error"]
    return box.get("result")


# --------------------------------------------------------------------------- calling and comparing

def _label_of(exercise: Exercise | str) -> str:
    return exercise.label if isinstance(exercise, Exercise) else str(exercise)


def call_student(
    exercise: Exercise | str,
    fn: Callable,
    args: dict[str, Any],
    *,
    timeout: float | None = CALL_TIMEOUT,
    allow_mutation: bool = False,
) -> Any:
    """Call ``fn`` with copies of ``args`` (positionally, in order) and return what it returns.

    ``args`` maps parameter names to values; the names only appear in
    messages, so students may name their parameters as they like.
    Raises :class:`NotDone` for ``NotImplementedError`` and :class:`CheckFailed`
    for any other exception, a time-out, or changed inputs.
    """
    label = _label_of(exercise)
    name = getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise CheckFailed(f"{label}: expected a function, got {describe(fn)} ({type(fn).__name__})",
                          kind="not callable", label=label)
    pristine = {k: copy.deepcopy(v) for k, v in args.items()}
    given = {k: copy.deepcopy(v) for k, v in args.items()}
    call = _call_text(name, pristine)
    try:
        result = _run_with_time_limit(fn, tuple(given.values()), timeout)
    except NotImplementedError:
        raise NotDone(
            f"{label}: not done yet — replace the `raise NotImplementedError` with your code.",
            label=label, call=call,
        ) from None
    except TimeLimit:
        raise CheckFailed(
            f"{label}: {call} did not finish within {timeout:g} s — is there an infinite loop?",
            kind="timeout", label=label, call=call,
        ) from None
    except SystemExit:
        raise CheckFailed(f"{label}: {call} called exit(); return a value instead",
                          kind="exit", label=label, call=call) from None
    except RecursionError:
        raise _raised(label, call, "RecursionError", "maximum recursion depth exceeded",
                      shown="RecursionError (maximum recursion depth exceeded)") from None
    except Exception as e:  # noqa: BLE001 - any student error becomes one line
        raise _raised(label, call, type(e).__name__, _first_line(e)) from None
    if not allow_mutation:
        for k in args:
            if not _same(given[k], pristine[k]):
                raise input_changed(label, call, k)
    return result


def _first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of ``e``'s message (``""`` when it has none), cut to ``limit`` characters."""
    message = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return message[:limit - 3] + "..." if len(message) > limit else message


def _raised(label: str, call: str, exception_type: str, exception_message: str, *,
            shown: str | None = None) -> CheckFailed:
    """The failure of a call that raised: ``"<label>: <call> raised <Type>: <message>"`` (or ``shown``
    instead of ``<Type>: <message>``)."""
    if shown is None:
        shown = f"{exception_type}: {exception_message}" if exception_message else exception_type
    return CheckFailed(f"{label}: {call} raised {shown}", kind="raised", label=label, call=call,
                       exception_type=exception_type, exception_message=exception_message)


def input_changed(label: str, call: str, argument: str, advice: str | None = None) -> CheckFailed:
    """The failure of ``call``, which changed its input ``argument``: the message says so, then ``advice``.

    The default advice is NumPy's (work on a copy); a check whose inputs are tensors gives its own
    (``"leave the map as it is: no in-place operations ..."``) from the fields of the failure that
    :func:`call_student` raised (``e.label``, ``e.call``, ``e.argument``).
    """
    if advice is None:
        advice = f"leave the inputs as they are (work on a copy, e.g. `{argument} = {argument}.copy()`)."
    return CheckFailed(f"{label}: {call} changed its input `{argument}`; {advice}",
                       kind="mutated", label=label, call=call, argument=argument)


def _is_number(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 0 and x.dtype.kind in "iuf"
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def compare(
    exercise: Exercise | str,
    got: Any,
    expected: Any,
    *,
    call: str = "",
    atol: float = 1e-6,
    rtol: float = 1e-6,
    dtype: Any = None,
) -> None:
    """Fail with one line unless ``got`` matches ``expected``.

    A scalar ``expected`` wants a real number (Python or NumPy, or a 0-d
    array); an array wants the same shape, the same kind of dtype (float,
    integer, bool; exactly ``dtype`` when given) and values within
    ``atol + rtol * |expected|``. NaN where none is expected is reported as such.
    ``call`` (e.g. ``"average_precision(labels=[T F ...], n_relevant=6)"``)
    starts the message.
    """
    where = f"{_label_of(exercise)}: {call}" if call else _label_of(exercise)
    if got is None and expected is not None:
        raise CheckFailed(f"{where} returned None — did you forget `return`?")

    if not isinstance(expected, np.ndarray) or expected.ndim == 0:
        exp = float(expected)
        if not _is_number(got):
            if isinstance(got, np.ndarray):
                raise CheckFailed(f"{where}: expected a single number, got an array of shape {got.shape}")
            raise CheckFailed(f"{where}: expected a number, got {describe(got)} ({type(got).__name__})")
        g = float(got)
        if math.isnan(g) and not math.isnan(exp):
            raise CheckFailed(f"{where}: expected {exp:.4g}, got nan")
        if not math.isclose(g, exp, rel_tol=rtol, abs_tol=atol) and not (math.isnan(g) and math.isnan(exp)):
            e_txt, g_txt = f"{exp:.4g}", f"{g:.4g}"
            if e_txt == g_txt:
                e_txt, g_txt = repr(exp), repr(g)
            raise CheckFailed(f"{where}: expected {e_txt}, got {g_txt}")
        return

    if not isinstance(got, np.ndarray):
        if isinstance(got, (list, tuple)):
            raise CheckFailed(f"{where}: expected a NumPy array, got a {type(got).__name__} "
                              f"(wrap it in np.asarray)")
        raise CheckFailed(f"{where}: expected an array of shape {expected.shape}, "
                          f"got {describe(got)} ({type(got).__name__})")
    if got.shape != expected.shape:
        raise CheckFailed(f"{where}: expected shape {expected.shape}, got shape {got.shape}")
    if dtype is not None:
        if got.dtype != np.dtype(dtype):
            raise CheckFailed(f"{where}: expected dtype {np.dtype(dtype)}, got {got.dtype}")
    else:
        kinds = {"f": "float", "i": "integer", "u": "integer", "b": "bool", "c": "complex"}
        ek, gk = kinds.get(expected.dtype.kind, expected.dtype.kind), kinds.get(got.dtype.kind, got.dtype.kind)
        if ek != gk:
            raise CheckFailed(f"{where}: expected a {ek} array ({expected.dtype}), got {got.dtype}")
    if got.dtype.kind in "fc":
        bad_nan = np.isnan(got) & ~np.isnan(expected) if expected.dtype.kind in "fc" else np.isnan(got)
        if bad_nan.any():
            i = tuple(int(j) for j in np.argwhere(bad_nan)[0])
            raise CheckFailed(f"{where}: got nan at index {i} (expected {describe(expected[i])})")
    if expected.dtype.kind in "fc":
        ok = np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    else:
        ok = got == expected
    if not np.all(ok):
        i = tuple(int(j) for j in np.argwhere(~ok)[0])
        n_bad = int((~ok).sum())
        raise CheckFailed(
            f"{where}: at index {i} expected {describe(expected[i])}, got {describe(got[i])} "
            f"({n_bad} of {ok.size} values differ)"
        )


class Checker:
    """The state of one check: the exercise, the number of cases passed.

    >>> c = Checker(ex)
    >>> c.case(student_fn, reference, labels=l, k=3)   # call both, compare, count
    >>> got, where, call = c.start(student_fn, labels=l, k=3)   # or call, test it yourself...
    >>> c.count()                                      # ... and count the case it passed
    >>> return c.passed()
    """

    def __init__(self, exercise: Exercise, *, timeout: float | None = None, quiet: bool = False):
        self.exercise = exercise
        self.timeout = CALL_TIMEOUT if timeout is None else timeout
        self.quiet = quiet
        self._cases = 0

    @property
    def cases(self) -> int:
        """How many cases passed so far (counted by :meth:`count`; read-only)."""
        return self._cases

    def count(self) -> None:
        """Count one more case passed: call it once a case's last test has passed."""
        self._cases += 1

    def where(self, call: str) -> str:
        """The text a message about ``call`` starts with: ``"Exercise 9.1 (...): fn(X_q=..., k=5)"``."""
        return f"{self.exercise.label}: {call}"

    def call(self, fn: Callable, **args: Any) -> Any:
        return call_student(self.exercise, fn, args, timeout=self.timeout)

    def start(self, fn: Callable, **args: Any) -> tuple[Any, str, str]:
        """Call the student's function; return what it gave, the text a check's own messages start with
        (``"Exercise 9.1 (...): fn(X_q=..., k=5)"``) and the call alone (``"fn(X_q=..., k=5)"``, for
        :func:`compare`'s ``call``)."""
        got = self.call(fn, **args)
        call = call_text(getattr(fn, "__name__", self.exercise.function), args)
        return got, self.where(call), call

    def case(self, fn: Callable, reference: Callable, *, atol: float = 1e-6, rtol: float = 1e-6,
             dtype: Any = None, **args: Any) -> Any:
        """One case: the reference on the inputs, the student on copies of them; compare."""
        expected = reference(*copy.deepcopy(tuple(args.values())))
        got = self.call(fn, **args)
        name = getattr(fn, "__name__", self.exercise.function)
        compare(self.exercise, got, expected, call=_call_text(name, args), atol=atol, rtol=rtol, dtype=dtype)
        self.count()
        return got

    def passed(self) -> None:
        """Print the one line of success. Returns None, so a notebook cell shows only that line."""
        if not self.quiet:
            print(f"✔ {self.exercise.label}: passed {self.cases} cases.")
