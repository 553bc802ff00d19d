"""The checks of notebook 06: each passes the reference and an independent
correct answer, reports the stub as not done, and fails plausible wrong answers
with a one-line message that names the slip where it can."""

import re

import numpy as np
import pytest

from coursekit import ann
from coursekit.exercises import EXERCISES, exercise
from coursekit.exercises import ex06
from checkhelpers import fails

CHECKS = [ex06.check_lsh_codes, ex06.check_pq_encode, ex06.check_adc_table]


def test_registry():
    assert [e.id for e in EXERCISES["06"]] == ["6.1", "6.2", "6.3"]
    assert [e.function for e in EXERCISES["06"]] == ["lsh_codes", "pq_encode", "adc_table"]
    assert [e.points for e in EXERCISES["06"]] == [2, 2, 2]
    assert exercise("6.1").check is ex06.check_lsh_codes
    assert exercise("6.3").check is ex06.check_adc_table


# the stub, a function that raises and one that returns None: tests/test_checks.py, for every exercise


@pytest.mark.parametrize("check", CHECKS)
def test_a_wrong_shape_fails(check):
    assert "expected shape" in fails(check, lambda *args: np.zeros((2, 3, 4), np.uint8))


# --------------------------------------------------------------------------- 6.1 LSH codes

def loop_lsh_codes(X, planes):
    """A student's loops: one bit at a time, bytes built by hand, first bit worth 128."""
    N, b = len(X), planes.shape[1]
    out = np.zeros((N, (b + 7) // 8), np.uint8)
    for i in range(N):
        for j in range(b):
            if float(np.dot(X[i], planes[:, j])) > 0:
                out[i, j // 8] |= 1 << (7 - j % 8)
    return out


def test_lsh_codes_passes(capsys):
    ex06.check_lsh_codes(lambda X, planes: ann.lsh_codes(X, planes))
    assert re.fullmatch(r"✔ Exercise 6\.1 \(LSH codes\): passed 6 cases\.", capsys.readouterr().out.strip())
    ex06.check_lsh_codes(loop_lsh_codes, quiet=True)


def test_lsh_lecture_codes_are_what_the_comment_says():
    assert ann.lsh_codes(ex06.LECTURE_X, ex06.LECTURE_PLANES).ravel().tolist() == [160, 64, 32, 224]
    assert (ex06.LECTURE_X @ ex06.LECTURE_PLANES == 0).sum() == 1            # one vector on a hyperplane


@pytest.mark.parametrize("wrong, hint", [
    (lambda X, P: np.packbits(X @ P >= 0, axis=1), "not >= 0"),
    (lambda X, P: np.packbits(X @ P < 0, axis=1), "not < 0"),
    (lambda X, P: np.packbits(X @ P > 0, axis=1, bitorder="little"), "highest place"),
    (lambda X, P: np.packbits((X @ P > 0)[:, ::-1], axis=1), "do not reverse"),
], ids=["ties", "sign", "bitorder", "reversed"])
def test_lsh_slips_are_named(wrong, hint):
    m = fails(ex06.check_lsh_codes, wrong)
    assert hint in m and m.startswith("Exercise 6.1 (LSH codes): <lambda>(X=")


def test_lsh_transposed_planes_fail():
    def transposed(X, planes):
        return np.packbits(X @ planes.T > 0, axis=1)
    # the lecture planes are (2, 3): the transposition raises there, with the input named
    m = fails(ex06.check_lsh_codes, transposed)
    assert "raised ValueError" in m
    # once the shapes allow it (D == b), the slip is named
    def transposed_when_square(X, planes):
        P = planes.T if planes.shape[0] == planes.shape[1] else planes
        return np.packbits(X @ P > 0, axis=1)
    assert "not X @ planes.T" in fails(ex06.check_lsh_codes, transposed_when_square)


def test_lsh_unpacked_and_wrong_dtype_fail():
    assert "pack them 8 to a byte" in fails(ex06.check_lsh_codes, lambda X, P: X @ P > 0)
    assert "pack them 8 to a byte" in fails(ex06.check_lsh_codes, lambda X, P: (X @ P > 0).astype(np.uint8))
    m = fails(ex06.check_lsh_codes, lambda X, P: np.packbits(X @ P > 0, axis=1).astype(np.int64))
    assert "expected dtype uint8" in m and "int64" in m
    assert "expected shape" in fails(ex06.check_lsh_codes, lambda X, P: np.packbits(X @ P > 0, axis=0))


def test_lsh_codes_with_a_mean_subtracted_fail():
    def centred(X, planes):
        return np.packbits((X - X.mean(0)) @ planes > 0, axis=1)
    assert "expected" in fails(ex06.check_lsh_codes, centred)


# --------------------------------------------------------------------------- 6.2 PQ encoding

def loop_pq_encode(X, codebooks):
    M, ksub, dsub = codebooks.shape
    codes = np.zeros((len(X), M), np.uint8)
    for n, x in enumerate(X):
        for m in range(M):
            d = [float(np.sum((x[m * dsub:(m + 1) * dsub] - c) ** 2)) for c in codebooks[m]]
            codes[n, m] = int(np.argmin(d))
    return codes


def pq_with(X, codebooks, block=None, far=False, dtype=np.uint8):
    M, ksub, dsub = codebooks.shape
    block = block or (lambda m: X[:, m * dsub:(m + 1) * dsub])
    codes = []
    for m in range(M):
        d = ((block(m)[:, None, :] - codebooks[m][None]) ** 2).sum(-1)
        codes.append(np.argmax(d, 1) if far else np.argmin(d, 1))
    return np.stack(codes, 1).astype(dtype)


def test_pq_encode_passes(capsys):
    ex06.check_pq_encode(ann.pq_encode)
    assert re.fullmatch(r"✔ Exercise 6\.2 \(PQ encoding\): passed 6 cases\.", capsys.readouterr().out.strip())
    ex06.check_pq_encode(loop_pq_encode, quiet=True)
    ex06.check_pq_encode(pq_with, quiet=True)


def test_pq_lecture_codes_are_what_the_docstring_says():
    X, codebooks = ex06.lecture_pq()
    assert ann.pq_encode(X, codebooks).tolist() == [[0, 2], [2, 0], [1, 1]]
    np.testing.assert_allclose(ann.pq_decode(ann.pq_encode(X, codebooks), codebooks)[0], [0, 0, 5, 5])


def whole_vector(X, codebooks):
    M, ksub, dsub = codebooks.shape
    full = np.concatenate([codebooks[m] for m in range(M)], axis=1)          # (ksub, D): j of every block
    j = np.argmin(((X[:, None, :] - full[None]) ** 2).sum(-1), axis=1)
    return np.repeat(j[:, None], M, axis=1).astype(np.uint8)


@pytest.mark.parametrize("wrong, hint", [
    (lambda X, C: pq_with(X, C, block=lambda m: X[:, m::C.shape[0]]), "not every M-th coordinate"),
    (lambda X, C: pq_with(X, C, far=True), "not the farthest"),
    (whole_vector, "not one index j for the whole vector"),
    (lambda X, C: pq_with(X, C, block=lambda m: X[:, :C.shape[2]]), "not always the first block"),
], ids=["strided", "argmax", "whole-vector", "first-block"])
def test_pq_slips_are_named(wrong, hint):
    m = fails(ex06.check_pq_encode, wrong)
    assert hint in m and m.startswith("Exercise 6.2 (PQ encoding): ")


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16])
def test_pq_codes_must_be_bytes(dtype):
    m = fails(ex06.check_pq_encode, lambda X, C: pq_with(X, C, dtype=dtype))
    assert "expected dtype uint8" in m and np.dtype(dtype).name in m


def test_pq_float_codes_and_off_by_one_blocks_fail():
    assert "expected dtype uint8" in fails(ex06.check_pq_encode, lambda X, C: pq_with(X, C, dtype=np.float64))

    def shifted(X, C):                                                   # blocks start one coordinate late
        dsub = C.shape[2]
        Xs = np.roll(X, -1, axis=1)
        return pq_with(Xs, C, block=lambda m: Xs[:, m * dsub:(m + 1) * dsub])
    assert "expected" in fails(ex06.check_pq_encode, shifted)

    def one_too_wide(X, C):
        dsub = C.shape[2]
        return pq_with(X, C, block=lambda m: X[:, m * dsub:(m + 1) * dsub + 1])
    assert "raised ValueError" in fails(ex06.check_pq_encode, one_too_wide)
    assert "expected shape" in fails(ex06.check_pq_encode, lambda X, C: pq_with(X, C).T)


# --------------------------------------------------------------------------- 6.3 the ADC table

def loop_adc_table(q, codebooks):
    M, ksub, dsub = codebooks.shape
    T = np.zeros((M, ksub))
    for m in range(M):
        for j in range(ksub):
            T[m, j] = sum((q[m * dsub + t] - codebooks[m, j, t]) ** 2 for t in range(dsub))
    return T


def table_with(q, codebooks, block=None, f=lambda diff: (diff ** 2).sum(-1)):
    M, ksub, dsub = codebooks.shape
    block = block or (lambda m: q[m * dsub:(m + 1) * dsub])
    return np.stack([f(block(m)[None] - codebooks[m]) for m in range(M)])


def test_adc_table_passes(capsys):
    ex06.check_adc_table(lambda q, c: ann.adc_tables(q[None], c)[0])
    assert re.fullmatch(r"✔ Exercise 6\.3 \(the ADC lookup table\): passed 6 cases\.",
                        capsys.readouterr().out.strip())
    ex06.check_adc_table(loop_adc_table, quiet=True)
    ex06.check_adc_table(table_with, quiet=True)
    ex06.check_adc_table(lambda q, c: table_with(q, c).astype(np.float32), quiet=True)


def test_adc_table_sums_to_the_distance_to_the_decoded_vector():
    X, codebooks = ex06.lecture_pq()
    codes = ann.pq_encode(X, codebooks)
    T = table_with(X[0], codebooks)
    decoded = ann.pq_decode(codes, codebooks)
    np.testing.assert_allclose(T[np.arange(2), codes[1]].sum(), ((X[0] - decoded[1]) ** 2).sum(), rtol=1e-6)


@pytest.mark.parametrize("wrong, hint", [
    (lambda q, c: np.sqrt(table_with(q, c)), "no square root"),
    (lambda q, c: table_with(q, c, block=lambda m: q[m::c.shape[0]]), "not every M-th coordinate"),
    (lambda q, c: table_with(q, c, f=lambda d: np.abs(d).sum(-1)), "not sums of absolute differences"),
    (lambda q, c: np.stack([c[m] @ q[m * c.shape[2]:(m + 1) * c.shape[2]] for m in range(len(c))]),
     "not dot products"),
    (lambda q, c: table_with(q, c, block=lambda m: q[:c.shape[2]]), "not always the first block"),
], ids=["sqrt", "strided", "l1", "dot", "first-block"])
def test_adc_slips_are_named(wrong, hint):
    m = fails(ex06.check_adc_table, wrong)
    assert hint in m and m.startswith("Exercise 6.3 (the ADC lookup table): <lambda>(q=")


def test_adc_transposed_and_batched_tables_fail():
    assert "expected shape (2, 3), got shape (3, 2)" in fails(ex06.check_adc_table, lambda q, c: table_with(q, c).T)

    def transposed_when_square(q, c):
        T = table_with(q, c)
        return T.T if T.shape[0] == T.shape[1] else T
    assert "not transposed" in fails(ex06.check_adc_table, transposed_when_square)
    assert "drop the first axis" in fails(ex06.check_adc_table, lambda q, c: table_with(q, c)[None])


def test_adc_not_squared_signed_difference_fails():
    assert "expected" in fails(ex06.check_adc_table, lambda q, c: table_with(q, c, f=lambda d: d.sum(-1)))
