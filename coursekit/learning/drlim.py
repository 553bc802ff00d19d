"""DrLIM: a 2-D map of small images learned from matching and non-matching pairs (notebook 08's first case).

    X, labels = digits()                                  # (1797, 64) float32, (1797,) int64
    net, history = train_embedding(X_train, y_train, contrastive_loss, epochs=8)
    Z = embed(net, X_test)                                # (N, 2) float32

Hadsell, Chopra and LeCun, "Dimensionality reduction by learning an
invariant mapping", CVPR 2006. A network ``G_W`` maps each input to a
point of the plane; the contrastive loss pulls the two points of a
matching pair together (``0.5 D^2``) and pushes those of a non-matching
pair apart until they are ``m`` apart (``0.5 max(0, m - D)^2``), where
``D = ||G_W(x_1) - G_W(x_2)||``. Nothing else shapes the map: no labels
are ever given to the network, only "same" or "not the same". The
paper draws its pairs from neighbours in pixel space (and from known
transformations); here they come from the digit labels, since the point
is to see the loss at work, and the pairs are the course's subject later
(:mod:`coursekit.learning.mining`).

The outputs are *not* L2-normalised (the paper's map is a free plane);
the CNN of :mod:`coursekit.learning.finetune` normalises its
descriptors, which bounds distances by 2 and is why its margin is 0.7.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["digits", "make_net", "pair_batch", "train_embedding", "embed"]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits (UCI; no download): ``X (1797, 64) float32`` in ``[0, 1]``
    (8 x 8 images, row by row) and ``labels (1797,) int64``, the digit."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def make_net(d_in: int = 64, d_out: int = 2, hidden: int = 128, seed: int = 0) -> nn.Module:
    """``G_W``: a two-layer perceptron ``(B, d_in) -> (B, d_out)``, weights drawn from ``seed``. (The paper's
    network for 32 x 32 digits is convolutional; for 8 x 8 images a perceptron does as well and runs at once.)"""
    with torch.random.fork_rng(devices=[]):          # seeded here, the caller's random state left alone
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, d_out))


def pair_batch(labels: np.ndarray, n: int, rng: np.random.Generator,
               positive_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random pairs ``(i (n,), j (n,), y (n,) float32)``, about ``positive_fraction`` of them matching
    (``y = 1``: same label, ``i != j``), the others not (``y = 0``: different labels). Vectorised: the partners
    are drawn by rejection, all at once, until every pair is of its kind."""
    labels = np.asarray(labels)
    N = len(labels)
    y = (rng.random(n) < positive_fraction).astype(np.float32)
    i = rng.integers(0, N, n)
    j = rng.integers(0, N, n)
    for _ in range(1000):
        bad = ((labels[i] == labels[j]) != (y == 1)) | (i == j)
        if not bad.any():
            return i, j, y
        j[bad] = rng.integers(0, N, int(bad.sum()))
    raise ValueError("could not draw pairs of both kinds: every image needs another of its label and of another")


def train_embedding(X: np.ndarray, labels: np.ndarray, loss_fn: Callable, epochs: int = 8, margin: float = 1.0,
                    pairs_per_epoch: int = 8000, batch_size: int = 128, lr: float = 3e-3, d_out: int = 2,
                    seed: int = 0, snapshots: np.ndarray | None = None,
                    progress: bool = True) -> tuple[nn.Module, list[dict]]:
    """Train ``G_W`` (:func:`make_net`) with ``loss_fn(x1, x2, y, margin)`` on random pairs: ``(net, history)``.

    ``X (N, d) float32``, ``labels (N,)`` (used only to say whether a pair
    matches). ``loss_fn`` takes ``x1, x2 (B, d_out)`` tensors, ``y (B,)``
    and ``margin``, and returns a scalar tensor (the student's contrastive
    loss, or :func:`coursekit.learning.losses.contrastive_loss`). Adam,
    ``epochs`` epochs of ``pairs_per_epoch`` fresh pairs drawn with
    ``numpy.random.default_rng((seed, epoch))``: the same seed gives the
    same map. ``history``: one dict per epoch plus one before training
    (``epoch`` 0): ``loss`` (mean over the epoch's batches; for epoch 0, of
    one epoch's pairs before any step) and, if ``snapshots (M, d)`` is
    given, ``Z`` (``(M, d_out)``, those inputs embedded after the epoch),
    for drawing the map as it forms.
    """
    X = np.asarray(X, np.float32)
    if X.ndim != 2 or len(X) != len(labels):
        raise ValueError(f"X must be (N, d) with one label per row; got X {X.shape} and {len(labels)} labels")
    net = make_net(X.shape[1], d_out, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    Xt = torch.from_numpy(X)
    history: list[dict] = []

    def record(epoch: int, loss: float) -> None:
        row = {"epoch": epoch, "loss": loss}
        if snapshots is not None:
            row["Z"] = embed(net, snapshots)
        history.append(row)

    with torch.no_grad():
        i, j, y = pair_batch(labels, pairs_per_epoch, np.random.default_rng((seed, 0)))
        record(0, float(loss_fn(net(Xt[i]), net(Xt[j]), torch.from_numpy(y), margin)))
    for epoch in tqdm(range(1, epochs + 1), desc="DrLIM", disable=not progress):
        i, j, y = pair_batch(labels, pairs_per_epoch, np.random.default_rng((seed, epoch)))
        total = 0.0
        for s in range(0, pairs_per_epoch, batch_size):
            b = slice(s, s + batch_size)
            opt.zero_grad()
            loss = loss_fn(net(Xt[i[b]]), net(Xt[j[b]]), torch.from_numpy(y[b]), margin)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y[b])
        record(epoch, total / pairs_per_epoch)
    return net.eval(), history


def embed(net: nn.Module, X: np.ndarray) -> np.ndarray:
    """``net`` on ``X (N, d)``, without gradients: ``(N, d_out) float32``."""
    with torch.no_grad():
        return net(torch.from_numpy(np.asarray(X, np.float32))).numpy()
