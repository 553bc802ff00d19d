"""The check framework and the checks of notebook 00: each passes the
reference and independent correct answers, fails on the stub (as "not done")
and on plausible wrong answers, and survives what students write."""

import pickle
import re
import threading
import time

import numpy as np
import pytest

from coursekit import evaluation
from coursekit.exercises import (
    EXERCISES, CheckFailed, Checker, Exercise, NotDone, call_student, compare, exercise,
    exercises_for, notebook_id,
)
from coursekit.exercises import check as check_module
from coursekit.exercises import ex00
from coursekit.exercises.check import TimeLimit, input_changed
from coursekit.course.remote import RemoteError
from checkhelpers import fails, stub

CHECKS = {
    "precision_at_k": ex00.check_precision_at_k,
    "recall_at_k": ex00.check_recall_at_k,
    "average_precision": ex00.check_average_precision,
    "mean_average_precision": ex00.check_mean_average_precision,
}


# --------------------------------------------------------------------------- independent answers

def my_precision(labels, k):
    return sum(bool(x) for x in list(labels)[:k]) / k


def my_recall(labels, k, n_relevant):
    return sum(bool(x) for x in list(labels)[:k]) / n_relevant


def my_ap(labels, n_relevant):
    hits, total = 0, 0.0
    for i, rel in enumerate(labels, start=1):
        if rel:
            hits += 1
            total += hits / i
    return total / n_relevant


def my_map(ranks, gnd):
    aps = []
    for row, g in zip(ranks, gnd):
        positives = set(g.easy.tolist()) | set(g.hard.tolist())
        if not positives:
            continue
        junk = set(g.junk.tolist())
        labels = [int(i) in positives for i in row if int(i) not in junk]
        aps.append(my_ap(labels, len(positives)))
    return sum(aps) / len(aps)



# --------------------------------------------------------------------------- passing

@pytest.mark.parametrize("name", list(CHECKS))
def test_check_passes_the_reference(name, capsys):
    ref = getattr(evaluation, name)
    assert CHECKS[name](ref) is None  # passing is not raising
    out = capsys.readouterr().out.strip()
    ex = next(e for e in EXERCISES["00"] if e.function == name)
    assert re.fullmatch(rf"✔ Exercise {re.escape(ex.id)} \(.+\): passed \d+ cases\.", out), out


@pytest.mark.parametrize("name, fn", [
    ("precision_at_k", my_precision), ("recall_at_k", my_recall),
    ("average_precision", my_ap), ("mean_average_precision", my_map),
])
def test_check_passes_an_independent_answer(name, fn):
    assert CHECKS[name](fn, quiet=True) is None


def test_lecture_example():
    assert ex00.LECTURE_LABELS.tolist() == [True, True, False, True, False, False,
                                           True, False, True, True, False, False]
    assert round(my_ap(ex00.LECTURE_LABELS, 6), 4) == 0.7462


def test_quiet_prints_nothing(capsys):
    ex00.check_precision_at_k(my_precision, quiet=True)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- the stub

@pytest.mark.parametrize("name", list(CHECKS))
def test_check_reports_the_stub_as_not_done(name):
    message = fails(CHECKS[name], stub, not_done=True)
    assert "not done yet" in message and "NotImplementedError" in message


# --------------------------------------------------------------------------- wrong answers

def test_precision_wrong_answers():
    # Divides by N, the length of the list, instead of k.
    m = fails(ex00.check_precision_at_k, lambda labels, k: float(np.sum(labels[:k]) / len(labels)))
    assert "expected" in m and "got" in m
    # Off by one: the top k+1.
    fails(ex00.check_precision_at_k, lambda labels, k: float(np.mean(labels[: k + 1])))


def test_recall_wrong_answers():
    # Divides by k (that is precision).
    fails(ex00.check_recall_at_k, lambda labels, k, n: float(np.sum(labels[:k]) / k))
    # Divides by the relevant items retrieved in the list instead of all n_relevant.
    fails(ex00.check_recall_at_k, lambda labels, k, n: float(np.sum(labels[:k]) / max(1, np.sum(labels))))


def ap_by_retrieved(labels, n_relevant):
    """Wrong: divides by the relevant items retrieved, not by all n_relevant."""
    labels = np.asarray(labels, bool)
    if not labels.any():
        return 0.0
    hits = np.cumsum(labels)
    return float(np.mean(hits[labels] / (np.flatnonzero(labels) + 1)))


def ap_ranks_from_0(labels, n_relevant):
    """Wrong: ranks counted from 0 (guarded against division by zero)."""
    labels = np.asarray(labels, bool)
    hits = np.cumsum(labels)
    return float(np.sum(hits[labels] / np.maximum(np.flatnonzero(labels), 1)) / n_relevant)


def ap_ranks_from_0_unguarded(labels, n_relevant):
    labels = np.asarray(labels, bool)
    hits = np.cumsum(labels)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(hits[labels] / np.flatnonzero(labels)) / n_relevant)


def test_ap_dividing_by_retrieved_positives_fails_with_a_readable_message():
    m = fails(ex00.check_average_precision, ap_by_retrieved)
    assert m == ("Exercise 0.3 (average precision): ap_by_retrieved(labels=[T T F T F F T F T T F F], "
                 "n_relevant=8): expected 0.5596, got 0.7462")


def test_ap_counting_ranks_from_0_fails():
    m = fails(ex00.check_average_precision, ap_ranks_from_0)
    assert "n_relevant=6): expected 0.7462, got" in m
    m = fails(ex00.check_average_precision, ap_ranks_from_0_unguarded)
    assert "expected 0.7462, got inf" in m


def test_ap_mean_over_all_ranks_fails():
    # Mean precision over every rank, not only at the relevant ones.
    fails(ex00.check_average_precision,
          lambda labels, n: float(np.mean(np.cumsum(labels) / np.arange(1, len(labels) + 1))))


def map_keeping_junk(ranks, gnd):
    aps = []
    for row, g in zip(ranks, gnd):
        pos = np.concatenate([g.easy, g.hard])
        if pos.size:
            aps.append(my_ap(np.isin(row, pos), pos.size))
    return float(np.mean(aps))


def map_zero_for_no_positives(ranks, gnd):
    aps = []
    for row, g in zip(ranks, gnd):
        pos = np.concatenate([g.easy, g.hard])
        kept = row[~np.isin(row, g.junk)]
        aps.append(my_ap(np.isin(kept, pos), pos.size) if pos.size else 0.0)
    return float(np.mean(aps))


def map_easy_only(ranks, gnd):
    aps = []
    for row, g in zip(ranks, gnd):
        if g.easy.size:
            kept = row[~np.isin(row, g.junk)]
            aps.append(my_ap(np.isin(kept, g.easy), g.easy.size))
    return float(np.mean(aps))


@pytest.mark.parametrize("wrong", [map_keeping_junk, map_zero_for_no_positives, map_easy_only])
def test_map_wrong_answers(wrong):
    m = fails(ex00.check_mean_average_precision, wrong)
    assert f"{wrong.__name__}(ranks=" in m and "gnd=[" in m and "expected" in m


def test_map_with_a_wrong_ap_inside_fails():
    def map_with_wrong_ap(ranks, gnd):
        aps = []
        for row, g in zip(ranks, gnd):
            pos = np.concatenate([g.easy, g.hard])
            if pos.size:
                kept = row[~np.isin(row, g.junk)]
                aps.append(ap_ranks_from_0(np.isin(kept, pos), pos.size))
        return float(np.mean(aps))
    fails(ex00.check_mean_average_precision, map_with_wrong_ap)


# --------------------------------------------------------------------------- what students write

def test_exceptions_are_reported_with_the_input():
    def broken(labels, n_relevant):
        return labels[100]
    m = fails(ex00.check_average_precision, broken)
    assert m.startswith("Exercise 0.3 (average precision): broken(labels=[T T F")
    assert "raised IndexError: index 100 is out of bounds" in m


def test_none_nan_and_wrong_types():
    assert "returned None — did you forget `return`?" in fails(ex00.check_precision_at_k, lambda labels, k: None)
    assert "got nan" in fails(ex00.check_precision_at_k, lambda labels, k: float("nan"))
    assert "expected a single number, got an array of shape (1,)" in fails(
        ex00.check_precision_at_k, lambda labels, k: np.array([labels[:k].mean()]))
    assert "expected a number, got" in fails(ex00.check_precision_at_k, lambda labels, k: "0.5")
    # NumPy scalars and 0-d arrays are numbers.
    assert ex00.check_precision_at_k(lambda labels, k: np.float32(np.sum(labels[:k]) / k), quiet=True) is None  # float32 passes
    assert ex00.check_precision_at_k(lambda labels, k: np.asarray(np.sum(labels[:k]) / k), quiet=True) is None  # a 0-d array passes


def test_mutating_the_input_fails():
    def sorts_in_place(labels, n_relevant):
        result = my_ap(labels, n_relevant)
        labels.sort()
        return result
    m = fails(ex00.check_average_precision, sorts_in_place)
    assert "changed its input `labels`" in m

    def drops_junk_in_place(ranks, gnd):
        result = my_map(ranks, gnd)
        ranks[:] = 0
        return result
    assert "changed its input `ranks`" in fails(ex00.check_mean_average_precision, drops_junk_in_place)


def test_infinite_loop_hits_the_time_limit(monkeypatch):
    monkeypatch.setattr(check_module, "CALL_TIMEOUT", 0.3)

    def forever(labels, k):
        while True:
            try:
                pass
            except Exception:  # a student's catch-all does not swallow the time limit
                pass

    t = time.monotonic()
    m = fails(ex00.check_precision_at_k, forever)
    assert time.monotonic() - t < 3
    assert "did not finish within 0.3 s — is there an infinite loop?" in m
    # the alarm is off again
    time.sleep(0.4)


def test_time_limit_outside_the_main_thread(monkeypatch):
    monkeypatch.setattr(check_module, "CALL_TIMEOUT", 0.3)
    stop = threading.Event()
    box = {}

    def slow(labels, k):
        stop.wait(5)
        return 0.0

    def worker():
        try:
            ex00.check_precision_at_k(slow)
        except CheckFailed as e:
            box["message"] = str(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join(5)
    stop.set()
    assert "did not finish within 0.3 s" in box["message"]


def test_exit_and_recursion_are_failures():
    assert "called exit()" in fails(ex00.check_precision_at_k, lambda labels, k: exit())

    def recurse(labels, k):
        return recurse(labels, k)
    assert "RecursionError" in fails(ex00.check_precision_at_k, recurse)


def test_not_a_function():
    assert "expected a function" in fails(ex00.check_precision_at_k, 0.5)


# --------------------------------------------------------------------------- the framework

EX = Exercise("9.9", "toy", "toy", 1, check=lambda fn: True)


def test_compare_arrays():
    e = np.array([[1.0, 2.0], [3.0, 4.0]])
    compare(EX, e + 1e-9, e)
    with pytest.raises(CheckFailed, match=r"expected shape \(2, 2\), got shape \(4,\)"):
        compare(EX, e.ravel(), e)
    with pytest.raises(CheckFailed, match="expected a float array .*got int64"):
        compare(EX, e.astype(np.int64), e)
    with pytest.raises(CheckFailed, match="expected dtype float32, got float64"):
        compare(EX, e, e.astype(np.float32), dtype=np.float32)
    with pytest.raises(CheckFailed, match=r"got nan at index \(1, 0\)"):
        compare(EX, np.where(e == 3, np.nan, e), e)
    with pytest.raises(CheckFailed, match=r"at index \(0, 1\) expected 2, got 2.5 \(1 of 4 values differ\)"):
        compare(EX, np.where(e == 2, 2.5, e), e)
    with pytest.raises(CheckFailed, match="expected a NumPy array, got a list"):
        compare(EX, e.tolist(), e)
    with pytest.raises(CheckFailed, match=r"toy\(x=\[1 2\]\): expected 1, got 2"):
        compare(EX, 2.0, 1.0, call="toy(x=[1 2])")


def test_checker_counts_cases_and_copies_inputs(capsys):
    c = Checker(EX)
    x = np.arange(3)
    c.case(lambda a: a.sum(), lambda a: a.sum(), x=x)
    c.case(lambda a: a.sum(), lambda a: a.sum(), x=x)
    assert c.passed() is None
    assert capsys.readouterr().out == "✔ Exercise 9.9 (toy): passed 2 cases.\n"
    assert call_student(EX, lambda a: a * 2, {"a": x}).tolist() == [0, 2, 4]


def test_check_failed_is_an_assertion_error_shown_as_one_line():
    assert issubclass(CheckFailed, AssertionError) and issubclass(NotDone, CheckFailed)
    lines = CheckFailed("Exercise 9.9 (toy): expected 1, got 2")._render_traceback_()
    assert len(lines) == 1 and "Exercise 9.9 (toy): expected 1, got 2" in lines[0]
    # In a real kernel: see test_grading.test_kernel_runs_this_python.


# --------------------------------------------------------------------------- what a failure says in fields

FIELDS = ("kind", "label", "call", "argument", "exception_type", "exception_message")


def failure(fn, args=None) -> CheckFailed:
    """The failure :func:`call_student` raises calling ``fn`` (on ``x = [0 1 2]`` unless ``args``)."""
    with pytest.raises(CheckFailed) as info:
        call_student(EX, fn, {"x": np.arange(3)} if args is None else args)
    return info.value


def not_aligned(x):
    raise ValueError("shapes (3,) and (2,) not aligned\nsecond line")


def doubles_y(x, y):
    y *= 2
    return x


def test_a_function_that_raises_fails_with_the_exception_s_type_and_first_line_in_fields():
    e = failure(not_aligned)
    assert (e.kind, e.exception_type, e.exception_message, e.argument) == \
        ("raised", "ValueError", "shapes (3,) and (2,) not aligned", None)
    assert (e.label, e.call) == ("Exercise 9.9 (toy)", "not_aligned(x=[0 1 2])")
    assert e.where == "Exercise 9.9 (toy): not_aligned(x=[0 1 2])"
    assert str(e) == f"{e.where} raised ValueError: shapes (3,) and (2,) not aligned"


def test_a_function_that_changes_its_input_fails_naming_the_argument_in_a_field():
    e = failure(doubles_y, {"x": np.arange(3), "y": np.ones(2)})
    assert (e.kind, e.argument, e.exception_type) == ("mutated", "y", None)
    assert str(e) == (f"{e.where} changed its input `y`; leave the inputs as they are "
                      f"(work on a copy, e.g. `y = y.copy()`).")
    other = input_changed(e.label, e.call, e.argument, "leave y alone")
    assert str(other) == f"{e.where} changed its input `y`; leave y alone" and other.kind == "mutated"


def test_time_limit_exit_recursion_and_not_a_function_have_their_kind():
    def loops(x):
        raise TimeLimit()

    def recurse(x):
        return recurse(x)
    assert failure(loops).kind == "timeout"
    assert failure(lambda x: exit()).kind == "exit"
    e = failure(recurse)
    assert (e.kind, e.exception_type, e.exception_message) == \
        ("raised", "RecursionError", "maximum recursion depth exceeded")
    assert str(e) == f"{e.where} raised RecursionError (maximum recursion depth exceeded)"
    e = failure(0.5)
    assert (e.kind, e.call, e.where) == ("not callable", "", "Exercise 9.9 (toy)")
    with pytest.raises(NotDone) as info:
        call_student(EX, stub, {"x": 1})
    assert (info.value.kind, info.value.call) == ("not done", "stub(x=1)")
    with pytest.raises(CheckFailed) as info:
        compare(EX, 2.0, 1.0, call="toy(x=[1 2])")
    assert info.value.kind == "wrong"


def test_the_grader_s_proxy_fails_with_the_same_fields_as_the_function():
    class Proxy:
        """What the grader passes instead of the function: callable, named, raising like the student's."""
        __name__ = "toy"

        def __init__(self, error):
            self.error = error

        def __call__(self, *args):
            raise self.error
    student_runtime_error = type("RuntimeError", (RemoteError,), {})
    e = failure(Proxy(student_runtime_error("RuntimeError", "The size of tensor a (4) must match the size of "
                                                            "tensor b (3) at non-singleton dimension 1")))
    assert (e.kind, e.exception_type, e.call) == ("raised", "RuntimeError", "toy(x=[0 1 2])")
    assert "must match the size of tensor" in e.exception_message
    assert failure(Proxy(TimeLimit())).kind == "timeout"
    with pytest.raises(NotDone):
        call_student(EX, Proxy(NotImplementedError()), {"x": 1})


def test_an_amended_failure_keeps_its_class_and_fields():
    e = failure(not_aligned)
    amended = e.amended(" (a hint)")
    assert str(amended) == str(e) + " (a hint)"
    assert type(amended) is CheckFailed and [getattr(amended, f) for f in FIELDS] == [getattr(e, f) for f in FIELDS]
    assert type(NotDone("not done yet").amended("!")) is NotDone


def test_a_failure_pickles_with_its_message_and_fields_and_stays_one_line():
    for e in (failure(not_aligned), failure(doubles_y, {"x": np.arange(3), "y": np.ones(2)}),
              NotDone("Exercise 9.9 (toy): not done yet", label="Exercise 9.9 (toy)", call="toy(x=1)"),
              CheckFailed("Exercise 9.9 (toy): expected 1, got 2")):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
        assert [getattr(back, f) for f in FIELDS] == [getattr(e, f) for f in FIELDS]
        assert back._render_traceback_() == e._render_traceback_() and len(back._render_traceback_()) == 1


def test_checker_start_returns_the_call_apart_and_count_counts_the_cases(capsys):
    c = Checker(EX)

    def total(a):
        return a.sum()
    got, where, call = c.start(total, a=np.arange(3))
    assert (got, call, where) == (3, "total(a=[0 1 2])", "Exercise 9.9 (toy): total(a=[0 1 2])")
    assert c.where(call) == where
    c.count()
    c.count()
    with pytest.raises(AttributeError):
        c.cases += 1        # only count() counts
    assert c.cases == 2
    c.passed()
    assert capsys.readouterr().out == "✔ Exercise 9.9 (toy): passed 2 cases.\n"


# --------------------------------------------------------------------------- the registry

def test_registry():
    ids = [e.id for nb in EXERCISES.values() for e in nb]
    assert len(ids) == len(set(ids))
    for nb_id, exercises in EXERCISES.items():
        assert re.fullmatch(r"\d\d", nb_id)
        for e in exercises:
            assert e.id.startswith(f"{int(nb_id)}.") and e.points > 0 and e.function.isidentifier()
            assert callable(e.check) and exercise(e.id) is e
    assert [e.function for e in EXERCISES["00"]] == list(CHECKS)
    assert sum(e.points for e in EXERCISES["00"]) == 6


def test_notebook_id():
    assert notebook_id({"coursekit": {"notebook": "00"}}, "alice.ipynb") == "00"
    assert notebook_id({}, "subs/00_retrieval.ipynb") == "00"
    assert notebook_id({}, "alice.ipynb") is None
    assert notebook_id(None, "2024_alice.ipynb") is None
    assert [e.id for e in exercises_for({}, "00_x.ipynb")] == ["0.1", "0.2", "0.3", "0.4"]
    assert exercises_for({}, "notes.ipynb") == []


ALL = [e for exercises in EXERCISES.values() for e in exercises]


@pytest.mark.parametrize("ex", ALL, ids=lambda e: e.id)
def test_every_check_reports_a_stub_an_error_and_none_in_one_line(ex):
    """What every exercise's check must do, whatever the exercise: the untouched stub is "not done",
    a function that raises fails with its error, and one that returns None fails saying so."""
    def broken(*args):
        return np.zeros(3)[5]

    assert "not done yet" in fails(ex.check, stub, not_done=True)
    assert "raised IndexError" in fails(ex.check, broken)
    assert "returned None" in fails(ex.check, lambda *args: None)
