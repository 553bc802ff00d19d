"""Global colour descriptors: the first retrieval method of the course.

A colour histogram counts how many pixels fall in each colour bin. It
ignores where the pixels are, so it is unchanged by rotation and robust to
viewpoint change of a rigid object, but it changes with lighting and says
nothing of shape (Swain and Ballard, "Color indexing", IJCV 1991).

Descriptors (one image ``(H, W, 3) uint8`` RGB -> one ``(D,) float32``
vector summing to 1):

- :func:`joint_histogram`: the 3-D histogram of colours, ``b0 * b1 * b2`` bins;
- :func:`marginal_histogram`: one 1-D histogram per channel, ``b0 + b1 + b2``
  bins (cheaper, but blind to which values occur *together*);
- :func:`spatial_pyramid_histogram`: joint histograms of the cells of a
  pyramid of grids, weighted and concatenated, which adds coarse layout
  (Lazebnik, Schmid and Ponce, CVPR 2006).

Comparisons, pairwise between ``X (Q, D)`` and ``Y (N, D)`` -> ``(Q, N)``:
:func:`l1_distance`, :func:`l2_distance`, :func:`chi2_distance`,
:func:`hellinger_distance` (smaller is closer) and
:func:`histogram_intersection` (larger is closer); :func:`similarities`
turns any of them into "larger is better" for ranking.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = [
    "bin_indices", "bin_colours", "joint_histogram", "marginal_histogram", "spatial_pyramid_histogram",
    "pyramid_weights", "hellinger_normalize", "l1_distance", "l2_distance", "chi2_distance",
    "hellinger_distance", "histogram_intersection", "MEASURES", "similarities",
]

# OpenCV's 8-bit HSV: hue in [0, 180), saturation and value in [0, 256).
_RANGES = {"hsv": (180, 256, 256), "rgb": (256, 256, 256)}

# Elements of one (q, n, D) block in the pairwise functions: 16 MB in float32.
_BLOCK = 1 << 22


# --------------------------------------------------------------------------- histograms

def _pixels(image: np.ndarray, space: str) -> np.ndarray:
    """The image's pixels in ``space``, ``(H, W, 3) uint8``; checks the input."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if space not in _RANGES:
        raise ValueError(f"space must be one of {sorted(_RANGES)}, got {space!r}")
    return cv2.cvtColor(image, cv2.COLOR_RGB2HSV) if space == "hsv" else image


def bin_indices(image: np.ndarray, bins: tuple[int, int, int] = (8, 8, 8), space: str = "hsv") -> np.ndarray:
    """The joint colour bin of every pixel: ``(H, W, 3) uint8`` -> ``(H, W) int64``.

    Channel ``c`` has ``bins[c]`` equal bins over its range ``R_c`` (256, or
    180 for OpenCV's hue): value ``v`` is in bin ``v * bins[c] // R_c``. Bin
    ``(i, j, k)`` has the flat index ``(i * b1 + j) * b2 + k``.
    """
    pixels = _pixels(image, space)
    b = np.asarray(bins, dtype=np.int64)
    if b.shape != (3,) or (b < 1).any():
        raise ValueError(f"bins must be three positive integers, got {bins!r}")
    q = pixels.astype(np.int64) * b // np.asarray(_RANGES[space])  # (H, W, 3) bin per channel
    return (q[..., 0] * b[1] + q[..., 1]) * b[2] + q[..., 2]


def bin_colours(bins: tuple[int, int, int] = (8, 8, 8), space: str = "hsv") -> np.ndarray:
    """The RGB colour at the centre of every joint bin: ``(b0 * b1 * b2, 3) float32`` in ``[0, 1]``.

    Row ``(i * b1 + j) * b2 + k`` is bin ``(i, j, k)`` (the layout of
    :func:`bin_indices`). For drawing: ``bin_colours(bins)[bin_indices(image,
    bins)]`` is the image as the histogram sees it, and the colours make a
    histogram's bars readable.
    """
    if space not in _RANGES:
        raise ValueError(f"space must be one of {sorted(_RANGES)}, got {space!r}")
    b = np.asarray(bins, dtype=np.int64)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in b], indexing="ij"), axis=-1).reshape(-1, 3)
    centres = ((grid + 0.5) * np.asarray(_RANGES[space]) / b).astype(np.uint8)[None]  # (1, B, 3)
    rgb = cv2.cvtColor(centres, cv2.COLOR_HSV2RGB) if space == "hsv" else centres
    return rgb[0].astype(np.float32) / 255.0


def joint_histogram(image: np.ndarray, bins: tuple[int, int, int] = (8, 8, 8), space: str = "hsv") -> np.ndarray:
    """Joint 3-D colour histogram of an image, L1-normalised.

    ``image``: ``(H, W, 3) uint8`` RGB. ``bins``: bins per channel.
    ``space``: ``"hsv"`` or ``"rgb"``. Returns ``(b0 * b1 * b2,) float32``
    summing to 1; bin ``(i, j, k)`` is at ``(i * b1 + j) * b2 + k`` (see
    :func:`bin_indices`).
    """
    flat = bin_indices(image, bins, space).ravel()
    hist = np.bincount(flat, minlength=int(np.prod(bins))).astype(np.float32)
    return hist / hist.sum()


def marginal_histogram(image: np.ndarray, bins: tuple[int, int, int] = (8, 8, 8), space: str = "hsv") -> np.ndarray:
    """The three 1-D channel histograms, concatenated: ``(b0 + b1 + b2,) float32``.

    Each channel's histogram sums to 1/3, so the vector sums to 1 like a
    joint histogram and the same distances apply. It has far fewer bins
    than the joint histogram, but it cannot tell a red-and-blue image from a
    magenta-and-black one: it keeps each channel's distribution, not which
    values occur together in a pixel.
    """
    pixels = _pixels(image, space).reshape(-1, 3).astype(np.int64)
    parts = []
    for c in range(3):
        q = pixels[:, c] * bins[c] // _RANGES[space][c]
        parts.append(np.bincount(q, minlength=bins[c]))
    hist = np.concatenate(parts).astype(np.float32)
    return hist / (3.0 * pixels.shape[0])


def pyramid_weights(levels: int) -> np.ndarray:
    """Level weights of the spatial pyramid match kernel, ``(levels + 1,) float64``.

    Lazebnik, Schmid and Ponce, "Beyond bags of features: spatial pyramid
    matching for recognizing natural scene categories", CVPR 2006, eq. (3):
    with levels ``l = 0..L``, ``w_0 = 1 / 2^L`` and ``w_l = 1 / 2^(L - l + 1)``
    for ``l >= 1``. Finer levels weigh more (a match in a small cell is
    stronger evidence); the weights sum to 1.
    """
    L = int(levels)
    if L < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    w = np.array([1.0 / 2 ** (L - l + 1) for l in range(L + 1)])
    w[0] = 1.0 / 2 ** L
    return w


def spatial_pyramid_histogram(image: np.ndarray, bins: tuple[int, int, int] = (4, 4, 4), levels: int = 2,
                              space: str = "hsv") -> np.ndarray:
    """Joint colour histograms over a spatial pyramid, weighted and concatenated.

    Level ``l = 0..L`` cuts the image into a ``2^l x 2^l`` grid (pixel
    ``(y, x)`` is in cell row ``y * 2^l // H``, column ``x * 2^l // W``) and
    takes the joint histogram (:func:`joint_histogram`'s bins) of each cell,
    in row-major cell order. Counts are divided by the number of pixels of
    the *whole* image, so each level sums to 1, and level ``l`` is multiplied
    by :func:`pyramid_weights` ``w_l`` (Lazebnik, Schmid and Ponce, CVPR
    2006): the histogram intersection of two such vectors is their pyramid
    match kernel, and the vector sums to 1.

    Returns ``(B * sum_l 4^l,) float32`` with ``B = b0 * b1 * b2``; level 0
    comes first and is ``w_0`` times the joint histogram.
    """
    idx = bin_indices(image, bins, space)  # (H, W)
    H, W = idx.shape
    B = int(np.prod(bins))
    rows, cols = np.arange(H)[:, None], np.arange(W)[None, :]
    parts = []
    for l, w in enumerate(pyramid_weights(levels)):
        g = 2 ** l
        cell = (rows * g // H) * g + cols * g // W  # (H, W) cell of each pixel, row-major
        counts = np.bincount((cell * B + idx).ravel(), minlength=g * g * B)
        parts.append(counts * (w / (H * W)))
    return np.concatenate(parts).astype(np.float32)


def hellinger_normalize(hists: np.ndarray) -> np.ndarray:
    """Square root of L1-normalised histograms: ``(N, D) -> (N, D) float32``.

    The dot product of two results is the Bhattacharyya coefficient
    ``sum_i sqrt(h_i g_i)``, i.e. the Hellinger kernel; each row has unit L2
    norm, so a dot product is a cosine similarity.
    """
    hists = np.asarray(hists, dtype=np.float32)
    total = hists.sum(axis=-1, keepdims=True)
    return np.sqrt(hists / np.maximum(total, 1e-12))


# --------------------------------------------------------------------------- pairwise comparisons

def _pair(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X (Q, D)`` and ``Y (N, D)`` as floating-point arrays of one dtype
    (float32 if both are float32 or narrower, else float64)."""
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"expected X (Q, D) and Y (N, D) with the same D, got {X.shape} and {Y.shape}")
    dtype = np.result_type(X.dtype, Y.dtype, np.float32)
    return X.astype(dtype, copy=False), Y.astype(dtype, copy=False)


def _pairwise_sum(X: np.ndarray, Y: np.ndarray, term: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``out[q, n] = sum_d term(X[q, d], Y[n, d])`` by broadcasting, ``(Q, N)``.

    Blocks of queries and database rows are chosen so that one
    ``(q, n, D)`` block holds about ``_BLOCK`` elements: memory stays
    bounded however large ``Q`` and ``N`` are.
    """
    Q, D = X.shape
    N = Y.shape[0]
    out = np.empty((Q, N), dtype=X.dtype)
    n_step = max(1, min(N, _BLOCK // max(D, 1)))
    q_step = max(1, _BLOCK // (n_step * max(D, 1)))
    for q0 in range(0, Q, q_step):
        x = X[q0:q0 + q_step, None, :]  # (q, 1, D)
        for n0 in range(0, N, n_step):
            y = Y[None, n0:n0 + n_step, :]  # (1, n, D)
            out[q0:q0 + q_step, n0:n0 + n_step] = term(x, y).sum(axis=-1)
    return out


def l1_distance(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``d(x, y) = sum_i |x_i - y_i|``, pairwise: ``(Q, D), (N, D) -> (Q, N)``.

    Between two L1-normalised histograms it lies in ``[0, 2]``.
    """
    X, Y = _pair(X, Y)
    return _pairwise_sum(X, Y, lambda x, y: np.abs(x - y))


def l2_distance(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``d(x, y) = sqrt(sum_i (x_i - y_i)^2)``, pairwise: ``(Q, D), (N, D) -> (Q, N)``.

    From ``||x||^2 + ||y||^2 - 2 x.y`` with one matrix product, computed in
    float64 so that near-identical vectors do not lose their distance to
    round-off; returned in the inputs' dtype.
    """
    X, Y = _pair(X, Y)
    x, y = X.astype(np.float64), Y.astype(np.float64)
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.sqrt(np.maximum(d2, 0.0)).astype(X.dtype)


def chi2_distance(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Chi-squared distance, pairwise: ``(Q, D), (N, D) -> (Q, N)``.

    ``chi2(x, y) = 1/2 sum_i (x_i - y_i)^2 / (x_i + y_i)``, a term with
    ``x_i + y_i = 0`` counting 0 (a bin empty in both says nothing). For
    non-negative inputs; between two L1-normalised histograms it lies in
    ``[0, 1]``. A difference in a bin holding few pixels counts more than
    the same difference in a crowded bin (Puzicha, Hofmann and Buhmann,
    CVPR 1997; Pele and Werman, ECCV 2010, on the chi-squared family).
    """
    X, Y = _pair(X, Y)

    def term(x, y):
        num, den = (x - y) ** 2, x + y
        return np.divide(num, den, out=np.zeros(np.broadcast_shapes(x.shape, y.shape), x.dtype), where=den > 0)

    return 0.5 * _pairwise_sum(X, Y, term)


def hellinger_distance(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Hellinger distance, pairwise: ``(Q, D), (N, D) -> (Q, N)``.

    ``H(x, y) = (1 / sqrt 2) || sqrt(x) - sqrt(y) ||_2`` for non-negative
    inputs; for L1-normalised histograms ``H^2 = 1 - sum_i sqrt(x_i y_i)``,
    one minus the Bhattacharyya coefficient, in ``[0, 1]``. Ranking by it is
    ranking by the dot product of :func:`hellinger_normalize`'d vectors: the
    Hellinger kernel, which Arandjelovic and Zisserman ("Three things
    everyone should know to improve object retrieval", CVPR 2012) brought
    to SIFT as RootSIFT.
    """
    X, Y = _pair(X, Y)
    return (l2_distance(np.sqrt(X), np.sqrt(Y)) / np.sqrt(2.0)).astype(X.dtype)


def histogram_intersection(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Normalised histogram intersection, pairwise: ``(Q, D), (N, D) -> (Q, N)``.

    Swain and Ballard, "Color indexing", IJCV 1991, eq. (1)-(2): for an
    image histogram ``I = X[q]`` and a model histogram ``M = Y[n]`` (the
    database image),

        H(I, M) = sum_j min(I_j, M_j) / sum_j M_j,

    the fraction of the model's pixels that find a pixel of the same colour
    in the image. A *similarity*: 1 when ``I`` covers ``M`` bin by bin. For
    non-negative inputs; a model with no pixels at all gets 0. For
    L1-normalised histograms it is ``sum_j min(I_j, M_j) = 1 - L1 / 2``.
    """
    X, Y = _pair(X, Y)
    inter = _pairwise_sum(X, Y, np.minimum)
    mass = Y.sum(axis=1)[None, :]
    return np.divide(inter, mass, out=np.zeros_like(inter), where=mass > 0)


#: The comparisons :func:`similarities` knows, in the order the notebook shows them.
MEASURES = ("l1", "l2", "chi2", "intersection", "hellinger")


def similarities(X: np.ndarray, Y: np.ndarray, measure: str = "hellinger") -> np.ndarray:
    """``(Q, D), (N, D) -> (Q, N)`` similarities for ranking: larger is better.

    ``measure`` is one of :data:`MEASURES`. Distances are negated;
    ``"intersection"`` is already a similarity.
    """
    if measure == "intersection":
        return histogram_intersection(X, Y)
    distances = {"l1": l1_distance, "l2": l2_distance, "chi2": chi2_distance, "hellinger": hellinger_distance}
    if measure not in distances:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    return -distances[measure](X, Y)
