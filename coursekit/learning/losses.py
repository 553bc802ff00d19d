"""Losses for learning a descriptor from matching and non-matching images.

Both losses take descriptors that the caller has L2-normalised, as torch
tensors ``(B, D) float32``, and return a scalar tensor that autograd can
differentiate: the *mean* over the pairs (or triplets) of the batch.

========================  ====================================================  ==============================================
loss                      cost of one example                                    paper
========================  ====================================================  ==============================================
:func:`contrastive_loss`  ``0.5 d^2`` if matching, ``0.5 max(0, m - d)^2`` if    Hadsell, Chopra and LeCun, CVPR 2006 (DrLIM);
                          not, ``d = ||x1 - x2||``                               Radenovic, Tolias and Chum, ECCV 2016, TPAMI 2018
:func:`triplet_loss`      ``max(0, ||a - p||^2 - ||a - n||^2 + m)``              Schroff, Kalenichenko and Philbin, CVPR 2015
                                                                                 (FaceNet); Gordo et al., ECCV 2016
========================  ====================================================  ==============================================

On unit vectors ``||x1 - x2||^2 = 2 - 2 x1.x2``: distances lie in ``[0, 2]``
and a margin is a statement about cosine similarity (``d = 0.7`` is
``x1.x2 = 0.755``).

Sum or mean? The reference implementation of Radenovic et al.
(``cirtorch/layers/functional.py`` in filipradenovic/cnnimageretrieval-pytorch)
*sums* the costs of the pairs of one training tuple (a query, its positive
and five negatives) and accumulates the gradients of the tuples of a batch,
so its loss is a sum over every pair of the batch. We take the mean, so
that the loss's scale (and the step size of plain SGD) does not change
with the batch size or the number of negatives; with Adam, which their
code uses, a constant factor on the loss changes almost nothing. Multiply
by the number of pairs to get their value.
"""

from __future__ import annotations

import torch

__all__ = ["contrastive_loss", "triplet_loss"]


def _vectors(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor (B, D); got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (B, D); got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch, shape {tuple(x.shape)}: the mean of no pairs is undefined")
    return x


def contrastive_loss(x1: torch.Tensor, x2: torch.Tensor, y, margin: float = 0.7) -> torch.Tensor:
    """The contrastive loss of ``B`` pairs, averaged: a scalar tensor.

    ``x1 (B, D)`` and ``x2 (B, D)`` float32, L2-normalised; ``y (B,)`` is 1
    for a matching pair and 0 for a non-matching one (bool, int or float
    tensor, or a list). With ``d = ||x1 - x2||_2``, a matching pair costs
    ``0.5 d^2`` (it is pulled together however close it already is) and a
    non-matching pair ``0.5 max(0, margin - d)^2`` (it is pushed apart only
    while it is closer than ``margin``; beyond, it costs nothing and gives
    no gradient). Hadsell, Chopra and LeCun, "Dimensionality reduction by
    learning an invariant mapping", CVPR 2006, in the form of Radenovic,
    Tolias and Chum, "CNN image retrieval learns from BoW", ECCV 2016, and
    "Fine-tuning CNN image retrieval with no human annotation", TPAMI 2018
    (margin 0.7 to 0.85 on L2-normalised GeM vectors).

    The mean over the ``B`` pairs (the module docstring says why not their
    sum). The distance of a non-matching pair is computed as
    ``sqrt(max(d^2, 1e-12))``, so that two identical vectors cost
    ``0.5 (margin - 1e-6)^2`` and give a zero, not an undefined, gradient.
    """
    x1, x2 = _vectors("x1", x1), _vectors("x2", x2)
    if x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must have the same shape (B, D); got {tuple(x1.shape)} and {tuple(x2.shape)}")
    y = torch.as_tensor(y, device=x1.device)
    if y.shape != (x1.shape[0],):
        raise ValueError(f"y must have shape (B,) = ({x1.shape[0]},), one label per pair; got {tuple(y.shape)}")
    if ((y != 0) & (y != 1)).any():
        raise ValueError("y must be 1 (matching pair) or 0 (non-matching pair)")
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    y = y.to(x1.dtype)
    d2 = ((x1 - x2) ** 2).sum(dim=1)                      # (B,) squared distances
    d = torch.sqrt(torch.clamp(d2, min=1e-12))
    cost = 0.5 * y * d2 + 0.5 * (1.0 - y) * torch.clamp(margin - d, min=0.0) ** 2
    return cost.mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.1) -> torch.Tensor:
    """The triplet loss, averaged over every (anchor, positive, negative) triplet: a scalar tensor.

    ``anchor (B, D)`` and ``positive (B, D)`` float32, L2-normalised;
    ``negative (B, D)`` (one negative per anchor) or ``(B, K, D)`` (``K``
    per anchor, each with the anchor's one positive: the mean is over the
    ``B K`` triplets). A triplet costs
    ``max(0, ||a - p||^2 - ||a - n||^2 + margin)``, with squared Euclidean
    distances: zero once the negative is farther from the anchor than the
    positive by ``margin`` (in squared distance). Schroff, Kalenichenko and
    Philbin, "FaceNet: a unified embedding for face recognition and
    clustering", CVPR 2015; Gordo, Almazan, Revaud and Larlus, "Deep image
    retrieval: learning global representations for image search", ECCV 2016,
    use the same form on L2-normalised vectors (where ``||a - n||^2 - ||a - p||^2
    = 2 (a.p - a.n)``, so the margin asks ``a.p >= a.n + margin / 2``).
    """
    a, p = _vectors("anchor", anchor), _vectors("positive", positive)
    if a.shape != p.shape:
        raise ValueError(f"anchor and positive must have the same shape (B, D); got {tuple(a.shape)} "
                         f"and {tuple(p.shape)}")
    if not isinstance(negative, torch.Tensor):
        raise ValueError(f"negative must be a torch tensor (B, D) or (B, K, D); got {type(negative).__name__}")
    n = negative.unsqueeze(1) if negative.ndim == 2 else negative   # (B, K, D)
    if n.ndim != 3 or n.shape[0] != a.shape[0] or n.shape[2] != a.shape[1]:
        B, D = a.shape
        raise ValueError(f"negative must have shape ({B}, {D}) or ({B}, K, {D}) for an anchor of shape "
                         f"{tuple(a.shape)}; got {tuple(negative.shape)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    d_pos = ((a - p) ** 2).sum(dim=1)                        # (B,)
    d_neg = ((a.unsqueeze(1) - n) ** 2).sum(dim=2)            # (B, K)
    return torch.clamp(d_pos.unsqueeze(1) - d_neg + margin, min=0.0).mean()
