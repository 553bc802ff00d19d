"""Global colour descriptors: the first retrieval method of the course.

A colour histogram counts how many pixels fall in each colour bin. It
ignores where the pixels are, so it is unchanged by rotation and robust to
viewpoint change of a rigid object, but it changes with lighting and says
nothing of shape (Swain and Ballard, "Color indexing", IJCV 1991).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["joint_histogram", "hellinger_normalize"]

# OpenCV's 8-bit HSV: hue in [0, 180), saturation and value in [0, 256).
_RANGES = {"hsv": (180, 256, 256), "rgb": (256, 256, 256)}


def joint_histogram(image: np.ndarray, bins: tuple[int, int, int] = (8, 8, 8), space: str = "hsv") -> np.ndarray:
    """Joint 3-D colour histogram of an image, L1-normalised.

    ``image``: ``(H, W, 3) uint8`` RGB. ``bins``: bins per channel.
    ``space``: ``"hsv"`` or ``"rgb"``. Returns ``(b0 * b1 * b2,) float32``
    summing to 1; bin ``(i, j, k)`` is at ``(i * b1 + j) * b2 + k``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if space not in _RANGES:
        raise ValueError(f"space must be one of {sorted(_RANGES)}, got {space!r}")
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2HSV) if space == "hsv" else image
    b = np.asarray(bins)
    q = pixels.reshape(-1, 3).astype(np.int64) * b // np.asarray(_RANGES[space])  # (P, 3) bin per channel
    flat = (q[:, 0] * b[1] + q[:, 1]) * b[2] + q[:, 2]
    hist = np.bincount(flat, minlength=int(b.prod())).astype(np.float32)
    return hist / hist.sum()


def hellinger_normalize(hists: np.ndarray) -> np.ndarray:
    """Square root of L1-normalised histograms: ``(N, D) -> (N, D) float32``.

    The dot product of two results is the Bhattacharyya coefficient
    ``sum_i sqrt(h_i g_i)``, i.e. the Hellinger kernel; each row has unit L2
    norm, so a dot product is a cosine similarity.
    """
    hists = np.asarray(hists, dtype=np.float32)
    total = hists.sum(axis=-1, keepdims=True)
    return np.sqrt(hists / np.maximum(total, 1e-12))
