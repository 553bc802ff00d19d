"""The checks of notebook 10: each passes the reference and independent correct answers (loops, sets, a full
sort), reports the stub as not done, fails plausible wrong answers with a one-line message that names the slip
where it can, and fails a function that raises or returns the wrong shape."""

import time

import numpy as np
import pytest

from checkhelpers import fails, stub
from coursekit import photo_search
from coursekit.exercises import EXERCISES, ex10

CHECKS = [ex10.check_plan_update, ex10.check_top_k]


def plan_loop(indexed, found):
    new, changed, missing = [], [], []
    for path, stat in found.items():
        if path not in indexed:
            new.append(path)
        elif tuple(stat) != tuple(indexed[path]):
            changed.append(path)
    for path in indexed:
        if path not in found:
            missing.append(path)
    return sorted(new), sorted(changed), sorted(missing)


def plan_sets(indexed, found):
    both = indexed.keys() & found.keys()
    return (sorted(found.keys() - indexed.keys()), sorted(p for p in both if list(indexed[p]) != list(found[p])),
            sorted(indexed.keys() - found.keys()))


def top_sort(X, q, k):
    s = X @ q
    ids = np.argsort(-s, kind="stable")[:k]
    return ids, s[ids]


def test_registry():
    assert [e.id for e in EXERCISES["10"]] == ["10.1", "10.2"]
    assert [e.points for e in EXERCISES["10"]] == [2, 2]
    assert [e.check for e in EXERCISES["10"]] == CHECKS


@pytest.mark.parametrize("check, fn", [
    (ex10.check_plan_update, photo_search.plan_update),
    (ex10.check_plan_update, plan_loop),
    (ex10.check_plan_update, plan_sets),
    (ex10.check_top_k, photo_search.top_k),
    (ex10.check_top_k, top_sort),
    (ex10.check_top_k, lambda X, q, k: tuple(list(a) for a in top_sort(X, q, k))),     # lists are accepted
])
def test_correct_answers_pass(check, fn, capsys):
    check(fn)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("check", CHECKS)
def test_the_stub_is_not_done(check):
    assert "not done" in fails(check, stub, not_done=True).lower()


@pytest.mark.parametrize("check", CHECKS)
def test_a_function_that_raises_fails_with_its_error(check):
    def broken(*args):
        raise ValueError("oops")

    assert "ValueError" in fails(check, broken)


# --------------------------------------------------------------------------------------------------- 10.1

@pytest.mark.parametrize("wrong, needle", [
    (lambda i, f: tuple(list(x) for x in (f.keys() - i.keys(), [p for p in f if p in i and tuple(f[p]) != tuple(i[p])],
                                          i.keys() - f.keys())), "order"),                     # unsorted
    (lambda i, f: (plan_loop(i, f)[0], sorted(p for p in f if p in i), plan_loop(i, f)[2]), "every photo in both"),
    (lambda i, f: (plan_loop(i, f)[0], plan_loop(i, f)[1], plan_loop(i, f)[0]), "other way round"),
    (lambda i, f: (plan_loop(i, f)[0], sorted(p for p in f if p in i and f[p] != i[p]), plan_loop(i, f)[2]),
     "compare the values"),                                                         # [5, 9] != (5, 9) in Python
    (lambda i, f: plan_loop(i, f)[:2], "three lists"),
    (lambda i, f: None, "forget `return`"),
])
def test_plan_update_slips_are_named(wrong, needle):
    message = fails(ex10.check_plan_update, wrong)
    assert needle in message, message


def test_plan_update_that_changes_its_input_fails():
    def destructive(indexed, found):
        out = plan_loop(indexed, found)
        indexed.clear()
        return out

    assert "changed its input" in fails(ex10.check_plan_update, destructive)


# --------------------------------------------------------------------------------------------------- 10.2

@pytest.mark.parametrize("wrong, needle", [
    (lambda X, q, k: tuple(a[::-1] for a in top_sort(X, q, k)), "increasing order of score"),
    (lambda X, q, k: (np.argsort(-(X @ q))[:k], np.sort(X @ q)[::-1][:k]), "equal scores"),    # unstable sort
    (lambda X, q, k: (np.sort(top_sort(X, q, k)[0]), top_sort(X, q, k)[1]), "wrong order"),
    (lambda X, q, k: (np.argsort(np.linalg.norm(X - q, axis=1), kind="stable")[:k],
                      (X @ q)[np.argsort(np.linalg.norm(X - q, axis=1), kind="stable")[:k]]), "Euclidean"),
    (lambda X, q, k: top_sort(X, q, k)[0], "pair"),
    (lambda X, q, k: None, "forget `return`"),
    (lambda X, q, k: (top_sort(X, q, k)[0][:-1], top_sort(X, q, k)[1][:-1]), "shape"),
    (lambda X, q, k: (top_sort(X, q, k)[0], -top_sort(X, q, k)[1]), "scores"),
])
def test_top_k_slips_are_named(wrong, needle):
    message = fails(ex10.check_top_k, wrong)
    assert needle in message, message


def test_top_k_with_a_python_loop_is_too_slow():
    def looped(X, q, k):
        time.sleep(2.0) if len(X) > 100_000 else None           # stands for a loop over 200,000 rows
        return top_sort(X, q, k)

    assert "without a Python loop" in fails(ex10.check_top_k, looped)


def test_the_reference_breaks_ties_at_the_kth_place_by_index():
    X = np.ones((10, 3), np.float32)
    X[[2, 7]] *= 2
    ids, scores = photo_search.top_k(X, np.ones(3, np.float32), 4)
    assert ids.tolist() == [2, 7, 0, 1]
    np.testing.assert_allclose(scores, [6, 6, 3, 3])
