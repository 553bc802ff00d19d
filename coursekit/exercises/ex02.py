"""Checks of notebook 02, "local features and geometric verification".

=====  ==================================================  ==========================================
id     the student writes                                  reference
=====  ==================================================  ==========================================
2.1    ``rootsift(desc)``                                  :func:`coursekit.local.rootsift`
2.2    ``ratio_test(d1, d2, ratio)``                       :func:`coursekit.local.ratio_test`
2.3    ``ransac_homography(src, dst, threshold,            :func:`coursekit.geometry.ransac`
       n_iters, seed)``
=====  ==================================================  ==========================================

Contracts
---------
2.1 ``desc (K, 128)`` float, non-negative -> ``(K, 128)`` float: each row
    divided by its sum (L1), then square-rooted; a row of zeros stays zeros.

2.2 ``d1 (M, D)``, ``d2 (N, D)`` float, ``N >= 2``; ``ratio`` in (0, 1).
    For each row ``i`` of ``d1``: ``j``, its nearest row of ``d2``, and the
    Euclidean distances ``dist1 <= dist2`` to the nearest and the second
    nearest. Returns the pairs ``(i, j)`` with ``dist1 < ratio * dist2`` as an
    ``(P, 2)`` integer array sorted by ``i`` (``(0, 2)`` when none passes).

2.3 ``src, dst (M, 2)`` float, ``threshold`` (pixels), ``n_iters``, ``seed``.
    Returns ``(H, inliers)``: ``H (3, 3)`` maps ``src`` to ``dst``
    (``dst ~ H @ (x, y, 1)``, any scale); ``inliers (M,)`` bool marks the
    matches with ``|dst - H(src)| < threshold``. ``H`` must be the
    least-squares homography refitted on all the inliers of the best
    hypothesis (the inliers then recounted with it), not the best minimal
    sample itself. RANSAC is random: the cases are built so that any correct
    implementation given ``n_iters`` (generous: 10 times what 99 %
    confidence needs) returns the same inliers and an ``H`` within 0.25 px of
    the truth; the synthetic matches have inlier noise of at most 1.5 px and
    outliers at least 20 px from where the true homography maps them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .check import CheckFailed, Checker, Exercise, describe

__all__ = ["check_rootsift", "check_ratio_test", "check_ransac_homography", "LECTURE_D1", "LECTURE_D2",
           "synthetic_matches"]

_SEED = 2025

#: The lecture's 2-D example for the ratio test: rows of d1 are matched to rows of d2.
LECTURE_D1 = np.array([[0.0, 0.0], [4.0, 4.0], [10.0, 0.0], [2.0, 1.5]])
LECTURE_D2 = np.array([[0.5, 0.0], [4.0, 5.0], [5.0, 4.0], [10.0, 3.0], [0.0, 3.0]])


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


def _sift_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 128) float32`` non-negative, sparse-ish, whole numbers up to 255, like OpenCV's SIFT."""
    d = rng.gamma(0.6, 30.0, size=(n, 128)) * (rng.random((n, 128)) < 0.7)
    return np.minimum(np.round(d), 255).astype(np.float32)


# --------------------------------------------------------------------------- 2.1

def check_rootsift(rootsift: Callable, *, quiet: bool = False) -> None:
    """Exercise 2.1: L1-normalise each descriptor, then take the square root."""
    from ..local import rootsift as ref

    c = Checker(_exercise("2.1"), quiet=quiet)
    tol = dict(atol=1e-5, rtol=1e-4)
    lecture = np.zeros((2, 128), np.float32)
    lecture[0, :4] = [1, 0, 3, 0]          # -> [0.5, 0, 0.866, 0, ...]
    lecture[1, :3] = [9, 9, 18]
    c.case(rootsift, ref, desc=lecture, **tol)
    rng = np.random.default_rng(_SEED)
    for n in (1, 5, 40):
        c.case(rootsift, ref, desc=_sift_like(rng, n), **tol)
    with_zero = _sift_like(rng, 6)
    with_zero[2] = 0                        # a zero descriptor stays zero, not NaN
    c.case(rootsift, ref, desc=with_zero, **tol)
    return c.passed()


# --------------------------------------------------------------------------- 2.2

def _ratio_case(rng: np.random.Generator, m: int, n: int, ratio: float, scale_rows: bool):
    """Descriptors ``d1 (m, 128)``, ``d2 (n, 128)``: some rows of d1 are noisy copies of rows
    of d2, others are new; no row's distance ratio is within 2 % of ``ratio``."""
    while True:
        d2 = _sift_like(rng, n)
        if scale_rows:  # descriptors of different lengths: the nearest is not the largest dot product
            d2 *= rng.uniform(0.3, 2.0, size=(n, 1)).astype(np.float32)
        d1 = _sift_like(rng, m)
        copies = rng.random(m) < 0.6
        src = rng.integers(0, n, size=m)
        noise = rng.normal(0, rng.uniform(5, 40, size=(m, 1)), size=(m, 128))
        d1[copies] = np.maximum(d2[src[copies]] + noise[copies], 0).astype(np.float32)
        dist = np.sqrt(((d1[:, None, :].astype(np.float64) - d2[None, :, :]) ** 2).sum(-1))
        two = np.sort(dist, axis=1)[:, :2]
        if np.all(np.abs(two[:, 0] / two[:, 1] - ratio) > 0.02):
            return d1, d2


def check_ratio_test(ratio_test: Callable, *, quiet: bool = False) -> None:
    """Exercise 2.2: nearest-neighbour matches that pass Lowe's ratio test, ``(P, 2)`` pairs sorted by ``i``."""
    from ..local import ratio_test as ref

    c = Checker(_exercise("2.2"), quiet=quiet)
    c.case(ratio_test, ref, d1=LECTURE_D1, d2=LECTURE_D2, ratio=0.8)     # [[0 0] [2 3]]: row 1 is ambiguous
    c.case(ratio_test, ref, d1=LECTURE_D1, d2=LECTURE_D2, ratio=0.9)     # [[0 0] [2 3] [3 0]]
    rng = np.random.default_rng(_SEED + 1)
    for m, n, ratio, scaled in ((10, 20, 0.8, False), (30, 50, 0.8, True), (25, 40, 0.6, False),
                                (25, 40, 0.9, True), (12, 2, 0.8, False)):
        d1, d2 = _ratio_case(rng, m, n, ratio, scaled)
        c.case(ratio_test, ref, d1=d1, d2=d2, ratio=ratio)
    d1, d2 = _ratio_case(rng, 8, 30, 0.05, False)
    c.case(ratio_test, ref, d1=d1, d2=d2, ratio=0.05)                   # nothing passes: shape (0, 2)
    return c.passed()


# --------------------------------------------------------------------------- 2.3

def synthetic_matches(rng: np.random.Generator, n: int, outlier_fraction: float, noise: float = 0.5,
                      size: tuple[int, int] = (640, 480)):
    """Matches ``src -> dst (n, 2)`` under a random homography ``H (3, 3)``, and ``is_inlier (n,) bool``.

    Inliers: ``dst = H(src)`` plus Gaussian noise of ``noise`` px per
    coordinate, truncated at 1.5 px in length. Outliers: uniform in the
    image, at least 20 px from ``H(src)``.
    """
    from ..geometry import apply_homography, fit_homography

    w, h = size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    H = fit_homography(corners, corners + rng.uniform(-90, 90, (4, 2)) + rng.uniform(-40, 40, 2))
    src = rng.uniform([0, 0], [w, h], (n, 2))
    mapped = apply_homography(H, src)
    step = rng.normal(0, noise, (n, 2))
    length = np.linalg.norm(step, axis=1, keepdims=True)
    dst = mapped + step * np.minimum(1.0, 1.5 / np.maximum(length, 1e-12))
    is_inlier = np.ones(n, bool)
    is_inlier[rng.permutation(n)[:round(outlier_fraction * n)]] = False
    for i in np.flatnonzero(~is_inlier):
        while True:
            p = rng.uniform([0, 0], [w, h])
            if np.linalg.norm(p - mapped[i]) > 20:
                dst[i] = p
                break
    return src, dst, H, is_inlier


def _as_result(label: str, call: str, result, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The student's ``(H, inliers)``, checked for shape and type."""
    if result is None:
        raise CheckFailed(f"{label}: {call} returned None — did you forget `return H, inliers`?")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"{label}: {call} should return a pair (H, inliers), got {describe(result)}")
    H, inliers = (np.asarray(v) for v in result)
    if H.shape != (3, 3) or H.dtype.kind not in "fiu":
        raise CheckFailed(f"{label}: {call}: H should be a (3, 3) float array, got shape {H.shape}, {H.dtype}")
    if not np.isfinite(H).all():
        raise CheckFailed(f"{label}: {call}: H holds inf or nan")
    if inliers.shape != (n,) or inliers.dtype != bool:
        raise CheckFailed(f"{label}: {call}: inliers should be a ({n},) bool array, "
                          f"got shape {inliers.shape}, {inliers.dtype}")
    return H.astype(np.float64), inliers


def check_ransac_homography(ransac_homography: Callable, *, quiet: bool = False) -> None:
    """Exercise 2.3: RANSAC for a homography, refitted on its inliers; ``(H, inliers)``."""
    from ..geometry import apply_homography, ransac_iterations, transfer_errors

    ex = _exercise("2.3")
    c = Checker(ex, quiet=quiet)
    name = getattr(ransac_homography, "__name__", ex.function)
    rng = np.random.default_rng(_SEED + 2)
    threshold = 2.0
    for n, outliers in ((60, 0.0), (300, 0.5), (300, 0.3), (500, 0.7)):
        src, dst, H_true, truth = synthetic_matches(rng, n, outliers)
        n_iters = max(200, int(10 * ransac_iterations(1 - outliers, 4, 0.99)))
        args = dict(src=src, dst=dst, threshold=threshold, n_iters=n_iters, seed=int(rng.integers(1000)))
        call = (f"{name}(src, dst, threshold={threshold:g}, n_iters={n_iters}, seed={args['seed']}) "
                f"on {n} matches ({truth.sum()} inliers)")
        H, inliers = _as_result(ex.label, call, c.call(ransac_homography, **args), n)
        where = f"{ex.label}: {call}"

        truth_err = transfer_errors(H, src[truth], apply_homography(H_true, src[truth])).mean()
        if truth_err > 0.25:
            back = transfer_errors(H, dst[truth], src[truth]).mean()   # does H map dst onto src?
            if back < 2.0:
                raise CheckFailed(f"{where}: your H maps dst to src; it should map src to dst")
            raise CheckFailed(
                f"{where}: your H maps the true inliers {truth_err:.3g} px away from where the true homography "
                f"maps them (expected under 0.25 px). Refit H by least squares on all the inliers of the best "
                f"hypothesis.")
        if not np.array_equal(inliers, truth):
            missed, extra = int((truth & ~inliers).sum()), int((~truth & inliers).sum())
            raise CheckFailed(
                f"{where}: expected {truth.sum()} inliers, got {inliers.sum()}: {missed} true inliers missed, "
                f"{extra} outliers counted as inliers. An inlier is a match with |dst - H(src)| < threshold "
                f"(a distance in pixels, not squared).")
        c.count()
    return c.passed()
