"""Locality-sensitive hashing with random hyperplanes: vectors become short binary codes.

Draw ``n_bits`` random directions ``r_1 .. r_b``; the code of ``x`` has bit
``j`` set when ``r_j . (x - m) > 0`` (``m`` the training mean, so that the
hyperplanes cut through the data and not beside it). Two vectors at angle
``theta`` get different bit ``j`` with probability ``theta / pi``
(Charikar, "Similarity estimation techniques from rounding algorithms",
STOC 2002, after Goemans and Williamson's rounding), so the Hamming
distance between codes estimates the angle: near vectors have near
codes. A code of ``b`` bits is stored in ``b / 8`` bytes (``np.packbits``),
against ``4 D`` bytes for the vector itself.

The Hamming distance is the number of set bits of ``a XOR b``. Counting
them byte by byte with a 256-entry table of popcounts
(:func:`hamming_distances_lut`) is the textbook way; the index uses
``np.bitwise_count`` on 64-bit words, the CPU's popcount instruction,
which gives the same numbers an order of magnitude faster (one
instruction per 64-bit word instead of eight table look-ups).

Search (:class:`LSHIndex`):

- ``n_candidates=None``: rank the whole database by Hamming distance
  (summed over the tables) and return it; ``D`` is the Hamming distance.
  This is faiss's ``IndexLSH``.
- ``n_candidates=c``: each of ``n_tables`` independent tables proposes the
  ``c`` database vectors nearest to the query in Hamming distance; their
  union is re-ranked by the exact distance (the raw vectors are kept for
  that), and ``D`` is the squared Euclidean distance. Several tables
  miss fewer true neighbours than one, as in the original LSH scheme
  (Indyk and Motwani, STOC 1998; Gionis, Indyk and Motwani, VLDB 1999),
  where each table is a hash table and a query looks at its own bucket.
  Here a table is scanned in full (Hamming ranking) instead of bucketed:
  ``O(N)`` per query, but exact in Hamming distance and with no radius to
  tune, which suits a course-sized database.
"""

from __future__ import annotations

import numpy as np

from .base import CHUNK_FLOATS, Index, as_vectors, top_k

__all__ = ["LSHIndex", "random_hyperplanes", "lsh_codes", "hamming_distances", "hamming_distances_lut",
           "POPCOUNT"]

#: ``POPCOUNT[b]`` is the number of set bits of the byte ``b``: ``(256,) uint8``.
POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)


def random_hyperplanes(d: int, n_bits: int, seed: int = 0, orthogonal: bool = True) -> np.ndarray:
    """``n_bits`` random directions in ``R^d``, as the columns of ``(d, n_bits) float32``.

    Gaussian entries give directions uniform on the sphere (Charikar's
    scheme). With ``orthogonal=True`` they are spread as evenly as
    possible, as faiss's ``IndexLSH(rotate_data=True)`` does: for
    ``n_bits <= d`` the columns are made orthonormal (QR), so no bit repeats
    another's information; for ``n_bits > d`` the rows are, so the
    directions form a tight frame (no part of space gets more cuts than
    another).
    """
    R = np.random.default_rng(seed).standard_normal((d, n_bits))
    if orthogonal:
        R = np.linalg.qr(R)[0] if n_bits <= d else np.linalg.qr(R.T)[0].T
    return np.ascontiguousarray(R, dtype=np.float32)


def lsh_codes(X: np.ndarray, planes: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Binary codes of ``X (N, D)`` for the hyperplanes ``planes (D, b)``: ``(N, ceil(b / 8)) uint8``.

    Bit ``j`` of row ``i`` is ``(X[i] - mean) . planes[:, j] > 0``; bits are
    packed 8 to a byte, first bit in the highest place (``np.packbits``).
    """
    X = np.asarray(X, np.float32)
    if mean is not None:
        X = X - mean
    return np.packbits(X @ planes > 0, axis=1)


def hamming_distances_lut(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes by a popcount table: ``A (Q, n)``, ``B (N, n) uint8`` -> ``(Q, N) int32``.

    For every pair: XOR the bytes, look each result up in :data:`POPCOUNT`,
    add. One byte column at a time, so the temporary is ``(Q, N)``.
    """
    A, B = np.asarray(A, np.uint8), np.asarray(B, np.uint8)
    H = np.zeros((len(A), len(B)), np.int32)
    for j in range(A.shape[1]):
        # for q, n: H[q, n] += POPCOUNT[A[q, j] ^ B[n, j]]
        H += POPCOUNT[A[:, j, None] ^ B[None, :, j]]
    return H


def _words(codes: np.ndarray) -> np.ndarray:
    """Packed codes ``(N, n) uint8`` seen as ``(N, n / w)`` words of the widest unsigned type that divides ``n``."""
    n = codes.shape[1]
    for w, t in ((8, np.uint64), (4, np.uint32), (2, np.uint16)):
        if n % w == 0:
            return np.ascontiguousarray(codes).view(t)
    return np.ascontiguousarray(codes)


def hamming_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes ``A (Q, n)``, ``B (N, n)`` uint8 -> ``(Q, N) int32``.

    The same numbers as :func:`hamming_distances_lut`, with the XOR and
    the popcount (``np.bitwise_count``) done on whole 64-bit words.
    """
    a = _words(np.asarray(A, np.uint8))
    b_t = np.ascontiguousarray(_words(np.asarray(B, np.uint8)).T)
    return _hamming_words(a, b_t, out=np.zeros((len(a), b_t.shape[1]), np.int32))


class LSHIndex(Index):
    """Random-hyperplane LSH: ``n_tables`` tables of ``n_bits``-bit codes.

    Without ``n_candidates`` the index ranks by Hamming distance (summed
    over the tables) and keeps only codes: ``n_tables * n_bits / 8`` bytes
    per vector; ``D`` holds Hamming distances. With ``n_candidates=c``,
    each table proposes its ``c`` nearest codes and the union is re-ranked
    exactly: ``D`` holds squared distances, and the index also keeps the
    raw vectors (``4 D`` more bytes per vector). See the module docstring.

    ``orthogonal``: spread each table's hyperplanes evenly (see
    :func:`random_hyperplanes`). Hyperplanes are drawn from ``seed``.
    """

    def __init__(self, n_bits: int = 64, n_tables: int = 1, n_candidates: int | None = None,
                 orthogonal: bool = True, seed: int = 0):
        if n_bits < 1 or n_tables < 1:
            raise ValueError(f"n_bits and n_tables must be >= 1, got {n_bits} and {n_tables}")
        if n_candidates is not None and n_candidates < 1:
            raise ValueError(f"n_candidates must be None (Hamming ranking) or >= 1, got {n_candidates}")
        super().__init__(seed)
        self.n_bits, self.n_tables, self.n_candidates, self.orthogonal = n_bits, n_tables, n_candidates, orthogonal
        self.mean = None                 # (D,) float32
        self.planes = None               # (n_tables, D, n_bits) float32
        self.codes = None                # (n_tables, N, ceil(n_bits / 8)) uint8
        self.X = None                    # (N, D) float32, kept only to re-rank

    def _describe(self) -> str:
        return f"n_bits={self.n_bits}, n_tables={self.n_tables}, n_candidates={self.n_candidates}, seed={self.seed}"

    def _train(self, X: np.ndarray) -> None:
        self.mean = X.mean(axis=0)
        rng = np.random.default_rng(self.seed)
        seeds = rng.integers(2**31 - 1, size=self.n_tables)
        self.planes = np.stack([random_hyperplanes(X.shape[1], self.n_bits, int(s), self.orthogonal)
                                for s in seeds])

    def encode(self, X) -> np.ndarray:
        """Codes of ``X (N, D)`` in every table: ``(n_tables, N, ceil(n_bits / 8)) uint8``."""
        if self.planes is None:
            raise ValueError("LSHIndex is not trained: call index.train(X_train) first")
        X = as_vectors(X, "X", self.d)
        return np.stack([lsh_codes(X, P, self.mean) for P in self.planes])

    def _add(self, X: np.ndarray) -> None:
        codes = self.encode(X)
        self.codes = codes if self.codes is None else np.concatenate([self.codes, codes], axis=1)
        if self.n_candidates is not None:
            self.X = X.copy() if self.X is None else np.vstack([self.X, X])

    def _search(self, X_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q_words = [_words(c) for c in self.encode(X_q)]                       # per table (Q, W)
        db_words_t = [np.ascontiguousarray(_words(c).T) for c in self.codes]   # per table (W, N)
        N = self.ntotal
        chunk = max(1, CHUNK_FLOATS // (2 * N))
        D = np.empty((len(X_q), k), np.float32)
        I = np.empty((len(X_q), k), np.int64)
        for s in range(0, len(X_q), chunk):
            sl = slice(s, s + chunk)
            if self.n_candidates is None:                  # rank by the Hamming distance summed over the tables
                H = np.zeros((len(X_q[sl]), N), np.uint16 if self.n_tables * self.n_bits < 65536 else np.int32)
                for t in range(self.n_tables):
                    _hamming_words(q_words[t][sl], db_words_t[t], out=H)
                D[sl], I[sl] = top_k(H, k)
                continue
            c = min(self.n_candidates, N)
            # each table proposes its c nearest codes: cand (q, n_tables * c)
            cand = np.hstack([top_k(_hamming_words(q_words[t][sl], db_words_t[t]), c)[1]
                              for t in range(self.n_tables)])
            D[sl], I[sl] = _rerank(X_q[sl], self.X, cand, k)
        return D, I

    @property
    def memory_per_vector(self) -> float:
        code = self.n_tables * ((self.n_bits + 7) // 8)
        return float(code + (4 * self.d if self.n_candidates is not None and self.d else 0))


def _hamming_words(a: np.ndarray, b_t: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Hamming distances from codes ``a (Q, W)`` to codes ``b_t (W, N)`` (transposed), both seen as words.

    Returns ``(Q, N) uint16``, or adds into ``out``. One word column at a
    time, in blocks of queries, with reused buffers: for ``q, n``,
    ``H[q, n] = sum_j popcount(a[q, j] ^ b_t[j, n])``.
    """
    Q, W = a.shape
    N = b_t.shape[1]
    H = np.zeros((Q, N), np.uint16) if out is None else out
    rows = max(1, min(Q, (1 << 20) // max(N, 1)))
    x = np.empty((rows, N), a.dtype)
    c = np.empty((rows, N), np.uint8)
    for s in range(0, Q, rows):
        n = min(rows, Q - s)
        for j in range(W):
            np.bitwise_xor(a[s:s + n, j, None], b_t[j][None, :], out=x[:n])
            np.bitwise_count(x[:n], out=c[:n])
            H[s:s + n] += c[:n]
    return H


def _rerank(X_q: np.ndarray, X: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact re-ranking of candidate ids ``cand (Q, C)`` (duplicates allowed) -> the ``k`` best, ``(Q, k)``.

    Candidates seen twice are scored once: after sorting each row, a
    repeat of its left neighbour gets distance ``inf``.
    """
    cand = np.sort(cand, axis=1)
    dup = np.zeros(cand.shape, bool)
    dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
    # for q, j: d[q, j] = ||X[cand[q, j]] - X_q[q]||^2, in blocks of queries so X[cand] stays small
    d = np.empty(cand.shape, np.float32)
    rows = max(1, CHUNK_FLOATS // (cand.shape[1] * X.shape[1]))
    for s in range(0, len(cand), rows):
        diff = X[cand[s:s + rows]] - X_q[s:s + rows, None, :]
        d[s:s + rows] = np.einsum("qcd,qcd->qc", diff, diff)
    d[dup] = np.inf
    vals, cols = top_k(d, k)
    ids = np.take_along_axis(cand, np.maximum(cols, 0), axis=1)
    ids[cols < 0] = -1
    return vals, ids
