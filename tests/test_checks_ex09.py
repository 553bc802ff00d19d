"""The checks of notebook 09: each passes the reference and independent correct answers (loops, a dense
form, SciPy's cg), reports the stub as not done, fails plausible wrong answers with a one-line message that
names the slip where it can, and fails a function that raises or returns the wrong shape."""

import numpy as np
import pytest
import scipy.sparse as sp

from checkhelpers import fails, stub
from coursekit import rerank
from coursekit.exercises import EXERCISES, ex09

CHECKS = [ex09.check_average_query_expansion, ex09.check_normalized_affinity, ex09.check_conjugate_gradient]


def unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------- correct answers

def aqe_loop(X_q, X_db, k):
    out = []
    for q in X_q:
        top = np.argsort(-(X_db @ q))[:k]
        v = q + X_db[top].sum(axis=0)
        out.append(v / np.linalg.norm(v))
    return np.array(out)


def affinity_dense(A):
    d = A.sum(axis=1)
    inv = np.diag([1 / np.sqrt(x) if x > 0 else 0.0 for x in d])
    return inv @ A @ inv


def cg_plain(matvec, b, tol, maxiter):
    x = np.zeros_like(b)
    r = b - matvec(x)                         # a product with x = 0: not counted
    p = r.copy()
    rr = r @ r
    for _ in range(maxiter):
        if np.sqrt(rr) <= tol * np.linalg.norm(b):
            break
        Mp = matvec(p)
        a = rr / (p @ Mp)
        x = x + a * p
        r = r - a * Mp
        rr_new = r @ r
        p = r + rr_new / rr * p
        rr = rr_new
    return x


def cg_scipy(matvec, b, tol, maxiter):
    from scipy.sparse.linalg import LinearOperator, cg

    op = LinearOperator((len(b), len(b)), matvec=matvec, dtype=np.float64)
    return cg(op, b, rtol=tol, maxiter=maxiter)[0]


def test_registry():
    assert [e.id for e in EXERCISES["09"]] == ["9.1", "9.2", "9.3"]
    assert [e.points for e in EXERCISES["09"]] == [2, 2, 3]
    assert [e.check for e in EXERCISES["09"]] == CHECKS


@pytest.mark.parametrize("check, fn", [
    (ex09.check_average_query_expansion, rerank.average_query_expansion),
    (ex09.check_average_query_expansion, aqe_loop),
    (ex09.check_average_query_expansion, lambda X_q, X_db, k: rerank.alpha_query_expansion(X_q, X_db, k, 0.0)),
    (ex09.check_normalized_affinity, lambda A: rerank.normalized_affinity(sp.csr_matrix(A))),   # sparse result
    (ex09.check_normalized_affinity, affinity_dense),
    (ex09.check_conjugate_gradient, cg_plain),
    (ex09.check_conjugate_gradient, cg_scipy),
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


# --------------------------------------------------------------------------------------------------- 9.1

@pytest.mark.parametrize("wrong, needle", [
    (lambda X_q, X_db, k: unit(X_db[np.argsort(-(X_q @ X_db.T), axis=1)[:, :k]].sum(axis=1)), "query itself"),
    (lambda X_q, X_db, k: X_q + X_db[np.argsort(-(X_q @ X_db.T), axis=1)[:, :k]].sum(axis=1), "normalise"),
    (lambda X_q, X_db, k: unit(X_q + X_db[np.argsort(X_q @ X_db.T, axis=1)[:, :k]].sum(axis=1)), "MOST similar"),
    (lambda X_q, X_db, k: unit(X_q + X_db[np.argsort(-(X_q @ X_db.T), axis=1)[:, :k + 1]].sum(axis=1)),
     "not k + 1"),
    (lambda X_q, X_db, k: rerank.alpha_query_expansion(X_q, X_db, k, 1.0), "alpha-QE"),
    (lambda X_q, X_db, k: X_q @ X_db.T, "similarities"),
    (lambda X_q, X_db, k: rerank.average_query_expansion(X_q, X_db, k)[:, :-1], "shape"),
])
def test_query_expansion_slips_are_named(wrong, needle):
    message = fails(ex09.check_average_query_expansion, wrong)
    assert needle in message, message


def test_query_expansion_that_changes_its_input_fails():
    def in_place(X_q, X_db, k):
        X_q += 0                                  # harmless, but then:
        X_q[:] = rerank.average_query_expansion(X_q, X_db, k)
        return X_q

    assert "changed" in fails(ex09.check_average_query_expansion, in_place).lower()


# --------------------------------------------------------------------------------------------------- 9.2

def _inv(d, power):
    out = np.zeros_like(d)
    np.power(d, -power, out=out, where=d > 0)
    return out


@pytest.mark.parametrize("wrong, needle", [
    (lambda A: _inv(A.sum(1), 1)[:, None] * A, "D^-1 A"),
    (lambda A: A * _inv(A.sum(1), 1)[None, :], "A D^-1"),
    (lambda A: _inv(A.sum(1), 1)[:, None] * A * _inv(A.sum(1), 1)[None, :], "SQUARE ROOT"),
    (lambda A: np.eye(len(A)) - _inv(A.sum(1), 0.5)[:, None] * A * _inv(A.sum(1), 0.5)[None, :], "Laplacian"),
    (lambda A: A / np.sqrt(np.outer(A.sum(1), A.sum(1))), "no edge"),                  # 0 / 0 = NaN
    (lambda A: affinity_dense(A)[:-1], "shape"),
])
def test_affinity_slips_are_named(wrong, needle):
    with np.errstate(divide="ignore", invalid="ignore"):
        message = fails(ex09.check_normalized_affinity, wrong)
    assert needle in message, message


# --------------------------------------------------------------------------------------------------- 9.3

def steepest_descent(matvec, b, tol, maxiter):
    x, r = np.zeros_like(b), b.copy()
    for _ in range(maxiter):
        if np.linalg.norm(r) <= tol * np.linalg.norm(b):
            break
        Mr = matvec(r)
        a = (r @ r) / (r @ Mr)
        x, r = x + a * r, r - a * Mr
    return x


def cg_without_limit(matvec, b, tol, maxiter):
    return cg_plain(matvec, b, tol, 10 * maxiter + 100)


def cg_wrong_sign(matvec, b, tol, maxiter):
    return -cg_plain(matvec, b, tol, maxiter)


@pytest.mark.parametrize("wrong, needle", [
    (steepest_descent, "steepest descent"),
    (cg_without_limit, "stop after maxiter"),
    (cg_wrong_sign, "signs"),
    (lambda matvec, b, tol, maxiter: np.append(cg_plain(matvec, b, tol, maxiter), 0.0), "shape"),
])
def test_conjugate_gradient_slips_are_named(wrong, needle):
    message = fails(ex09.check_conjugate_gradient, wrong)
    assert needle in message, message


def test_a_solver_that_divides_zero_by_zero_fails_on_b_zero():
    def no_guard(matvec, b, tol, maxiter):
        x, r = np.zeros_like(b), b.copy()
        p, rr = r.copy(), r @ r
        for _ in range(maxiter):             # no stopping test: b = 0 gives 0 / 0
            Mp = matvec(p)
            a = rr / (p @ Mp)
            x, r = x + a * p, r - a * Mp
            p, rr = r + (r @ r) / rr * p, r @ r
        return x

    with np.errstate(divide="ignore", invalid="ignore"):
        message = fails(ex09.check_conjugate_gradient, no_guard)
    assert "nan" in message.lower() or "matvec" in message, message
