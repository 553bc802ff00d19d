"""PCA and PCA-whitening of descriptors.

PCA (principal component analysis) finds the directions of largest
variance by an SVD of the centred data: ``X - m = U S V^T``; the rows of
``V^T`` are the directions, ``S^2 / (n - 1)`` the variances along them.
Projecting on the first ``d`` keeps most of the energy in fewer dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PCA", "fit_pca"]


@dataclass
class PCA:
    """A fitted projection: ``mean (D,)``, ``components (d, D)`` (rows are
    unit directions, by decreasing variance) and their ``variances (d,)``."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray

    def project(self, X: np.ndarray) -> np.ndarray:
        """``(N, D) -> (N, d) float32``: centre, then project."""
        return ((np.asarray(X, dtype=np.float32) - self.mean) @ self.components.T).astype(np.float32)


def fit_pca(X: np.ndarray, d: int) -> PCA:
    """PCA of ``X (N, D)`` keeping ``d <= min(N, D)`` components, by SVD."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or d > min(X.shape):
        raise ValueError(f"cannot keep d={d} components of data with shape {X.shape}")
    mean = X.mean(axis=0)
    _, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    return PCA(mean.astype(np.float32), Vt[:d].astype(np.float32), (S[:d] ** 2 / max(len(X) - 1, 1)).astype(np.float32))
