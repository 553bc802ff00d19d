"""Checks of notebook 01, "global colour descriptors".

=====  ==================================  =====================================================
id     the student writes                  reference
=====  ==================================  =====================================================
1.1    ``joint_histogram(image, bins)``    :func:`coursekit.color.joint_histogram` with
                                           ``bins=(b, b, b)``, ``space="rgb"``
1.2    ``chi2_distance(X, Y)``             :func:`coursekit.color.chi2_distance`
1.3    ``histogram_intersection(X, Y)``    :func:`coursekit.color.histogram_intersection`
=====  ==================================  =====================================================

What exactly the student writes:

1.1  ``image (H, W, 3) uint8`` RGB and an integer ``bins = b >= 1``: each
     channel has ``b`` equal bins over 0..255, so a value ``v`` is in bin
     ``v * b // 256``; a pixel whose R, G, B bins are ``(i, j, k)`` counts
     in the flat bin ``(i * b + j) * b + k`` (R slowest, as ``np.ravel`` of
     a ``(b, b, b)`` array). Return the ``(b**3,)`` float histogram divided
     by the number of pixels (it sums to 1).
1.2  ``X (Q, D)``, ``Y (N, D)`` non-negative floats -> ``(Q, N)``:
     ``chi2[q, n] = 1/2 sum_i (X[q, i] - Y[n, i])^2 / (X[q, i] + Y[n, i])``,
     a bin with ``X[q, i] + Y[n, i] = 0`` counting 0.
1.3  ``X (Q, D)`` image histograms, ``Y (N, D)`` model (database)
     histograms, non-negative, each row of ``Y`` with a positive sum ->
     ``(Q, N)``: ``sum_i min(X[q, i], Y[n, i]) / sum_i Y[n, i]`` (Swain and
     Ballard, IJCV 1991: normalised by the model).

Each check runs a small hand-made case first (the one the notebook
explains), then seeded random ones; inputs stay small, so a loop over
pixels or rows passes within the time limit.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .check import Checker, Exercise

__all__ = ["check_joint_histogram", "check_chi2_distance", "check_histogram_intersection",
           "LECTURE_IMAGE", "LECTURE_X", "LECTURE_Y"]

#: A 2 x 3 image: red, green, blue / white, black, dark red. With 2 bins per
#: channel: one pixel each in bins (1,0,0), (0,1,0), (0,0,1), (1,1,1) and two in (0,0,0).
LECTURE_IMAGE = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                          [[255, 255, 255], [0, 0, 0], [100, 0, 0]]], dtype=np.uint8)

#: Two histograms of 5 bins; the last bin is empty in both (0/0 counts 0).
#: chi2 = 1/2 (0.0625/0.75 + 0 + 0.0625/0.25 + 0.25/0.5 + 0) = 0.4167; intersection = 0.5.
LECTURE_X = np.array([[0.5, 0.25, 0.25, 0.0, 0.0]])
LECTURE_Y = np.array([[0.25, 0.25, 0.0, 0.5, 0.0]])

_SEED = 2025
_TOL = dict(atol=1e-6, rtol=1e-5)


def _exercise(ex_id: str) -> Exercise:
    from . import exercise  # late: the list in __init__ refers to the checks below
    return exercise(ex_id)


def _reference_joint_histogram(image: np.ndarray, bins: int) -> np.ndarray:
    from ..color import joint_histogram
    return joint_histogram(image, (bins, bins, bins), space="rgb")


def _random_image(rng: np.random.Generator) -> np.ndarray:
    h, w = (int(v) for v in rng.integers(1, 24, size=2))
    if rng.random() < 0.5:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # A few colours only, with the extreme values 0 and 255 among them.
    palette = rng.choice(np.array([0, 1, 63, 64, 127, 128, 170, 171, 254, 255], np.uint8), size=(5, 3))
    return palette[rng.integers(0, 5, (h, w))]


def check_joint_histogram(joint_histogram: Callable, *, quiet: bool = False) -> None:
    """Exercise 1.1: the RGB joint histogram with ``bins`` bins per channel, L1-normalised."""
    c = Checker(_exercise("1.1"), quiet=quiet)
    ref = _reference_joint_histogram
    for b in (2, 1, 3):
        c.case(joint_histogram, ref, image=LECTURE_IMAGE, bins=b, **_TOL)
    r, g = np.meshgrid(np.arange(0, 256, 5), np.arange(0, 256, 9), indexing="ij")
    ramp = np.stack([r, g, (r + 2 * g) % 256], axis=-1).astype(np.uint8)  # (52, 29, 3): R, G and B all vary
    for b in (4, 5):
        c.case(joint_histogram, ref, image=ramp, bins=b, **_TOL)
    rng = np.random.default_rng(_SEED)
    for b in (2, 3, 4, 6, 7, 8, 16):
        c.case(joint_histogram, ref, image=_random_image(rng), bins=b, **_TOL)
    return c.passed()


def _random_hists(rng: np.random.Generator, rows: int, d: int, normalised: bool) -> np.ndarray:
    """Non-negative rows with empty bins (some empty in every row); optionally L1-normalised."""
    h = rng.random((rows, d)) * (rng.random((rows, d)) < 0.6)
    h[:, rng.random(d) < 0.2] = 0.0
    h[np.arange(rows), rng.integers(0, d, rows)] += 0.5  # every row has something
    if normalised:
        return h / h.sum(axis=1, keepdims=True)
    return np.round(h * rng.integers(5, 50))  # counts


def check_chi2_distance(chi2_distance: Callable, *, quiet: bool = False) -> None:
    """Exercise 1.2: pairwise chi-squared distance with the factor 1/2, 0/0 counting 0."""
    from ..color import chi2_distance as ref
    c = Checker(_exercise("1.2"), quiet=quiet)
    c.case(chi2_distance, ref, X=LECTURE_X, Y=LECTURE_Y, **_TOL)            # 0.4167
    c.case(chi2_distance, ref, X=LECTURE_X, Y=np.vstack([LECTURE_Y, LECTURE_X]), **_TOL)  # a zero distance
    rng = np.random.default_rng(_SEED + 1)
    for q, n, d, normalised in ((3, 5, 8, True), (1, 4, 6, True), (4, 1, 10, False), (6, 7, 27, True),
                                (2, 3, 5, False), (5, 5, 64, True)):
        c.case(chi2_distance, ref, X=_random_hists(rng, q, d, normalised), Y=_random_hists(rng, n, d, normalised),
               **_TOL)
    return c.passed()


def check_histogram_intersection(histogram_intersection: Callable, *, quiet: bool = False) -> None:
    """Exercise 1.3: pairwise histogram intersection, normalised by the model (``Y``) histogram."""
    from ..color import histogram_intersection as ref
    c = Checker(_exercise("1.3"), quiet=quiet)
    c.case(histogram_intersection, ref, X=LECTURE_X, Y=LECTURE_Y, **_TOL)   # 0.5
    counts_x = np.array([[4.0, 2.0, 0.0, 2.0], [0.0, 1.0, 1.0, 0.0]])        # 8 and 2 pixels
    counts_y = np.array([[2.0, 2.0, 2.0, 0.0], [1.0, 0.0, 0.0, 3.0], [8.0, 0.0, 0.0, 0.0]])  # 6, 4 and 8 pixels
    c.case(histogram_intersection, ref, X=counts_x, Y=counts_y, **_TOL)
    rng = np.random.default_rng(_SEED + 2)
    for q, n, d, normalised in ((3, 5, 8, True), (1, 4, 6, False), (4, 1, 10, False), (6, 7, 27, True),
                                (2, 3, 5, False), (5, 5, 64, False)):
        c.case(histogram_intersection, ref, X=_random_hists(rng, q, d, normalised),
               Y=_random_hists(rng, n, d, normalised), **_TOL)
    return c.passed()
