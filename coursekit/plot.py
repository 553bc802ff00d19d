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

__all__ = ["CORRECT", "WRONG", "JUNK", "QUERY", "MATCH", "result_kinds", "show_images", "show_ranking",
           "plot_pr_curves", "draw_keypoints", "draw_matches", "frame", "thumbnail"]

CORRECT, WRONG, JUNK, QUERY = "#2ca02c", "#d62728", "#9a9a9a", "#1f77b4"
_THUMB = 256  # longer side of thumbnails, pixels


def frame(ax, colour: str, width: float = 4.0) -> None:
    """Strip the axes' ticks and draw their border in ``colour`` (e.g. :data:`CORRECT`), ``width`` points wide."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def thumbnail(path: Path | str) -> tuple[np.ndarray, float]:
    """A small copy of the image, ``(h, w, 3) uint8`` with a longer side of at most 256 pixels, and the factor
    (a float) its coordinates were scaled by."""
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
        frame(ax, colours[k] if colours else "white", 3.0 if colours else 0.0)
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
    thumb, scale = thumbnail(ds.queries[q])
    axes[0].imshow(thumb)
    if ds.bbx is not None:
        x1, y1, x2, y2 = ds.bbx[q] * scale
        axes[0].add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=QUERY, linewidth=2))
    frame(axes[0], QUERY)
    axes[0].set_title("query", fontsize=9, color=QUERY)
    for r, (ax, i, kind) in enumerate(zip(axes[1:], ids, kinds), start=1):
        ax.imshow(load_image(ds.db[i], max_size=_THUMB))
        frame(ax, colour[kind])
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


# --------------------------------------------------------------------------
# Local features (notebook 02)
# --------------------------------------------------------------------------

#: Colour of matches drawn without a verdict (before geometric verification).
MATCH = "#ff7f0e"


def draw_keypoints(image: np.ndarray, kp: np.ndarray, ax=None, colour: str = "#ffdd00",
                   max_keypoints: int | None = None, title: str | None = None):
    """An image with its keypoints drawn as circles of their scale and a radius
    along their orientation. Returns the axes.

    ``image``: ``(H, W, 3)`` or ``(H, W)``. ``kp (K, 4)``: ``x, y, size, angle``
    as :func:`coursekit.local.sift` returns them (``size`` is the diameter,
    ``angle`` in degrees, clockwise on screen). ``max_keypoints``: draw only
    the largest ones.
    """
    from matplotlib.collections import EllipseCollection, LineCollection

    kp = np.asarray(kp, dtype=np.float64).reshape(-1, 4)
    if max_keypoints is not None and len(kp) > max_keypoints:
        kp = kp[np.argsort(-kp[:, 2], kind="stable")[:max_keypoints]]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6 * image.shape[0] / image.shape[1]))
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    x, y, r, a = kp[:, 0], kp[:, 1], kp[:, 2] / 2, np.deg2rad(kp[:, 3])
    ax.add_collection(EllipseCollection(2 * r, 2 * r, np.zeros_like(r), units="xy", offsets=kp[:, :2],
                                        offset_transform=ax.transData, facecolors="none", edgecolors=colour,
                                        linewidths=0.8))
    tips = np.stack([x + r * np.cos(a), y + r * np.sin(a)], axis=1)   # y points down: clockwise on screen
    ax.add_collection(LineCollection(np.stack([kp[:, :2], tips], axis=1), colors=colour, linewidths=0.8))
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _side_by_side(image1: np.ndarray, image2: np.ndarray, gap: int) -> tuple[np.ndarray, int]:
    """Two RGB images on one white canvas, tops aligned; and the x offset of the second."""
    as_rgb = lambda im: np.repeat(im[:, :, None], 3, axis=2) if im.ndim == 2 else im  # noqa: E731
    a, b = as_rgb(image1), as_rgb(image2)
    h = max(a.shape[0], b.shape[0])
    canvas = np.full((h, a.shape[1] + gap + b.shape[1], 3), 255, dtype=np.uint8)
    canvas[:a.shape[0], :a.shape[1]] = a
    canvas[:b.shape[0], a.shape[1] + gap:] = b
    return canvas, a.shape[1] + gap


def draw_matches(image1: np.ndarray, image2: np.ndarray, kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray,
                 inliers: np.ndarray | None = None, ax=None, max_lines: int | None = None, gap: int = 10,
                 title: str | None = None, seed: int = 0):
    """Two images side by side with a line for each match. Returns the axes.

    ``kp1 (K1, >=2)``, ``kp2 (K2, >=2)``: keypoints (``x, y`` first).
    ``matches (P, 2) int``: pairs ``(row of kp1, row of kp2)``. ``inliers
    (P,) bool``: when given, inliers are drawn in green (:data:`CORRECT`)
    and outliers in red (:data:`WRONG`), else every match in orange
    (:data:`MATCH`). ``max_lines``: draw a random subset of at most that
    many matches (``seed``), so that a figure with thousands stays readable.
    """
    from matplotlib.collections import LineCollection

    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    if inliers is not None:
        inliers = np.asarray(inliers, dtype=bool).reshape(-1)
        if len(inliers) != len(matches):
            raise ValueError(f"inliers has {len(inliers)} entries for {len(matches)} matches")
    keep = np.arange(len(matches))
    if max_lines is not None and len(matches) > max_lines:
        keep = np.sort(np.random.default_rng(seed).choice(len(matches), max_lines, replace=False))
    canvas, dx = _side_by_side(image1, image2, gap)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 10 * canvas.shape[0] / canvas.shape[1] + 0.4))
    ax.imshow(canvas)
    p1 = np.asarray(kp1, dtype=np.float64)[matches[keep, 0], :2]
    p2 = np.asarray(kp2, dtype=np.float64)[matches[keep, 1], :2] + [dx, 0]
    colours = [MATCH] * len(keep) if inliers is None else [CORRECT if v else WRONG for v in inliers[keep]]
    if inliers is not None:  # inliers on top
        order = np.argsort(inliers[keep], kind="stable")
        p1, p2, colours = p1[order], p2[order], [colours[i] for i in order]
    ax.add_collection(LineCollection(np.stack([p1, p2], axis=1), colors=colours, linewidths=0.9, alpha=0.85))
    ax.scatter(np.r_[p1[:, 0], p2[:, 0]], np.r_[p1[:, 1], p2[:, 1]], s=6, c=colours + colours, zorder=3)
    ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
    ax.set_ylim(canvas.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is None:
        title = (f"{len(matches)} matches" if inliers is None
                 else f"{int(inliers.sum())} inliers (green), {int((~inliers).sum())} outliers (red)")
    ax.set_title(title, fontsize=9)
    return ax
