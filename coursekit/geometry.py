"""Geometric verification: fitting a transformation to matches with RANSAC.

Descriptor matches between two images are a mix of right and wrong ones.
The right ones agree on where the object went: one transformation maps each
matched point of the first image onto its partner in the second. For a
planar object (a book cover, a painting, a facade), or any object seen from
far enough, that transformation is a **homography** ``H`` (3x3, 8 degrees
of freedom): ``(x', y', 1) ~ H (x, y, 1)``. An **affine** transformation
(6 degrees of freedom, last row ``0 0 1``) is its approximation when the
object is small or far: parallel lines stay parallel.

RANSAC (Fischler and Bolles, "Random sample consensus", CACM 1981) finds
the transformation that most matches agree with: fit it to a random minimal
sample (``s = 4`` matches for a homography, 3 for an affine map), count the
**inliers** (matches that it maps to within ``threshold`` pixels of their
partner), repeat, keep the best, refit it by least squares on its inliers.
If a fraction ``w`` of the matches is right, ``N = log(1 - p) / log(1 - w^s)``
samples find an all-inlier one with probability ``p``
(:func:`ransac_iterations`).

Here all the hypotheses of a batch are fitted and scored at once: a stack
of small linear systems solved by one ``np.linalg.solve`` call and an
``(n_hypotheses, n_matches)`` matrix of errors. Homographies are estimated
with the normalised DLT (Hartley and Zisserman, "Multiple View Geometry",
2nd ed. 2004, algorithm 4.2; Hartley, "In defense of the eight-point
algorithm", PAMI 1997): points are first moved so that their centroid is
the origin and their mean distance to it is sqrt(2).

The number of inliers is a similarity between two images that a chance
match almost never reaches: :func:`spatial_verification` re-ranks a short
list by it (Philbin, Chum, Isard, Sivic and Zisserman, "Object retrieval
with large vocabularies and fast spatial matching", CVPR 2007).

Points are ``(M, 2)`` arrays of ``x, y`` pixel coordinates; a
transformation is a ``(3, 3) float64`` matrix mapping ``src`` to ``dst``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MODELS", "apply_homography", "transfer_errors", "normalization", "fit_homography", "fit_affine",
    "box_corners", "plausible", "ransac_iterations", "RansacResult", "ransac", "spatial_verification",
]

#: Minimal sample size of each model.
MODELS = {"homography": 4, "affine": 3}


# --------------------------------------------------------------------------
# Points and transformations
# --------------------------------------------------------------------------

def _homogeneous(xy: np.ndarray) -> np.ndarray:
    """``(..., 2) -> (..., 3)``: a 1 appended to each point."""
    return np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1)


def apply_homography(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map points ``xy (M, 2)`` by ``H (3, 3)``, or by each of ``H (B, 3, 3)``:
    ``(M, 2)`` or ``(B, M, 2) float64``. Points mapped to infinity become inf or NaN."""
    xy = np.asarray(xy, dtype=np.float64)
    p = _homogeneous(xy) @ np.swapaxes(np.asarray(H, dtype=np.float64), -1, -2)  # (..., M, 3): rows are H @ (x, y, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[..., :2] / p[..., 2:]


def transfer_errors(H: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Transfer error ``|dst - H(src)|`` in pixels: ``(M,)`` for ``H (3, 3)``,
    ``(B, M)`` for ``H (B, 3, 3)``; ``inf`` where a point maps to infinity."""
    diff = apply_homography(H, src) - np.asarray(dst, dtype=np.float64)
    err = np.sqrt((diff ** 2).sum(axis=-1))
    return np.where(np.isnan(err), np.inf, err)


def normalization(xy: np.ndarray) -> np.ndarray:
    """Hartley's normalising similarity ``T (3, 3)``: ``T`` moves the points'
    centroid to the origin and scales their mean distance to it to sqrt(2)."""
    xy = np.asarray(xy, dtype=np.float64)
    c = xy.mean(axis=0)
    mean_dist = np.sqrt(((xy - c) ** 2).sum(axis=1)).mean()
    s = math.sqrt(2) / mean_dist if mean_dist > 0 else 1.0
    return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])


def _dlt_rows(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The DLT equations ``A h = 0`` of correspondences ``src -> dst``:
    ``(..., M, 2) -> (..., 2M, 9)``; ``h`` is ``H`` row by row (Hartley and Zisserman, eq. 4.3)."""
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zero, one = np.zeros_like(x), np.ones_like(x)
    # for each match: [-x -y -1  0  0  0  u*x  u*y  u]
    #                 [ 0  0  0 -x -y -1  v*x  v*y  v]
    r1 = np.stack([-x, -y, -one, zero, zero, zero, u * x, u * y, u], axis=-1)
    r2 = np.stack([zero, zero, zero, -x, -y, -one, v * x, v * y, v], axis=-1)
    return np.stack([r1, r2], axis=-2).reshape(src.shape[:-2] + (2 * src.shape[-2], 9))


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography ``src -> dst`` from ``M >= 4`` matches,
    normalised DLT (Hartley and Zisserman, algorithm 4.2): ``(3, 3) float64``
    with ``H[2, 2] = 1`` (or unit Frobenius norm when ``H[2, 2]`` is 0).

    Minimises the algebraic error ``|A h|`` with ``|h| = 1``: the right
    singular vector of ``A`` with the smallest singular value.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if len(src) < 4 or src.shape != dst.shape:
        raise ValueError(f"a homography needs at least 4 matches of equal shape, got {src.shape}, {dst.shape}")
    T1, T2 = normalization(src), normalization(dst)
    A = _dlt_rows(apply_homography(T1, src), apply_homography(T2, dst))
    h = np.linalg.svd(A)[2][-1]                       # argmin |A h| subject to |h| = 1
    H = np.linalg.inv(T2) @ h.reshape(3, 3) @ T1      # undo the normalisations
    return _scaled(H)


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine map ``src -> dst`` from ``M >= 3`` matches:
    ``(3, 3) float64`` with last row ``0 0 1``. Minimises the transfer error
    ``sum |dst - A(src)|^2`` (linear in the 6 unknowns)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if len(src) < 3 or src.shape != dst.shape:
        raise ValueError(f"an affine map needs at least 3 matches of equal shape, got {src.shape}, {dst.shape}")
    P = np.linalg.lstsq(_homogeneous(src), dst, rcond=None)[0]   # (3, 2): [x y 1] @ P = [x' y']
    return np.vstack([P.T, [0.0, 0.0, 1.0]])


def _scaled(H: np.ndarray) -> np.ndarray:
    """``H / H[..., 2, 2]`` where that is safely non-zero, else ``H / |H|``."""
    h33 = H[..., 2:, 2:]
    norm = np.sqrt((H ** 2).sum(axis=(-1, -2), keepdims=True))
    return H / np.where(np.abs(h33) > 1e-12 * norm, h33, norm)


# --------------------------------------------------------------------------
# Minimal samples, many at once
# --------------------------------------------------------------------------

def _signed_areas(p: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle ``triples (T, 3)`` of each
    sample ``p (B, s, 2)``: ``(B, T)``."""
    a, b, c = p[:, triples[:, 0]], p[:, triples[:, 1]], p[:, triples[:, 2]]
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


_TRIPLES = {4: np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]), 3: np.array([[0, 1, 2]])}


def _valid_samples(src: np.ndarray, dst: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``(B,) bool``: samples with no three collinear points, whose triangles
    keep their orientation from ``src`` to ``dst``.

    A camera looking at a plane never mirrors it, so a sample whose
    triangles flip cannot be all inliers; a collinear sample determines no
    transformation. Skipping both saves their scoring.
    """
    triples = _TRIPLES[src.shape[1]]
    a_src, a_dst = _signed_areas(src, triples), _signed_areas(dst, triples)
    return ((np.abs(a_src) > eps) & (np.abs(a_dst) > eps) & (a_src * a_dst > 0)).all(axis=1)


_RING = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1]])   # consecutive corners of a quadrilateral


def box_corners(xy: np.ndarray) -> np.ndarray:
    """The corners of the bounding box of points ``xy (M, 2)``, in order around it: ``(4, 2) float64``."""
    (x0, y0), (x1, y1) = np.min(xy, axis=0), np.max(xy, axis=0)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def plausible(H: np.ndarray, corners: np.ndarray, max_scale: float = 8.0) -> np.ndarray:
    """Transformations that a camera could give of a plane seen inside ``corners``: ``(B,) bool``.

    ``H (B, 3, 3)`` (or one ``(3, 3)``), ``corners (4, 2)``: a quadrilateral
    in order around it (:func:`box_corners` of the matched points). A
    homography fitted to wrong matches often folds, flips or collapses the
    region: it maps most query points onto a few database pixels, where
    dense keypoints then count as inliers. Kept: ``H`` maps no corner
    through infinity (``w = h31 x + h32 y + h33`` has one sign at all four),
    the image of the quadrilateral is convex with the same orientation (its
    four corner triangles keep their sign), and its area is the original's
    times ``s**2`` with ``1 / max_scale <= s <= max_scale``
    (Philbin et al., CVPR 2007, and Chum and Matas's LO-RANSAC work reject
    such degenerate models in the same spirit).
    """
    H = np.asarray(H, np.float64).reshape(-1, 3, 3)
    c = np.concatenate([corners, np.ones((4, 1))], axis=1)            # (4, 3) homogeneous
    mapped = c @ np.swapaxes(H, 1, 2)                                   # (B, 4, 3): for b: (H[b] @ c.T).T
    w = mapped[..., 2]
    same_side = (w > 0).all(axis=1) | (w < 0).all(axis=1)
    xy = mapped[..., :2] / np.where(np.abs(w) > 1e-12, w, 1e-12)[..., None]
    a_src = _signed_areas(np.asarray(corners, np.float64)[None], _RING)    # (1, 4)
    a_dst = _signed_areas(xy, _RING)                                        # (B, 4)
    convex = (a_dst * np.sign(a_src) > 0).all(axis=1)
    ratio = np.abs(a_dst.sum(axis=1) / a_src.sum())                        # area ratio (twice each area, summed)
    return same_side & convex & (ratio >= max_scale ** -2) & (ratio <= max_scale ** 2)


def _minimal_homographies(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The homography through each 4-match sample: ``(B, 4, 2) x 2 -> (B, 3, 3)``.

    With ``h33 = 1`` the 8 DLT equations of 4 matches are a square system
    ``A[:, :8] h = -A[:, 8]``, solved for all samples by one batched
    ``np.linalg.solve``, much faster than a batched SVD of the
    ``(B, 8, 9)`` stack. ``h33 = 0`` would mean the origin maps to infinity:
    in normalised coordinates the origin is the centroid of the matches,
    which a real homography between two views of an object keeps finite.
    """
    A = _dlt_rows(src, dst)                                        # (B, 8, 9)
    try:
        h = np.linalg.solve(A[:, :, :8], -A[:, :, 8:])[:, :, 0]    # for b in range(B): solve(A[b, :, :8], -A[b, :, 8])
    except np.linalg.LinAlgError:  # some h33 is exactly 0: the null vectors of the (B, 8, 9) stack instead
        return np.linalg.svd(A)[2][:, -1].reshape(-1, 3, 3)
    return np.concatenate([h, np.ones((len(h), 1))], axis=1).reshape(-1, 3, 3)


def _minimal_affines(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The affine map through each 3-match sample: ``(B, 3, 2) x 2 -> (B, 3, 3)``."""
    P = np.linalg.solve(_homogeneous(src), dst)                    # for b in range(B): [x y 1] @ P[b] = [x' y']
    bottom = np.broadcast_to([0.0, 0.0, 1.0], (len(P), 1, 3))
    return np.concatenate([np.swapaxes(P, 1, 2), bottom], axis=1)


# --------------------------------------------------------------------------
# RANSAC
# --------------------------------------------------------------------------

def ransac_iterations(w: float, s: int, p: float = 0.99) -> float:
    """Samples needed to draw one all-inlier sample of size ``s`` with
    probability ``p`` when a fraction ``w`` of the matches are inliers:
    ``N = log(1 - p) / log(1 - w^s)`` (Fischler and Bolles 1981). ``inf``
    when ``w = 0``, 1 when ``w = 1``."""
    if not 0 <= w <= 1 or not 0 < p < 1:
        raise ValueError(f"need 0 <= w <= 1 and 0 < p < 1, got w={w}, p={p}")
    good = w ** s
    if good >= 1:
        return 1.0
    if good <= 0:
        return math.inf
    return max(1.0, math.log(1 - p) / math.log1p(-good))


_CONTROLLER = []  # threadpoolctl's controller, made on first use


def _one_blas_thread():
    """A context in which BLAS and LAPACK use one thread.

    RANSAC makes thousands of tiny LAPACK calls; when OpenBLAS hands each
    to its threads and another process keeps the cores busy, every call
    waits for a thread to be scheduled, and RANSAC ran several times slower
    on a busy 2-core machine. One thread is never slower for these sizes.
    """
    try:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn
    except ImportError:
        return nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


@dataclass
class RansacResult:
    """What :func:`ransac` found.

    ``model``: the ``(3, 3) float64`` transformation ``src -> dst`` (``None``
    when there were too few matches or no valid sample). ``inliers (M,)
    bool``: the matches within ``threshold`` of ``model``. ``n_hypotheses``:
    the samples drawn.
    """

    model: np.ndarray | None
    inliers: np.ndarray
    n_hypotheses: int

    @property
    def n_inliers(self) -> int:
        return int(self.inliers.sum())


def ransac(
    src: np.ndarray,
    dst: np.ndarray,
    model: str = "homography",
    threshold: float = 5.0,
    max_iters: int = 1000,
    confidence: float = 0.99,
    batch: int = 128,
    refits: int = 3,
    rng: np.random.Generator | int | None = 0,
    max_scale: float | None = None,
) -> RansacResult:
    """Fit a homography or an affine map to matches ``src[i] -> dst[i]`` with RANSAC.

    ``src, dst (M, 2)``: matched points. ``threshold``: the largest
    transfer error ``|dst - H(src)|`` of an inlier, in pixels of ``dst``.
    Hypotheses are drawn in batches, all fitted and scored at once; batches
    grow from 16 to ``batch`` samples (an easy pair is done after the first
    16). After each batch the number of samples needed is updated from the
    best inlier ratio so far (:func:`ransac_iterations` with ``confidence``),
    never more than ``max_iters`` in all. The best hypothesis (most inliers;
    the first one drawn among equals) is then refitted by least squares on
    its inliers (:func:`fit_homography`, :func:`fit_affine`) and its inliers
    recounted, up to ``refits`` times while they do not decrease. ``rng``: a
    seed or a generator, so that a result can be reproduced. ``max_scale``:
    when given, only hypotheses and refits that are :func:`plausible` on the
    bounding box of ``src`` count (``None``: every model counts).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    src, dst = np.asarray(src, np.float64).reshape(-1, 2), np.asarray(dst, np.float64).reshape(-1, 2)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must hold the same number of points, got {src.shape} and {dst.shape}")
    s, M = MODELS[model], len(src)
    rng = np.random.default_rng(rng)
    if M < s:
        return RansacResult(None, np.zeros(M, bool), 0)
    with _one_blas_thread():
        return _ransac(src, dst, model, threshold, max_iters, confidence, batch, refits, rng, max_scale)


def _ransac(src, dst, model, threshold, max_iters, confidence, batch, refits, rng, max_scale=None) -> RansacResult:
    s, M = MODELS[model], len(src)
    corners = box_corners(src)
    T1, T2 = normalization(src), normalization(dst)
    src_n, dst_n = apply_homography(T1, src), apply_homography(T2, dst)
    T2_inv = np.linalg.inv(T2)

    best_count, best_model, drawn, needed = -1, None, 0, max_iters
    while drawn < min(needed, max_iters):
        B = min(batch, max(16, drawn), max_iters - drawn)     # 16, 16, 32, 64, ... up to batch
        # for b in range(B): sample[b] = s distinct random indices (the s smallest of M random keys)
        sample = np.argpartition(rng.random((B, M)), s - 1, axis=1)[:, :s] if M > s else np.tile(np.arange(s), (B, 1))
        drawn += B
        ok = _valid_samples(src_n[sample], dst_n[sample])
        if not ok.any():
            continue
        fit = _minimal_homographies if model == "homography" else _minimal_affines
        Hn = fit(src_n[sample[ok]], dst_n[sample[ok]])              # (b, 3, 3), normalised coordinates
        Hs = T2_inv @ Hn @ T1                                        # for each: back to pixels
        counts = (transfer_errors(Hs, src, dst) < threshold).sum(axis=1)   # (b,) inliers of each hypothesis
        if max_scale is not None:                                    # a degenerate model counts nothing
            counts = np.where(plausible(Hs, corners, max_scale), counts, -1)
        b = int(counts.argmax())
        if counts[b] > best_count:
            best_count, best_model = int(counts[b]), Hs[b]
            needed = ransac_iterations(best_count / M, s, confidence)
    if best_model is None:
        return RansacResult(None, np.zeros(M, bool), drawn)

    best_model = _scaled(best_model)
    inliers = transfer_errors(best_model, src, dst) < threshold
    refit = fit_homography if model == "homography" else fit_affine
    for _ in range(refits):
        if inliers.sum() < s:
            break
        candidate = refit(src[inliers], dst[inliers])
        if max_scale is not None and not plausible(candidate, corners, max_scale)[0]:
            break
        candidate_inliers = transfer_errors(candidate, src, dst) < threshold
        if candidate_inliers.sum() < inliers.sum():
            break
        converged = np.array_equal(candidate_inliers, inliers)
        best_model, inliers = candidate, candidate_inliers
        if converged:
            break
    return RansacResult(best_model, inliers, drawn)


# --------------------------------------------------------------------------
# Spatial verification of a short list
# --------------------------------------------------------------------------

def spatial_verification(
    shortlist: np.ndarray,
    kp_query: np.ndarray,
    kp_db: Sequence[np.ndarray],
    matches: Sequence[np.ndarray],
    model: str = "homography",
    threshold: float = 5.0,
    max_iters: int = 1000,
    min_matches: int = 5,
    rng: np.random.Generator | int | None = 0,
    max_scale: float | None = None,
    min_inliers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank a short list by the number of RANSAC inliers (Philbin et al., CVPR 2007).

    ``shortlist (k,) int``: database ids, best first. ``kp_query (K, 4)``:
    the query's keypoints (``x, y`` first). ``kp_db[r]``: the keypoints of
    ``shortlist[r]``; ``matches[r] (P, 2) int``: its matches ``(query row,
    database row)``. Images with fewer than ``min_matches`` matches get 0
    inliers without RANSAC (a homography always fits 4 matches exactly), as
    do those with fewer than ``min_inliers`` inliers. ``max_scale``: see
    :func:`ransac`.

    Returns ``reranked (k,) int64``, the short list most inliers first (ties
    keep the short list's order), and ``inliers (k,) int64`` in the order of
    the short list given.
    """
    shortlist = np.asarray(shortlist, dtype=np.int64)
    rng = np.random.default_rng(rng)
    inliers = np.zeros(len(shortlist), np.int64)
    for r in range(len(shortlist)):
        m = np.asarray(matches[r]).reshape(-1, 2)
        if len(m) < max(min_matches, MODELS[model]):
            continue
        src, dst = kp_query[m[:, 0], :2], kp_db[r][m[:, 1], :2]
        inliers[r] = ransac(src, dst, model, threshold, max_iters, rng=rng, max_scale=max_scale).n_inliers
    inliers[inliers < min_inliers] = 0                   # too few to tell an object from a coincidence
    order = np.argsort(-inliers, kind="stable")
    return shortlist[order], inliers
