"""Figures a person reads at a glance: ranked results, galleries, PR curves.

Colours mean the same thing in every notebook: a green border is a
correct result (a positive), red a wrong one, grey a junk image (ignored by
the evaluation), blue the query and its box.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .datasets import Dataset
from .images import load_image

__all__ = ["CORRECT", "WRONG", "JUNK", "QUERY", "result_kinds", "show_images", "show_ranking",
           "plot_pr_curves"]

CORRECT, WRONG, JUNK, QUERY = "#2ca02c", "#d62728", "#9a9a9a", "#1f77b4"
_THUMB = 256  # longer side of thumbnails, pixels


def _frame(ax, colour: str, width: float = 4.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def _thumbnail(path: Path | str) -> tuple[np.ndarray, float]:
    """A small copy of the image and the factor its coordinates were scaled by."""
    full_h, full_w = load_image(path).shape[:2]
    thumb = load_image(path, max_size=_THUMB)
    return thumb, thumb.shape[1] / full_w


def result_kinds(ds: Dataset, q: int, ids: Sequence[int]) -> list[str]:
    """``"correct"``, ``"junk"`` or ``"wrong"`` for each database index in ``ids``."""
    g = ds.gnd[q]
    pos, junk = set(g.positives.tolist()), set(g.junk.tolist())
    return ["correct" if i in pos else "junk" if i in junk else "wrong" for i in ids]


def show_images(paths: Sequence[Path | str], titles: Sequence[str] | None = None,
                colours: Sequence[str] | None = None, ncols: int = 8, size: float = 1.8):
    """A grid of images with optional titles and border colours; returns the figure."""
    n = len(paths)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.05), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(load_image(paths[k], max_size=_THUMB))
        _frame(ax, colours[k] if colours else "white", 3.0 if colours else 0.0)
        if titles:
            ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return fig


def show_ranking(ds: Dataset, q: int, ranking: Sequence[int], k: int = 8, size: float = 1.9, title: str | None = None):
    """The query (with its box) followed by its top ``k`` results, framed by
    correctness: green correct, red wrong, grey junk. Returns the figure.

    ``ranking``: database indices best first (a row of ``ranks``).
    """
    ids = list(ranking[:k])
    kinds = result_kinds(ds, q, ids)
    colour = {"correct": CORRECT, "wrong": WRONG, "junk": JUNK}
    fig, axes = plt.subplots(1, k + 1, figsize=(size * (k + 1), size * 1.15))
    thumb, scale = _thumbnail(ds.queries[q])
    axes[0].imshow(thumb)
    if ds.bbx is not None:
        x1, y1, x2, y2 = ds.bbx[q] * scale
        axes[0].add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=QUERY, linewidth=2))
    _frame(axes[0], QUERY)
    axes[0].set_title("query", fontsize=9, color=QUERY)
    for r, (ax, i, kind) in enumerate(zip(axes[1:], ids, kinds), start=1):
        ax.imshow(load_image(ds.db[i], max_size=_THUMB))
        _frame(ax, colour[kind])
        ax.set_title(f"{r}", fontsize=9, color=colour[kind])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], ax=None, title: str | None = None):
    """Precision-recall curves, one per entry ``label -> (recall, precision)``.

    Each curve is drawn as a step from recall 0, the way AP integrates it.
    Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    for label, (recall, precision) in curves.items():
        r = np.r_[0.0, recall]
        p = np.r_[precision[0] if len(precision) else 1.0, precision]
        ax.step(r, p, where="post", label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    if len(curves) > 1 or title is None:
        ax.legend(fontsize=8, loc="lower left")
    if title:
        ax.set_title(title)
    return ax
