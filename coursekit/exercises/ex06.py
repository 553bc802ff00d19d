"""Checks of notebook 06, "Searching many vectors fast".

=====  ==============================  ===========================================================
id     the student writes              reference
=====  ==============================  ===========================================================
6.1    ``lsh_codes(X, planes)``        :func:`coursekit.ann.lsh_codes` with ``mean=None``
6.2    ``pq_encode(X, codebooks)``     :func:`coursekit.ann.pq_encode`
6.3    ``adc_table(q, codebooks)``     row 0 of :func:`coursekit.ann.adc_tables` of ``q[None]``
=====  ==============================  ===========================================================

Contracts
---------
6.1 ``X (N, D)`` float vectors, ``planes (D, b)`` float: column ``j`` is the
    normal of hyperplane ``j``. Returns the **packed** binary codes,
    ``(N, ceil(b / 8)) uint8``: bit ``j`` of row ``i`` is 1 when
    ``X[i] . planes[:, j] > 0`` (strictly: a vector *on* the hyperplane,
    dot product exactly 0, gets a 0), and bits are packed 8 to a byte with
    the first bit in the highest place, the padding bits of the last byte
    zero: ``np.packbits(bits, axis=1)``. The dtype must be ``uint8`` (the
    point of the codes is their ``b / 8`` bytes). Random-hyperplane
    hashing: Charikar, STOC 2002.

6.2 ``X (N, D)`` float vectors, ``codebooks (M, ksub, dsub)`` float with
    ``D = M * dsub`` and ``ksub <= 256``. Sub-quantizer ``m`` owns the
    *contiguous* block of coordinates ``m * dsub .. (m + 1) * dsub - 1``.
    Returns ``codes (N, M) uint8``: ``codes[n, m]`` is the index ``j`` of the
    centroid ``codebooks[m, j]`` nearest (Euclidean) to block ``m`` of
    ``X[n]``. The cases have no ties. Other integer dtypes are refused with
    a message: one byte per sub-quantizer is what PQ stores (Jegou, Douze
    and Schmid, "Product quantization for nearest neighbor search", TPAMI
    2011).

6.3 ``q (D,)`` one float query, ``codebooks (M, ksub, dsub)`` float as in
    6.2. Returns the ADC lookup table ``T (M, ksub)`` float:
    ``T[m, j] = ||q_m - codebooks[m, j]||^2``, the **squared** Euclidean
    distance from block ``m`` of the query to centroid ``j`` of
    sub-quantizer ``m`` (so that ``sum_m T[m, codes[n, m]]`` is the squared
    distance from ``q`` to the decoded vector ``n``). Any float dtype;
    tolerance ``1e-4`` absolute and relative.

Each check runs the small case the notebook works through first, then
seeded random ones, small enough for loops to pass within the time limit.
When a wrong answer matches a known slip (``>= 0`` for ``> 0``, bit order,
interleaved blocks, argmax, a square root...), the message names the slip.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .check import CheckFailed, Checker, Exercise, compare, diagnose

__all__ = ["check_lsh_codes", "check_pq_encode", "check_adc_table", "LECTURE_X", "LECTURE_PLANES",
           "lecture_pq"]

_SEED = 2026

#: Four 2-D points and three hyperplanes through the origin (their normals are the columns):
#: x (bit 0), y (bit 1) and the diagonal x = y, normal (1, -1) (bit 2). The point (0, 2) lies *on*
#: the first hyperplane (dot product 0): its bit 0 is 0. Bits in the highest places of one byte:
#: codes [[160], [64], [32], [224]], i.e. 101, 010, 001, 111 followed by five zeros.
LECTURE_X = np.array([[3.0, -1.0], [0.0, 2.0], [-2.0, -3.0], [1.0, 0.5]])
LECTURE_PLANES = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]])


def lecture_pq():
    """The notebook's small product quantizer: ``X (3, 4)`` and ``codebooks (2, 3, 2)``.

    Two sub-quantizers of three centroids each on 4-D vectors; the first
    owns coordinates 0-1, the second 2-3. The codes are ``[[0, 2], [2, 0],
    [1, 1]]``; vector 0, ``(0.2, -0.1, 4.8, 5.3)``, becomes the centroids
    ``(0, 0)`` and ``(5, 5)``.
    """
    X = np.array([[0.2, -0.1, 4.8, 5.3],
                  [3.9, 4.2, 0.3, 0.1],
                  [1.1, -0.6, 2.2, 1.9]])
    codebooks = np.array([[[0.0, 0.0], [1.0, -1.0], [4.0, 4.0]],
                          [[0.0, 0.0], [2.0, 2.0], [5.0, 5.0]]])
    return X, codebooks


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


# --------------------------------------------------------------------------- 6.1

def _bits(X: np.ndarray, planes: np.ndarray) -> np.ndarray:
    return X @ planes > 0


def _lsh_slips(X: np.ndarray, planes: np.ndarray) -> dict[str, np.ndarray]:
    P = X @ planes
    b = planes.shape[1]
    slips = {
        "a vector on a hyperplane (dot product exactly 0) gets bit 0: the test is X[i] . planes[:, j] > 0, "
        "not >= 0.": np.packbits(P >= 0, axis=1),
        "bit j is 1 on the positive side, X[i] . planes[:, j] > 0 (not < 0).": np.packbits(P < 0, axis=1),
        "the first bit goes in the highest place of the first byte (np.packbits' default order), not the "
        "lowest.": np.packbits(P > 0, axis=1, bitorder="little"),
        "bit j belongs to hyperplane j, planes[:, j]: keep the bits in the order of the columns (do not reverse "
        "them).": np.packbits((P > 0)[:, ::-1], axis=1),
    }
    if planes.shape[0] == b:
        slips["planes is (D, b), one hyperplane per column: the dot products are X @ planes, not "
              "X @ planes.T."] = np.packbits(X @ planes.T > 0, axis=1)
    return slips


def check_lsh_codes(lsh_codes: Callable, *, quiet: bool = False) -> None:
    """Exercise 6.1: packed random-hyperplane codes, ``(N, ceil(b / 8)) uint8``."""
    from ..ann import lsh_codes as ref

    c = Checker(_exercise("6.1"), quiet=quiet)

    def case(X, planes):
        expected = ref(X, planes)
        got, where, call = c.start(lsh_codes, X=X, planes=planes)
        N, b = len(X), planes.shape[1]
        if isinstance(got, np.ndarray) and got.shape == (N, b) and expected.shape != (N, b):
            raise CheckFailed(f"{where}: got {b} values per vector, one per bit: pack them 8 to a byte, "
                              f"np.packbits(bits, axis=1), shape {expected.shape}")
        if isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype != np.uint8:
            raise CheckFailed(f"{where}: expected dtype uint8 (one byte holds 8 bits; np.packbits returns "
                              f"uint8), got {got.dtype}")
        diagnose(where, got, expected.astype(np.float64), _lsh_slips(X, planes), dict(atol=0, rtol=0))
        compare(c.exercise, got, expected, call=call, dtype=np.uint8)
        c.count()

    case(LECTURE_X, LECTURE_PLANES)
    rng = np.random.default_rng(_SEED)
    case(rng.normal(size=(20, 8)), rng.normal(size=(8, 8)))            # D == b: a transposition runs, wrongly
    case(rng.normal(size=(15, 16)), rng.normal(size=(16, 12)))         # 12 bits: 2 bytes, 4 padding zeros
    case(rng.normal(size=(40, 32)), rng.normal(size=(32, 64)))         # 8 bytes
    # whole numbers: many dot products are exactly 0 (vectors on hyperplanes)
    case(rng.integers(-1, 2, size=(30, 6)).astype(np.float64), rng.integers(-1, 2, size=(6, 16)).astype(np.float64))
    case(rng.normal(size=(1, 5)), rng.normal(size=(5, 3)))              # one vector, 3 bits
    return c.passed()


# --------------------------------------------------------------------------- 6.2

def _nearest(X: np.ndarray, C: np.ndarray, far: bool = False) -> np.ndarray:
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    return np.argmax(d, axis=1) if far else np.argmin(d, axis=1)


def _encode_with(X: np.ndarray, codebooks: np.ndarray, block: Callable[[int], np.ndarray],
                 far: bool = False) -> np.ndarray:
    M = len(codebooks)
    return np.stack([_nearest(block(m), codebooks[m], far) for m in range(M)], axis=1)


def _pq_slips(X: np.ndarray, codebooks: np.ndarray) -> dict[str, np.ndarray]:
    M, ksub, dsub = codebooks.shape
    contiguous = lambda m: X[:, m * dsub:(m + 1) * dsub]
    full = codebooks.transpose(1, 0, 2).reshape(ksub, M * dsub)           # centroid j of every block, side by side
    slips = {
        "block m is the contiguous coordinates m * dsub .. (m + 1) * dsub - 1 (X[:, m*dsub:(m+1)*dsub]), "
        "not every M-th coordinate (X[:, m::M]).": _encode_with(X, codebooks, lambda m: X[:, m::M]),
        "take the nearest centroid (argmin of the distances), not the farthest (argmax).":
            _encode_with(X, codebooks, contiguous, far=True),
        "each block chooses its own centroid: codes[n, m] is the nearest of codebooks[m] to block m of X[n], "
        "not one index j for the whole vector.": np.repeat(_nearest(X, full)[:, None], M, axis=1),
        "sub-quantizer m encodes block m of the vector, not always the first block.":
            _encode_with(X, codebooks, lambda m: X[:, :dsub]),
    }
    return slips


def check_pq_encode(pq_encode: Callable, *, quiet: bool = False) -> None:
    """Exercise 6.2: PQ codes ``(N, M) uint8``, block by block."""
    from ..ann import pq_encode as ref

    c = Checker(_exercise("6.2"), quiet=quiet)

    def case(X, codebooks):
        expected = ref(X.astype(np.float32), codebooks.astype(np.float32)).astype(np.int64)
        got, where, call = c.start(pq_encode, X=X, codebooks=codebooks)
        if isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype.kind in "iu" \
                and got.dtype != np.uint8:
            raise CheckFailed(f"{where}: expected dtype uint8, got {got.dtype}: a code is one byte per "
                              f"sub-quantizer (ksub <= 256), that is the compression; use .astype(np.uint8)")
        diagnose(where, got, expected.astype(np.float64), _pq_slips(X, codebooks), dict(atol=0, rtol=0))
        compare(c.exercise, got, expected.astype(np.uint8), call=call, dtype=np.uint8)
        c.count()

    case(*lecture_pq())
    rng = np.random.default_rng(_SEED + 1)
    for N, M, ksub, dsub in ((50, 4, 16, 4), (30, 3, 256, 4), (25, 1, 32, 8), (20, 8, 4, 1), (40, 2, 64, 3)):
        codebooks = rng.normal(size=(M, ksub, dsub))
        X = codebooks[np.arange(M), rng.integers(0, ksub, (N, M))].reshape(N, M * dsub)  # near some centroid
        case(X + rng.normal(scale=0.3, size=X.shape), codebooks)
    return c.passed()


# --------------------------------------------------------------------------- 6.3

def _table(q: np.ndarray, codebooks: np.ndarray, block: Callable[[int], np.ndarray]) -> np.ndarray:
    """``T[m, j] = ||block(m) - codebooks[m, j]||^2`` in float64."""
    return np.stack([((block(m)[None, :] - codebooks[m]) ** 2).sum(-1) for m in range(len(codebooks))])


def _adc_slips(q: np.ndarray, codebooks: np.ndarray, expected: np.ndarray) -> dict[str, np.ndarray]:
    M, ksub, dsub = codebooks.shape
    contiguous = lambda m: q[m * dsub:(m + 1) * dsub]
    slips = {
        "the table holds squared distances ||q_m - c||^2: no square root (the squared distance adds up over "
        "the blocks, the distance does not).": np.sqrt(expected),
        "block m is the contiguous coordinates m * dsub .. (m + 1) * dsub - 1 (q[m*dsub:(m+1)*dsub]), not "
        "every M-th coordinate (q[m::M]).": _table(q, codebooks, lambda m: q[m::M]),
        "the table holds squared Euclidean distances (sum of squared differences), not sums of absolute "
        "differences.": np.stack([np.abs(contiguous(m)[None] - codebooks[m]).sum(-1) for m in range(M)]),
        "the table holds distances, not dot products q_m . c.":
            np.stack([codebooks[m] @ contiguous(m) for m in range(M)]),
        "sub-quantizer m compares block m of the query, not always the first block.":
            _table(q, codebooks, lambda m: q[:dsub]),
    }
    if M == ksub:
        slips["the table is (M, ksub): row m is sub-quantizer m, column j its centroid j (not transposed)."] = \
            expected.T
    return slips


def check_adc_table(adc_table: Callable, *, quiet: bool = False) -> None:
    """Exercise 6.3: the ADC lookup table of one query, ``(M, ksub)``."""
    from ..ann import adc_tables

    c = Checker(_exercise("6.3"), quiet=quiet)
    tol = dict(atol=1e-4, rtol=1e-4)

    def case(q, codebooks):
        expected = adc_tables(q[None], codebooks)[0].astype(np.float64)
        got, where, call = c.start(adc_table, q=q, codebooks=codebooks)
        if isinstance(got, np.ndarray) and got.shape == (1,) + expected.shape:
            raise CheckFailed(f"{where}: expected shape {expected.shape}, got shape {got.shape}: one query in, "
                              f"one (M, ksub) table out (drop the first axis)")
        diagnose(where, got, expected, _adc_slips(q, codebooks, expected), tol)
        compare(c.exercise, got, expected, call=call, **tol)
        c.count()

    X, codebooks = lecture_pq()
    case(X[0], codebooks)
    rng = np.random.default_rng(_SEED + 2)
    for M, ksub, dsub in ((4, 16, 4), (8, 8, 2), (8, 256, 4), (1, 32, 6), (3, 5, 3)):
        case(rng.normal(size=M * dsub), rng.normal(size=(M, ksub, dsub)))
    return c.passed()
