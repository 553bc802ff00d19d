"""Matching pairs without labels: BoW retrieval and spatial verification over unlabelled images (notebook 08).

    found = verified_pairs(ds)                   # every training image against its 20 BoW neighbours
    pseudo = pseudo_labels(len(ds.train), found.pairs)   # (T,) int64: connected components
    pair_quality(found.pairs, ds.train_labels, pseudo)   # against the true labels, where there are some

Fine-tuning (:mod:`coursekit.learning.finetune`) needs matching pairs.
Labels give them, when a person has written them; Radenovic, Tolias and
Chum ("CNN image retrieval learns from BoW: unsupervised fine-tuning with
hard examples", ECCV 2016; "Fine-tuning CNN image retrieval with no human
annotation", TPAMI 2018) found them with no annotation at all, with the
older pipeline of notebooks 02 and 03: every image of a large unlabelled
collection is a query of bag-of-words retrieval, its short list is
spatially verified, and the images that a geometric transformation links
are grouped, then reconstructed in 3D by structure from motion; two
images seeing enough common 3D points are a matching pair. A geometric
check verifies what a CNN cannot yet see: that two images share a rigid
piece of scene. Whether that piece is the object one means is another
matter: on landmark photographs it is the landmark; on the embedded set,
whose images are rendered on crops of a few background photographs, it
is most often the background (see :func:`verified_pairs`).

Here the collection is the dataset's training split, with its labels
ignored: :func:`verified_pairs` retrieves, for each image, its ``k`` most
similar other images by tf-idf over the course's visual vocabulary
(:func:`coursekit.bow.dataset_vocabulary`, learned on the training split,
never on test images), fits a homography to their ratio-test matches by
RANSAC (:func:`coursekit.geometry.spatial_verification`) and keeps the
pairs with enough inliers. :func:`pseudo_labels` turns the pairs into
labels (the connected components of the graph they make), which
:func:`~coursekit.learning.finetune.finetune` takes in place of the
true ones; :func:`pair_quality` measures them against the true labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

__all__ = ["MIN_INLIERS", "VerifiedPairs", "verified_pairs", "pseudo_labels", "pair_quality"]

#: Default least number of RANSAC inliers of a kept pair (fewer let wrong pairs chain components: see verified_pairs).
MIN_INLIERS = 12

_SPLITS = ("train", "db")
_ROWS = 1024          # images scored at once against the whole split: (rows, N) float32 similarities


@dataclass
class VerifiedPairs:
    """Pairs of images of one split that BoW retrieval proposed and RANSAC verified.

    ``pairs (M, 2) int64``: rows ``(i, j)``, ``i < j``, indices into the
    split, sorted; each unordered pair once. ``inliers (M,) int64``: RANSAC
    inliers of the pair; ``matches (M,) int64``: its tentative
    (ratio-test) correspondences; ``scores (M,) float32``: its tf-idf
    cosine. ``n_images``: images in the split. ``min_inliers``: the
    threshold that made this set (every row has at least that many
    inliers). ``params``: the parameters that produced the candidates.
    ``cached_seconds``: the seconds the disk caches saved in this call:
    the pairs' (their whole computation, as it ran) plus the
    vocabulary's, as :func:`coursekit.cache.cached_arrays` reports them.
    """

    pairs: np.ndarray
    inliers: np.ndarray
    matches: np.ndarray
    scores: np.ndarray
    n_images: int
    min_inliers: int
    params: dict = field(default_factory=dict)
    cached_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.pairs)

    def above(self, min_inliers: int) -> VerifiedPairs:
        """The pairs with at least ``min_inliers`` inliers (no more than this set holds: with
        ``min_inliers`` below :attr:`min_inliers`, the same pairs)."""
        keep = self.inliers >= min_inliers
        return replace(self, pairs=self.pairs[keep], inliers=self.inliers[keep], matches=self.matches[keep],
                       scores=self.scores[keep], min_inliers=max(int(min_inliers), self.min_inliers))


def _split_paths(ds, split: str) -> list:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}; got {split!r}")
    paths = ds.train if split == "train" else ds.db
    if len(paths) < 2:
        raise ValueError(f"the {split!r} split of {ds.name!r} has {len(paths)} images: no pairs to find")
    return paths


def _shortlists(counts: sp.csr_matrix, k: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar other images of every image, by tf-idf cosine, as unordered candidate pairs:
    ``(C, 2) int64`` rows ``i < j`` (sorted, unique) and their cosines ``(C,) float32``. Pairs whose images
    share no weighted word (cosine 0) are left out."""
    from .. import bow

    index = bow.InvertedFile.build(counts, alpha)
    q = index.query_vectors(counts)
    n = counts.shape[0]
    k = min(k, n - 1)
    rows, cols, sims = [], [], []
    for s in range(0, n, _ROWS):                    # chunks of rows: (chunk, N) scores in memory
        S = index.score(q[s:s + _ROWS])
        r = np.arange(s, s + len(S))
        S[r - s, r] = -np.inf                       # never its own neighbour
        top = np.argsort(-S, axis=1, kind="stable")[:, :k]       # (chunk, k), ties by image index
        rows.append(np.repeat(r, k))
        cols.append(top.ravel())
        sims.append(np.take_along_axis(S, top, axis=1).ravel())
    i, j, cos = np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)
    keep = cos > 0
    pairs = np.sort(np.stack([i[keep], j[keep]], axis=1), axis=1)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    return pairs.astype(np.int64), cos[keep][first].astype(np.float32)


def _verify_pairs(feats, pairs: np.ndarray, ratio: float, model: str, threshold: float, seed: int,
                  progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC inliers and ratio-test matches ``(C,) int64`` each of candidate pairs ``(C, 2)`` (sorted by
    their first image): image ``i``'s descriptors are matched against all its partners ``j`` at once
    (:func:`coursekit.local.ratio_matches_many`, split per partner by :func:`coursekit.local.matches_per_image`),
    then each pair is verified, ``i``'s keypoints mapped to ``j``'s, with a generator seeded by ``(seed, i)``."""
    from .. import geometry, local

    inliers = np.zeros(len(pairs), np.int64)
    matches = np.zeros(len(pairs), np.int64)
    firsts, starts = np.unique(pairs[:, 0], return_index=True)
    ends = np.append(starts[1:], len(pairs))
    for i, s, e in tqdm(list(zip(firsts, starts, ends)), desc=desc, disable=not progress):
        partners = pairs[s:e, 1]
        ids, nn, ok = local.ratio_matches_many(feats.descriptors(i), local.pad_features(feats, partners), ratio,
                                             one_to_one=False)
        tentative = local.matches_per_image(ids, nn, ok, partners)
        _, inliers[s:e] = geometry.spatial_verification(partners, feats.keypoints(i),
                                                        [feats.keypoints(j) for j in partners], tentative, model,
                                                        threshold, rng=np.random.default_rng((seed, int(i))))
        matches[s:e] = [len(t) for t in tentative]
    return inliers, matches


def _pairs_key(ds, split: str, paths: list, C: np.ndarray, params: dict) -> dict:
    """The disk cache's key of :func:`verified_pairs`' candidates: the dataset and split, the split's files, a
    digest of the vocabulary ``C (K, 128) float32``, ``params`` (:attr:`VerifiedPairs.params`), the SIFT
    settings and OpenCV's version."""
    import cv2

    from .. import local
    from ..cache import array_digest, files_fingerprint

    return {"what": "verified pairs", "dataset": ds.name, "split": split, "files": files_fingerprint(paths),
            "vocabulary": array_digest(C), **params, "sift": [int(params["max_features"]), local.MAX_SIZE],
            "opencv": cv2.__version__, "version": 1}


def _word_counts(feats, C: np.ndarray) -> sp.csr_matrix:
    """Bag-of-words counts of the images of ``feats`` (:class:`coursekit.local.LocalFeatures`, ``T`` descriptors in
    all): each RootSIFT descriptor assigned to its nearest word of ``C (K, 128)``: ``(N, K)`` sparse counts."""
    from .. import bow, local

    words = bow.assign(local.rootsift(feats.desc.astype(np.float32)), C)           # (T,) word of each
    return bow.word_counts(np.split(words, feats.offsets[1:-1]), len(C))           # (N, K)


def _candidate_pairs(ds, split: str, paths: list, C: np.ndarray, params: dict,
                     progress: bool) -> dict[str, np.ndarray]:
    """Steps 1-3 of :func:`verified_pairs`, as cached: SIFT, tf-idf short lists, RANSAC. ``params``:
    :attr:`VerifiedPairs.params`. Returns ``pairs (C, 2) int64``, ``inliers (C,) int64``, ``matches (C,)
    int64`` and ``scores (C,) float32`` of every candidate pair, whatever its inliers."""
    from .. import local

    feats, _ = local.extract_sift(paths, max_features=params["max_features"], progress=progress,
                                  desc=f"sift: {ds.name} {split}")
    pairs, scores = _shortlists(_word_counts(feats, C), params["k"], params["alpha"])
    inliers, matches = _verify_pairs(feats, pairs, params["ratio"], params["model"], params["threshold"],
                                     params["seed"], progress, f"verifying {ds.name} {split} pairs")
    return {"pairs": pairs, "inliers": inliers, "matches": matches, "scores": scores}


def verified_pairs(ds, split: str = "train", k: int = 20, min_inliers: int = MIN_INLIERS, n_words: int = 4000,
                   alpha: float = 0.5, max_features: int = 500, ratio: float = 0.8, model: str = "homography",
                   threshold: float = 5.0, seed: int = 0, progress: bool = True) -> VerifiedPairs:
    """Matching pairs of a split found without its labels: BoW short lists, spatially verified.

    Radenovic, Tolias and Chum, ECCV 2016 (see the module's docstring),
    without their 3D reconstruction. For every image of ``split``
    (``"train"`` or ``"db"``; labels are never read):

    1. its ``max_features`` RootSIFT descriptors (:func:`coursekit.local.extract_sift`,
       cached) are assigned to the nearest of ``n_words`` visual words, the
       course's vocabulary (:func:`coursekit.bow.dataset_vocabulary`: k-means on
       the *training* split, or on the database for a dataset without one; the
       test images never train it), and the split is scored against itself
       with tf-idf (tf to the power ``alpha``, burstiness; Jegou, Douze and
       Schmid, CVPR 2009) through an inverted file, as :func:`coursekit.methods.bow`
       does for queries;
    2. its ``k`` most similar other images are candidates (a pair proposed
       from both ends is verified once; pairs sharing no word are dropped);
    3. each candidate pair ``(i, j)``, ``i < j``, is verified as in
       :func:`coursekit.methods.bow_sv`: ``i``'s descriptors whose nearest
       neighbour in ``j`` passes Lowe's ratio test at ``ratio`` are the
       tentative matches, and RANSAC fits a ``model`` (homography or
       affine) to them with ``threshold`` pixels (Philbin et al., CVPR 2007),
       seeded by ``(seed, i)``;
    4. the pairs with at least ``min_inliers`` inliers are kept.

    Returns :class:`VerifiedPairs`. Steps 1-3 are cached on disk, keyed by
    the dataset, the split's files, the vocabulary's values, ``k``,
    ``alpha``, ``max_features``, ``ratio``, ``model``, ``threshold`` and
    ``seed``; ``min_inliers`` only filters the cached candidates, so that
    trying another threshold costs nothing, and ``min_inliers=0`` returns
    every verified candidate (with its inliers, to choose a threshold by).

    Why ``MIN_INLIERS = 12`` (measured with :func:`pair_quality`, the true
    labels used only to measure, on COIL-100 and the embedded set in
    notebook 08 and the course report): over a wide range of thresholds
    the pairs' precision barely changes, but at lower ones a few wrong
    pairs chain the connected components together, and
    :func:`pseudo_labels` merges many objects into one. On COIL-100
    (objects on black) the verified pairs are nearly all right and
    fine-tuning on their pseudo-labels gains most of what the true labels
    give. On the embedded set they are not: every image is rendered on a
    crop of one of a few background photographs, and two crops of one
    photograph are a perfectly rigid match, so most wrong pairs share
    their background. Verification proves that two images share a rigid
    scene, not that they show the object their labels name; the
    components merge nearly everything, and fine-tuning on them lowers
    the mAP: the wrong pairs are the whole problem.
    """
    from .. import bow
    from ..cache import cached_arrays

    paths = _split_paths(ds, split)
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k must be a positive integer; got {k!r}")
    C, s_voc = bow.dataset_vocabulary(ds, n_words, seed=seed, progress=progress)
    params = {"k": int(k), "n_words": int(n_words), "alpha": float(alpha), "max_features": int(max_features),
              "ratio": float(ratio), "model": model, "threshold": float(threshold), "seed": int(seed)}
    key = _pairs_key(ds, split, paths, C, params)
    arrays, saved = cached_arrays("pairs", key, lambda: _candidate_pairs(ds, split, paths, C, params, progress))
    found = VerifiedPairs(arrays["pairs"].reshape(-1, 2).astype(np.int64), arrays["inliers"].astype(np.int64),
                          arrays["matches"].astype(np.int64), arrays["scores"].astype(np.float32), len(paths), 0,
                          params, saved + s_voc)
    return found.above(min_inliers)


def _check_pairs(n_images: int, pairs) -> np.ndarray:
    pairs = np.asarray(pairs)
    if pairs.size == 0:
        return np.zeros((0, 2), np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be an (M, 2) integer array; got {pairs.shape} {pairs.dtype}")
    if pairs.min() < 0 or pairs.max() >= n_images:
        raise ValueError(f"pairs index images 0 to {n_images - 1}; got {pairs.min()} to {pairs.max()}")
    return pairs.astype(np.int64)


def pseudo_labels(n_images: int, pairs) -> np.ndarray:
    """Labels from matching pairs: the connected components of the graph whose edges are the pairs.

    ``pairs (M, 2)`` integer indices in ``0 .. n_images - 1`` (either order,
    repeats and self-pairs allowed) -> ``(n_images,) int64``, the same label
    for two images joined by a chain of pairs, components numbered
    ``0, 1, ...`` in the order of their smallest image; an image in no pair
    is a component of its own (it trains as a negative only:
    :func:`coursekit.learning.mining.positive_pairs` gives it no partner).
    With :func:`scipy.sparse.csgraph.connected_components`.

    The risk: one wrong pair merges two objects into one label, and every
    image of the one then trains as a positive of every image of the
    other; a chain of images (a shared background, a repeated texture)
    can merge many. Radenovic, Tolias and Chum (ECCV 2016, TPAMI 2018) did
    not take components as labels: they clustered their verified pairs,
    reconstructed each cluster in 3D by structure from motion, and took as
    positives only images of one 3D model that see enough common 3D
    points, which discards most wrong links. Here :func:`pair_quality`
    measures what components do on a labelled split.
    """
    from scipy.sparse.csgraph import connected_components

    if not (isinstance(n_images, (int, np.integer)) and n_images >= 0):
        raise ValueError(f"n_images must be a non-negative integer; got {n_images!r}")
    pairs = _check_pairs(int(n_images), pairs)
    graph = sp.csr_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n_images, n_images))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)       # each component's smallest image
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels].astype(np.int64)


def pair_quality(pairs, labels, pseudo=None) -> dict:
    """How good matching pairs and their pseudo-labels are, measured against true ``labels (N,)``.

    ``pairs (M, 2)`` integer indices into ``labels``; ``pseudo (N,)``: the
    pseudo-labels (by default :func:`pseudo_labels` of ``pairs``). Returns
    a dict of plain numbers:

    - ``n_pairs``, ``precision``: the pairs, and the fraction whose two
      images have the same true label (nan with no pairs);
    - ``images_paired``: the fraction of images in at least one pair;
    - ``n_components``: pseudo-labels held by two images or more;
      ``n_singletons``: images alone with theirs;
    - ``purity``: over the images of those components, the fraction that
      carry their component's most common true label;
      ``merged``: components holding more than one true label;
    - ``positive_precision``: of the pairs of images with the same
      pseudo-label (what fine-tuning draws positives from), the fraction
      that truly match; ``positive_recall``: of the truly matching pairs,
      the fraction with the same pseudo-label (the others may be mined as
      negatives of each other);
    - ``labels_covered``: true labels with at least two images in one
      component (objects that give positives), out of ``n_labels``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, one per image; got shape {labels.shape}")
    n = len(labels)
    pairs = _check_pairs(n, pairs)
    pseudo = pseudo_labels(n, pairs) if pseudo is None else np.asarray(pseudo)
    if pseudo.shape != labels.shape:
        raise ValueError(f"pseudo must have one label per image, {labels.shape}; got {pseudo.shape}")
    _, lab = np.unique(labels, return_inverse=True)
    _, comp = np.unique(pseudo, return_inverse=True)
    lab, comp = lab.reshape(-1), comp.reshape(-1)
    size = np.bincount(comp)                                   # images per component
    # contingency table: images per (component, true label), as the non-zero cells only
    cells, cell_size = np.unique(np.stack([comp, lab], axis=1), axis=0, return_counts=True)
    in_big = size[cells[:, 0]] >= 2                            # cells of components of two or more
    biggest = np.zeros(len(size), np.int64)
    np.maximum.at(biggest, cells[:, 0], cell_size)
    n_labels_in = np.bincount(cells[:, 0], minlength=len(size))
    big = size >= 2
    pairs_of = lambda m: m * (m - 1) // 2                      # noqa: E731  unordered pairs among m images
    same_both = pairs_of(cell_size).sum()
    same_pseudo = pairs_of(size).sum()
    same_true = pairs_of(np.bincount(lab)).sum()
    correct = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    return {
        "n_pairs": int(len(pairs)),
        "precision": float(correct.mean()) if len(pairs) else float("nan"),
        "images_paired": float(len(np.unique(pairs)) / n) if n else float("nan"),
        "n_components": int(big.sum()),
        "n_singletons": int((size == 1).sum()),
        "purity": float(biggest[big].sum() / size[big].sum()) if big.any() else float("nan"),
        "merged": int((big & (n_labels_in > 1)).sum()),
        "positive_precision": float(same_both / same_pseudo) if same_pseudo else float("nan"),
        "positive_recall": float(same_both / same_true) if same_true else float("nan"),
        "labels_covered": int(len(np.unique(cells[in_big & (cell_size >= 2), 1]))),
        "n_labels": int(lab.max() + 1) if n else 0,
    }
