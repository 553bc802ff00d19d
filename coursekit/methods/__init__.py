"""Every named end-to-end retrieval method, as a plain function.

A method takes a :class:`~coursekit.datasets.Dataset` and returns a
:class:`Retrieval`: the similarity of every query to every database image,
and, for methods that make one global vector per image, those vectors (so
that an index or a re-ranking can use them). ``python -m coursekit evaluate``
runs them; the notebooks build each one step by step.

=================  ==========================================================
name               what it does
=================  ==========================================================
``color_hist``     joint HSV colour histogram, Hellinger kernel (notebook 01)
``color_inter``    HSV histogram of pixel counts, intersection (notebook 01)
``gist``           GIST, Gabor energy on a 4x4 grid, L2-normalised (notebook 01)
``sift_match``     RootSIFT matches passing Lowe's ratio test, counted (notebook 02)
``sift_ransac``    ``sift_match``, top 100 re-ranked by RANSAC inliers (notebook 02)
``bow``            bag of visual words, tf-idf, inverted file (notebook 03)
``bow_sv``         ``bow``, top 100 re-ranked by RANSAC inliers (notebook 03)
``vlad``           VLAD, 64 words, signed square root and intra-normalised (notebook 04)
``fisher``         improved Fisher vector, 64 Gaussians on PCA-64 RootSIFT (notebook 04)
``fc``             a CNN's own global vector, "neural codes" (notebook 07)
``mac``            max pooling of the last convolutional map (notebook 07)
``spoc``           sum pooling with a centring prior (notebook 07)
``rmac``           regional max pooling (notebook 07)
``crow``           cross-dimensional weighting (notebook 07)
``gem``            generalized mean pooling, p = 3 (notebook 07)
``gem_ms``         GeM at three scales (notebook 07)
``gem_finetuned``  GeM, its last blocks and p fine-tuned (notebook 08)
=================  ==========================================================

Methods with global vectors can be re-ranked with them: :func:`reranked`
(query expansion, database-side augmentation, diffusion; notebook 09).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .. import aggregation, color, geometry, local
from .. import bow as bag_of_words
from ..cache import array_digest, cached_arrays, files_fingerprint
from ..datasets import Dataset
from ..evaluation import evaluate, ranks_from_similarities
from ..gist import gist_descriptor
from ..images import crop, load_image
from ..timing import timed
from ..whitening import fit_pca_whitening, fit_shrunk_whitening, l2_normalize

__all__ = ["Retrieval", "METHODS", "GLOBAL_METHODS", "describe_methods", "query_image", "extract_global",
           "extract_train", "sift_features",
           "color_hist", "color_inter", "gist", "sift_match", "sift_ransac", "bow", "bow_sv", "vlad", "fisher",
           "fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms", "whitened", "RERANKINGS", "reranked", "run_method", "index_ranks", "neighbour_recall", "evaluate_method"]


@dataclass
class Retrieval:
    """What a method returns.

    ``sims (Q, N) float32``: similarity of each query to each database image
    (larger is better). ``X_db (N, D)`` and ``X_q (Q, D) float32``: the
    global vectors, for methods that have them (``sims = X_q @ X_db.T``).
    ``cached_seconds``: what the steps that came from the disk cache took
    when they were computed (0 for steps computed in this call).
    ``first_stage (Q, N) float32``: for re-ranking methods, the similarities
    before re-ranking (``sift_ransac``: those of ``sift_match``).
    ``X_train (T, D) float32``: the same global vectors of the dataset's
    training split, for learning a whitening or an index; filled when the
    method is called with ``with_train=True`` and the dataset has a training
    split (``ds.train``), else ``None``.
    """

    sims: np.ndarray
    X_db: np.ndarray | None = None
    X_q: np.ndarray | None = None
    cached_seconds: float = 0.0
    first_stage: np.ndarray | None = None
    X_train: np.ndarray | None = None


def query_image(ds: Dataset, i: int) -> np.ndarray:
    """Query ``i`` as ``(H, W, 3) uint8``, cropped to its box when the dataset has boxes."""
    image = load_image(ds.queries[i])
    return crop(image, ds.bbx[i]) if ds.bbx is not None else image


def _describe_files(paths, describe: Callable[[np.ndarray], np.ndarray], desc: str, progress: bool) -> np.ndarray:
    """``describe(image)`` of every image file: ``(len(paths), D) float32``."""
    return np.stack([describe(load_image(p)) for p in tqdm(paths, desc=desc, disable=not progress)]).astype(np.float32)


def extract_global(
    ds: Dataset,
    describe: Callable[[np.ndarray], np.ndarray],
    key: dict,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One vector per database image and per (cropped) query, cached on disk.

    ``describe`` maps an ``(H, W, 3) uint8`` image to a ``(D,)`` vector.
    ``key`` names the method and all its parameters; the dataset's files
    and boxes are added to it. Returns ``X_db (N, D)``, ``X_q (Q, D) float32``
    and the seconds the cache saved (see :func:`coursekit.cache.cached_arrays`).
    """
    name = key.get("method", "features")
    full_key = {
        **key,
        "dataset": ds.name,
        "db": files_fingerprint(ds.db),
        "queries": files_fingerprint(ds.queries),
        "bbx": None if ds.bbx is None else ds.bbx.round(2).tolist(),
    }

    def compute() -> dict[str, np.ndarray]:
        X_db = _describe_files(ds.db, describe, f"{name}: database", progress)
        X_q = [describe(query_image(ds, i)) for i in
               tqdm(range(ds.n_queries), desc=f"{name}: queries", disable=not progress)]
        return {"X_db": X_db, "X_q": np.stack(X_q).astype(np.float32)}

    arrays, seconds = cached_arrays("features", full_key, compute)
    return arrays["X_db"], arrays["X_q"], seconds


def extract_train(ds: Dataset, describe: Callable[[np.ndarray], np.ndarray], key: dict,
                  progress: bool = True) -> tuple[np.ndarray | None, float]:
    """:func:`extract_global` for the training split (cached apart): ``X_train (T, D) float32``
    (``None`` when the dataset has no training split) and the seconds the cache saved."""
    if not ds.train:
        return None, 0.0
    name = key.get("method", "features")
    full_key = {**key, "dataset": ds.name, "split": "train", "train": files_fingerprint(ds.train)}
    arrays, seconds = cached_arrays(
        "features", full_key, lambda: {"X_train": _describe_files(ds.train, describe, f"{name}: training", progress)})
    return arrays["X_train"], seconds


def color_hist(ds: Dataset, bins: tuple[int, int, int] = (16, 16, 16), space: str = "hsv",
               progress: bool = True, with_train: bool = False) -> Retrieval:
    """Joint colour histogram, square-rooted (Hellinger), compared by dot product.

    Swain and Ballard, "Color indexing", IJCV 1991; the Hellinger kernel as
    in Arandjelovic and Zisserman, CVPR 2012.

    The defaults were chosen on the *training* splits, never on the test
    queries: retrieval among the 312 training renderings of the embedded set
    (one cropped query per object) and among COIL-100's objects 1-50 (views
    at 0, 90, 180 and 270 degrees as queries). HSV beat RGB on the first and
    tied on the second; 16 bins per channel beat 8 on both (mAP 0.083 vs
    0.071 and 0.933 vs 0.916), finer bins gained little more for 8 times the
    dimensions; Hellinger was best on COIL (0.933, L1 0.862) and second to
    L1 on the embedded set (0.083 vs 0.091). See notebook 01 for the curves.
    """
    key = {"method": "color_hist", "bins": list(bins), "space": space, "version": 1}
    describe = lambda im: color.joint_histogram(im, bins, space)  # noqa: E731
    X_db, X_q, seconds = extract_global(ds, describe, key, progress)
    X_tr, s_tr = extract_train(ds, describe, key, progress) if with_train else (None, 0.0)
    X_db, X_q = color.hellinger_normalize(X_db), color.hellinger_normalize(X_q)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=seconds + s_tr,
                     X_train=None if X_tr is None else color.hellinger_normalize(X_tr))


def color_inter(ds: Dataset, bins: tuple[int, int, int] = (16, 16, 16), space: str = "hsv",
                progress: bool = True) -> Retrieval:
    """Histogram intersection of pixel counts, the query as the model (Swain and Ballard, IJCV 1991).

    ``sims[q, n] = sum_j min(I_j, M_j) / sum_j M_j`` with ``M`` the query's
    joint histogram of pixel *counts* and ``I`` database image ``n``'s: the
    fraction of the query's pixels whose colour the database image also has,
    in at least as many pixels. Pixels a database image has in surplus, its
    background, cannot lower the score, which is why Swain and Ballard
    counted pixels instead of normalising. It needs the object to cover about
    as many pixels as in the query. No global vectors (``X_db = X_q = None``):
    the intersection is not a dot product. Bins as :func:`color_hist` (16 beat
    8 on both training splits).
    """
    key = {"method": "color_counts", "bins": list(bins), "space": space, "version": 1}

    def counts(image: np.ndarray) -> np.ndarray:
        return color.joint_histogram(image, bins, space) * np.float32(image.shape[0] * image.shape[1])

    X_db, X_q, seconds = extract_global(ds, counts, key, progress)
    return Retrieval(color.histogram_intersection(X_db, X_q).T, cached_seconds=seconds)


def gist(ds: Dataset, image_size: int = 128, progress: bool = True, with_train: bool = False) -> Retrieval:
    """GIST (Oliva and Torralba, IJCV 2001), L2-normalised, compared by dot product.

    :func:`coursekit.gist.gist_descriptor` with the parameters of the
    authors' ``LMgist.m``: grey levels, ``image_size`` square, pre-filtering,
    4 scales x 8 orientations of Gabor energy averaged on a 4x4 grid, 512-D.
    The authors compare GISTs by Euclidean distance; on the training splits
    (as for :func:`color_hist`) the dot product of L2-normalised GISTs
    ranked as well (mAP 0.062 vs 0.063 on the embedded set, 0.557 vs 0.552
    on COIL-100), and it keeps ``sims = X_q @ X_db.T``. 128 pixels beat 256
    on both splits, and cropping the central square (as ``LMgist.m``) beat
    squashing the whole image into it on the embedded set.
    """
    key = {"method": "gist", "image_size": image_size, "orientations": [8, 8, 8, 8], "n_blocks": 4,
           "fc_prefilt": 4.0, "version": 1}
    describe = lambda im: gist_descriptor(im, image_size)  # noqa: E731
    X_db, X_q, seconds = extract_global(ds, describe, key, progress)
    X_tr, s_tr = extract_train(ds, describe, key, progress) if with_train else (None, 0.0)
    X_db, X_q = l2_normalize(X_db), l2_normalize(X_q)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=seconds + s_tr,
                     X_train=None if X_tr is None else l2_normalize(X_tr))


def sift_features(ds: Dataset, max_features: int, progress: bool):
    """RootSIFT-ready SIFT of the database and of the (cropped) queries, cached (at most ``max_features`` an image,
    as :func:`coursekit.local.extract_sift` gives them, one entry an image); and the seconds the cache saved."""
    fdb, s_db = local.extract_sift(ds.db, max_features=max_features, progress=progress, desc="sift: database")
    fq, s_q = local.extract_sift(ds.queries, ds.bbx, max_features=max_features, progress=progress,
                                 desc="sift: queries")
    return fdb, fq, s_db + s_q


def _below(first_stage: np.ndarray) -> np.ndarray:
    """First-stage scores shifted below -1, order kept: what is not re-scored ranks after what is."""
    return first_stage - first_stage.max() - 1.0


def _rescored(scores: np.ndarray, ids: np.ndarray, new: np.ndarray) -> None:
    """Give ``ids`` (best first) the non-negative integer scores ``new``, in place;
    equal scores keep the first-stage order (a tie-break fraction below 0.5)."""
    k = len(ids)
    scores[ids] = new + 0.5 * (k - np.arange(k)) / (k + 1)


def _sift_first_stage(ds: Dataset, fdb, fq, ratio: float, shortlist: int, progress: bool, name: str):
    """For each query: ``(q, ids, nn, ok, scores)``: the ratio-test matches against the
    database images ``ids`` (all, or the colour short list) as :func:`local.ratio_matches_many`
    gives them, and the query's row of first-stage scores (ratio-test match counts)."""
    colour, seconds = None, 0.0
    if ds.n_db > shortlist:
        colour_result = color_hist(ds, progress=progress)
        colour, seconds = colour_result.sims, colour_result.cached_seconds
    all_blocks = local.pad_features(fdb, np.arange(ds.n_db)) if colour is None else None

    def per_query():
        for q in tqdm(range(ds.n_queries), desc=f"{name}: matching", disable=not progress):
            if colour is None:
                ids, nn, ok = local.ratio_matches_many(fq.descriptors(q), all_blocks, ratio)
                scores = np.zeros(ds.n_db, np.float32)
                scores[ids] = ok.sum(axis=0)
            else:
                short = np.argsort(-colour[q], kind="stable")[:shortlist]    # ties in database order
                ids, nn, ok = local.ratio_matches_many(fq.descriptors(q), local.pad_features(fdb, short), ratio)
                counts = np.zeros(ds.n_db, np.int64)
                counts[ids] = ok.sum(axis=0)
                scores = _below(colour[q])
                _rescored(scores, short, counts[short])
            yield q, ids, nn, ok, scores

    return per_query(), seconds


def sift_match(ds: Dataset, max_features: int = 500, ratio: float = 0.8, shortlist: int = 1000,
               progress: bool = True) -> Retrieval:
    """The number of SIFT matches that pass Lowe's ratio test, as a similarity.

    RootSIFT descriptors (Arandjelovic and Zisserman, CVPR 2012) of at most
    ``max_features`` keypoints per image (Lowe, IJCV 2004); each query
    keypoint's nearest neighbour in a database image is a match when it
    passes the ratio test at ``ratio``. A database of at most ``shortlist``
    images is matched entirely; a larger one only on the ``shortlist``
    images that the colour histogram (:func:`color_hist`) ranks first, the
    rest ranked after them in colour order. The colour short list because
    it costs little (cached, no extra pass over the images) and, measured,
    keeps more of the positives than the mean of each image's RootSIFT
    descriptors: 98.7 % of COIL-100's in its top 1,000 (mean RootSIFT:
    79 %), 96 % of the embedded set's in its top 300 (74 %). Matching costs
    about (query keypoints) x (keypoints of the images matched) x 128
    multiply-adds per query, in float32 matrix products.
    """
    fdb, fq, seconds = sift_features(ds, max_features, progress)
    queries, colour_seconds = _sift_first_stage(ds, fdb, fq, ratio, shortlist, progress, "sift_match")
    sims = np.zeros((ds.n_queries, ds.n_db), np.float32)
    for q, _, _, _, scores in queries:
        sims[q] = scores
    return Retrieval(sims, cached_seconds=seconds + colour_seconds)


def _verify(fq, fdb, q: int, short: np.ndarray, ids: np.ndarray, nn: np.ndarray, ok: np.ndarray,
            model: str, threshold: float) -> np.ndarray:
    """RANSAC inliers ``(len(short),) int64`` of query ``q`` with each database image of
    ``short``, from ratio-test matches ``(ids, nn, ok)`` as :func:`local.ratio_matches_many`
    returns them (an image of ``short`` missing from ``ids`` has no matches)."""
    matches = local.matches_per_image(ids, nn, ok, short)
    _, inliers = geometry.spatial_verification(short, fq.keypoints(q), [fdb.keypoints(i) for i in short],
                                               matches, model, threshold, rng=q)
    return inliers


def sift_ransac(ds: Dataset, max_features: int = 500, ratio: float = 0.8, shortlist: int = 1000,
                top: int = 100, model: str = "homography", threshold: float = 5.0,
                progress: bool = True) -> Retrieval:
    """:func:`sift_match`, then its top ``top`` re-ranked by RANSAC inliers.

    Spatial verification (Philbin, Chum, Isard, Sivic and Zisserman, CVPR
    2007): a ``model`` (homography or affine) is fitted to the ratio-test
    matches of each of the first ``top`` images by RANSAC
    (:func:`coursekit.geometry.ransac`, ``threshold`` in pixels of the
    database image, seeded), and the number of inliers becomes their score;
    the images below keep their ``sift_match`` order. ``sims`` holds, for
    the re-ranked images, the inlier count plus a fraction below 0.5 that
    keeps the first-stage order among equal counts; ``first_stage`` holds
    the ``sift_match`` similarities.
    """
    fdb, fq, seconds = sift_features(ds, max_features, progress)
    queries, colour_seconds = _sift_first_stage(ds, fdb, fq, ratio, shortlist, progress, "sift_ransac")
    sims = np.zeros((ds.n_queries, ds.n_db), np.float32)
    first_stage = np.zeros((ds.n_queries, ds.n_db), np.float32)
    for q, ids, nn, ok, scores in queries:
        first_stage[q] = scores
        short = np.argsort(-scores, kind="stable")[:top]          # ties in database order, as evaluate ranks them
        inliers = _verify(fq, fdb, q, short, ids, nn, ok, model, threshold)
        sims[q] = _below(scores)
        _rescored(sims[q], short, inliers)
    return Retrieval(sims, cached_seconds=seconds + colour_seconds, first_stage=first_stage)


def _words(feats, C: np.ndarray, key: dict, progress: bool, chunk: int = 100_000):
    """The visual word of every RootSIFT descriptor of ``feats`` (``(T,) int64``, in the
    order of ``feats.desc``), cached: assigning millions of descriptors to thousands of
    words is the costly step of BoW (COIL-100: 1.8 M descriptors x 4,000 words)."""
    full_key = {**key, "vocabulary": array_digest(C)}

    def compute():
        out = np.empty(len(feats.desc), np.int64)
        for s in tqdm(range(0, len(out), chunk), desc=f"bow: assigning {key['part']} words", disable=not progress):
            out[s:s + chunk] = bag_of_words.assign(local.rootsift(feats.desc[s:s + chunk].astype(np.float32)), C)
        return {"words": out}

    arrays, seconds = cached_arrays("words", full_key, compute)
    return arrays["words"], seconds


def _split(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Rows ``offsets[i]:offsets[i + 1]`` of ``values``, image by image."""
    return np.split(values, offsets[1:-1])


def _bow_counts(ds: Dataset, k: int, max_features: int, progress: bool):
    """Term frequencies ``(N, k)`` and ``(Q, k)`` of the database and the queries,
    the SIFT features, and the seconds the cache saved."""
    fdb, fq, seconds = sift_features(ds, max_features, progress)
    C, s_voc = bag_of_words.dataset_vocabulary(ds, k, progress=progress)
    base = {"dataset": ds.name, "max_features": max_features, "version": 1}
    w_db, s_db = _words(fdb, C, {**base, "part": "database", "files": files_fingerprint(ds.db)}, progress)
    w_q, s_q = _words(fq, C, {**base, "part": "query", "files": files_fingerprint(ds.queries),
                                  "bbx": None if ds.bbx is None else ds.bbx.round(2).tolist()}, progress)
    counts_db = bag_of_words.word_counts(_split(w_db, fdb.offsets), k)
    counts_q = bag_of_words.word_counts(_split(w_q, fq.offsets), k)
    return counts_db, counts_q, fdb, fq, seconds + s_voc + s_db + s_q


def bow(ds: Dataset, k: int = 4000, alpha: float = 0.5, max_features: int = 500,
        progress: bool = True) -> Retrieval:
    """Bag of visual words: tf-idf vectors scored through an inverted file.

    Sivic and Zisserman, "Video Google", ICCV 2003; Nister and Stewenius,
    CVPR 2006. ``max_features`` RootSIFT descriptors per image (as
    :func:`sift_match`) are assigned to the nearest of ``k`` visual words,
    learned by k-means on the dataset's training split
    (:func:`coursekit.bow.dataset_vocabulary`); term frequencies are raised
    to the power ``alpha`` against burstiness (Jegou, Douze and Schmid, CVPR
    2009; ``alpha = 1`` is plain tf-idf), weighted by the database's idf and
    L2-normalised; ``sims`` are their cosines, computed as sparse products
    with the posting lists (:class:`coursekit.bow.InvertedFile`). ``X_db``
    and ``X_q`` are ``None``: the vectors are sparse ``(., k)``, not dense.
    """
    counts_db, counts_q, _, _, seconds = _bow_counts(ds, k, max_features, progress)
    index = bag_of_words.InvertedFile.build(counts_db, alpha)
    return Retrieval(index.search(counts_q), cached_seconds=seconds)


def bow_sv(ds: Dataset, k: int = 4000, alpha: float = 0.5, max_features: int = 500, top: int = 100,
           ratio: float = 0.8, model: str = "homography", threshold: float = 5.0,
           progress: bool = True) -> Retrieval:
    """:func:`bow`, then its top ``top`` re-ranked by RANSAC inliers.

    Spatial verification of the short list (Philbin, Chum, Isard, Sivic and
    Zisserman, "Object retrieval with large vocabularies and fast spatial
    matching", CVPR 2007), as in :func:`sift_ransac`: the tentative
    correspondences are the query's descriptors whose nearest neighbour in
    the database image passes Lowe's ratio test at ``ratio`` (Philbin et al.
    take descriptors that share a visual word; with ``k`` in the thousands
    rather than a million, a shared word is a weak correspondence). Scores
    as in :func:`sift_ransac`; ``first_stage`` holds the :func:`bow` scores.
    """
    counts_db, counts_q, fdb, fq, seconds = _bow_counts(ds, k, max_features, progress)
    first_stage = bag_of_words.InvertedFile.build(counts_db, alpha).search(counts_q)
    sims = np.zeros_like(first_stage)
    for q in tqdm(range(ds.n_queries), desc="bow_sv: verifying", disable=not progress):
        short = np.argsort(-first_stage[q], kind="stable")[:top]
        ids, nn, ok = local.ratio_matches_many(fq.descriptors(q), local.pad_features(fdb, short), ratio)
        inliers = _verify(fq, fdb, q, short, ids, nn, ok, model, threshold)
        sims[q] = _below(first_stage[q])
        _rescored(sims[q], short, inliers)
    return Retrieval(sims, cached_seconds=seconds, first_stage=first_stage)


def _aggregate(feats, describe: Callable[[np.ndarray], np.ndarray], desc: str, progress: bool) -> np.ndarray:
    """``describe(RootSIFT of image i)`` for every image of ``feats``: ``(N, D) float32``."""
    return np.stack([describe(feats.descriptors(i)) for i in
                     tqdm(range(len(feats)), desc=desc, disable=not progress)]).astype(np.float32)


def _aggregated(ds: Dataset, split: str, describe: Callable[[np.ndarray], np.ndarray], key: dict, max_features: int,
                progress: bool) -> tuple[np.ndarray, float]:
    """``describe`` of the RootSIFT of every image of a split (``"db"``, ``"queries"``, cropped to
    their boxes, or ``"train"``), cached on disk under ``key`` (the method, its parameters and the
    digest of what it learned): ``(N, D) float32`` and the seconds the caches saved."""
    paths, boxes = {"db": (ds.db, None), "queries": (ds.queries, ds.bbx), "train": (ds.train, None)}[split]
    full_key = {**key, "dataset": ds.name, "split": split, "files": files_fingerprint(paths),
                "bbx": None if boxes is None else boxes.round(2).tolist(), "max_features": max_features}

    def compute() -> dict[str, np.ndarray]:
        feats, sift_saved = local.extract_sift(paths, boxes, max_features=max_features, progress=progress,
                                               desc=f"sift: {split}")
        X = _aggregate(feats, describe, f"{key['method']}: {split}", progress)
        return {"X": X, "sift_saved": np.float64(sift_saved)}

    arrays, saved = cached_arrays("features", full_key, compute)
    return arrays["X"], saved + float(arrays["sift_saved"])


def _global_splits(ds: Dataset, describe, key: dict, max_features: int, with_train: bool, progress: bool):
    """:func:`_aggregated` of the database, the queries and (with ``with_train``, when the dataset has
    one) the training split: ``X_db, X_q, X_train or None`` and the seconds the caches saved."""
    X_db, s_db = _aggregated(ds, "db", describe, key, max_features, progress)
    X_q, s_q = _aggregated(ds, "queries", describe, key, max_features, progress)
    X_tr, s_tr = (_aggregated(ds, "train", describe, key, max_features, progress) if with_train and ds.train
                  else (None, 0.0))
    return X_db, X_q, X_tr, s_db + s_q + s_tr


def vlad(ds: Dataset, k: int = 64, max_features: int = 500, progress: bool = True,
         with_train: bool = False) -> Retrieval:
    """VLAD (Jegou, Douze, Schmid and Perez, CVPR 2010) of RootSIFT, ``(k * 128,)``.

    ``k`` words learned on the training split (as :func:`bow`); each
    word's block is the sum of the residuals of its descriptors; then the
    signed square root (Jegou et al., TPAMI 2012), intra-normalisation
    (Arandjelovic and Zisserman, "All about VLAD", CVPR 2013) and L2, so
    that ``sims = X_q @ X_db.T`` are cosines.
    """
    C, s_voc = bag_of_words.dataset_vocabulary(ds, k, progress=progress)

    def describe(X):
        v = aggregation.power_normalize(aggregation.vlad(X, C), 0.5)
        return aggregation.l2_normalize(aggregation.intra_normalize(v, k))

    key = {"method": "vlad", "k": k, "vocabulary": array_digest(C), "version": 1}
    X_db, X_q, X_tr, seconds = _global_splits(ds, describe, key, max_features, with_train, progress)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=seconds + s_voc, X_train=X_tr)


def fisher(ds: Dataset, k: int = 64, d: int = 64, max_features: int = 500, progress: bool = True,
           with_train: bool = False) -> Retrieval:
    """Improved Fisher vector (Perronnin, Sanchez and Mensink, ECCV 2010), ``(2 * k * d,)``.

    RootSIFT reduced to ``d`` dimensions by PCA, a diagonal GMM of ``k``
    Gaussians, both learned on the training split
    (:func:`coursekit.aggregation.dataset_gmm`); gradients with respect to
    the means and standard deviations, power law (0.5) and L2
    (:func:`coursekit.aggregation.fisher_vector`).
    """
    pca, gmm, s_gmm = aggregation.dataset_gmm(ds, k, d, progress=progress)

    def describe(X):
        return aggregation.fisher_vector(pca.project(X), gmm)

    learned = np.concatenate([a.ravel().astype(np.float64) for a in (pca.mean, pca.components, gmm.w, gmm.mu, gmm.var)])
    key = {"method": "fisher", "k": k, "d": d, "learned": array_digest(learned), "version": 1}
    X_db, X_q, X_tr, seconds = _global_splits(ds, describe, key, max_features, with_train, progress)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=seconds + s_gmm, X_train=X_tr)


def _cnn(ds: Dataset, pooling: str, backbone: str, weights, size: int, scales: tuple[float, ...], with_train: bool,
         progress: bool) -> Retrieval:
    """L2-normalised CNN vectors of one pooling for the database, the (cropped) queries and, with
    ``with_train``, the training split (:func:`coursekit.cnn.extract.dataset_descriptors`, or
    :func:`~coursekit.cnn.extract.dataset_fc_codes` for ``"fc"``; cached).
    ``backbone``, ``weights``: as :func:`coursekit.cnn.backbones.load_backbone`."""
    from ..cnn.backbones import load_backbone
    from ..cnn.extract import dataset_descriptors, dataset_fc_codes

    net = load_backbone(backbone, weights)
    splits = ["db", "queries"] + (["train"] if with_train and ds.train else [])
    X, saved = {}, 0.0
    for split in splits:
        if pooling == "fc":
            V, s = dataset_fc_codes(ds, split, net, progress=progress)
        else:
            arrays, s = dataset_descriptors(ds, split, net, size, scales, progress=progress)
            V = arrays[pooling]
        X[split], saved = l2_normalize(V), saved + s
    return Retrieval(X["queries"] @ X["db"].T, X["db"], X["queries"], cached_seconds=saved, X_train=X.get("train"))


CNN_SIZE = 480                                   # pixels on the longer side
MULTI_SCALE = (1.0, 1.0 / np.sqrt(2.0), 0.5)     # Radenovic, Tolias and Chum, TPAMI 2018


def fc(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, progress: bool = True,
       with_train: bool = False) -> Retrieval:
    """"Neural codes" (Babenko, Slesarev, Chigorin and Lempitsky, ECCV 2014; Razavian et al., CVPRW 2014):
    the network's own global vector of the image squashed to 224 x 224 (VGG16's fc7; the pooled input of
    the classifier for EfficientNet-Lite and ResNet), L2-normalised."""
    return _cnn(ds, "fc", backbone, weights, CNN_SIZE, (1.0,), with_train, progress)


def mac(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
        with_train: bool = False) -> Retrieval:
    """MAC: the maximum of each channel of the last convolutional map (Tolias, Sicre and Jegou, ICLR 2016), L2."""
    return _cnn(ds, "mac", backbone, weights, size, (1.0,), with_train, progress)


def spoc(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
         with_train: bool = False) -> Retrieval:
    """SPoC: sum pooling with a Gaussian centring prior (Babenko and Lempitsky, ICCV 2015), L2."""
    return _cnn(ds, "spoc", backbone, weights, size, (1.0,), with_train, progress)


def rmac(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
         with_train: bool = False, whiten_regions: bool = False, dim: int | None = None) -> Retrieval:
    """R-MAC: the sum of the L2-normalised MACs of regions on 3 scales (Tolias, Sicre and Jegou, ICLR 2016), L2.

    With ``whiten_regions`` (what ``--whiten`` does for this method), each
    regional vector is whitened, then L2-normalised, before the sum, as in the
    paper; the whitening is learned on the regions of the training split
    (every dimension kept, or PCA-whitening to ``dim``; see :func:`whitened`).
    That takes a pass of the network of its own (cached), since the regions
    of the other methods' pass are summed at once.
    """
    if not whiten_regions:
        if dim is not None:
            raise ValueError("dim is the dimension the regional whitening keeps: pass it with whiten_regions")
        return _cnn(ds, "rmac", backbone, weights, size, (1.0,), with_train, progress)
    from ..cnn.backbones import load_backbone
    from ..cnn.extract import dataset_regional_macs

    if not ds.train:
        raise ValueError(f"the regional whitening is learned on a training split and {ds.name!r} has none")
    net = load_backbone(backbone, weights)
    regions = {split: dataset_regional_macs(ds, split, net, size, progress=progress)
               for split in ("train", "db", "queries")}                       # (V, starts, seconds saved)
    V_train = regions["train"][0]
    W = fit_shrunk_whitening(V_train) if dim is None else fit_pca_whitening(V_train, dim)
    X = {split: l2_normalize(np.add.reduceat(W.apply(V), starts, axis=0)) for split, (V, starts, _) in regions.items()}
    saved = sum(r[2] for r in regions.values())
    return Retrieval(X["queries"] @ X["db"].T, X["db"], X["queries"], cached_seconds=saved, X_train=X["train"])


def crow(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
         with_train: bool = False) -> Retrieval:
    """CroW: sum pooling with spatial and channel weights (Kalantidis, Mellina and Osindero, ECCVW 2016), L2."""
    return _cnn(ds, "crow", backbone, weights, size, (1.0,), with_train, progress)


def gem(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
        with_train: bool = False) -> Retrieval:
    """GeM: the generalized mean with p = 3 of each channel (Radenovic, Tolias and Chum, TPAMI 2018), L2."""
    return _cnn(ds, "gem", backbone, weights, size, (1.0,), with_train, progress)


def gem_ms(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
           with_train: bool = False) -> Retrieval:
    """GeM at the scales 1, 1/sqrt 2 and 1/2 of ``size``, the L2-normalised vectors summed, then L2
    (Radenovic, Tolias and Chum, TPAMI 2018)."""
    return _cnn(ds, "gem", backbone, weights, size, MULTI_SCALE, with_train, progress)


def gem_finetuned(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE,
                  progress: bool = True, with_train: bool = False, settings: dict | None = None,
                  train_on: str | None = None) -> Retrieval:
    """GeM of a CNN whose last two blocks and GeM's p were fine-tuned on the dataset's training split, L2
    (contrastive loss, hard negatives re-mined every epoch: Radenovic, Tolias and Chum, TPAMI 2018).

    Trains with :func:`coursekit.learning.finetune.finetune` (its defaults, overridden by ``settings``, e.g.
    :data:`coursekit.learning.finetune.FAST`) once per dataset, size and settings: about a minute on two cores
    for the embedded set, after its trunk maps. The checkpoint is kept in the cache and loaded on later calls,
    and by notebook 08, which trains with the same defaults. ``cached_seconds`` counts the loaded epochs.

    ``train_on``: the name of another dataset whose training split trains the network (``"embedded"`` for
    SMVS, which has none: a test across domains); by default ``ds``'s own.
    """
    from ..cnn.backbones import load_backbone
    from ..datasets import load_dataset
    from ..learning.finetune import finetune, finetuned_descriptors

    source = ds if train_on is None else load_dataset(train_on)
    if not source.train or source.train_labels is None:
        raise ValueError(f"gem_finetuned learns from a labelled training split, and {source.name!r} has none: "
                         "fine-tune on another dataset's (--train-on embedded, or train_on='embedded')")
    net = load_backbone(backbone, weights)
    head, history = finetune(source, net, **{"size": size, **(settings or {})}, checkpoint="auto",
                             progress=progress)
    trained = sum(h["seconds"] for h in history[:head.meta["loaded_epochs"]])   # the time of the loaded epochs
    X = {split: finetuned_descriptors(ds, split, head, net, None, progress)
         for split in ["db", "queries"] + (["train"] if with_train and ds.train else [])}
    return Retrieval(X["queries"] @ X["db"].T, X["db"], X["queries"], cached_seconds=trained,
                     X_train=X.get("train"))


# name -> (function, one line for `python -m coursekit methods`)
METHODS: dict[str, tuple[Callable[..., Retrieval], str]] = {
    "color_hist": (color_hist, "joint HSV colour histogram (16x16x16), Hellinger kernel  [notebook 01]"),
    "color_inter": (color_inter, "HSV histogram of pixel counts (16x16x16), intersection, query as model  [notebook 01]"),
    "gist": (gist, "GIST: Gabor energy, 4 scales x 8 orientations on a 4x4 grid, 512-D  [notebook 01]"),
    "sift_match": (sift_match, "RootSIFT ratio-test match count, 500 keypoints (colour short list past 1000 images)"
                               "  [notebook 02]"),
    "sift_ransac": (sift_ransac, "sift_match, top 100 re-ranked by RANSAC homography inliers  [notebook 02]"),
    "bow": (bow, "bag of 4000 visual words (RootSIFT), tf^0.5 idf, inverted file  [notebook 03]"),
    "bow_sv": (bow_sv, "bow, top 100 re-ranked by RANSAC homography inliers  [notebook 03]"),
    "vlad": (vlad, "VLAD of RootSIFT, 64 words, signed square root, intra + L2 normalised, 8192-D  [notebook 04]"),
    "fisher": (fisher, "improved Fisher vector, 64 Gaussians on PCA-64 RootSIFT, 8192-D  [notebook 04]"),
    "fc": (fc, "EfficientNet-Lite0's pooled 1280-D vector of the image at 224 x 224 ('neural codes')  [notebook 07]"),
    "mac": (mac, "MAC of EfficientNet-Lite0's last map, 480 px, 1280-D  [notebook 07]"),
    "spoc": (spoc, "SPoC (sum pooling, centring prior) of EfficientNet-Lite0's last map, 480 px  [notebook 07]"),
    "rmac": (rmac, "R-MAC (regional MACs on 3 scales, normalised, summed) of EfficientNet-Lite0, 480 px  [notebook 07]"),
    "crow": (crow, "CroW (spatial and channel weights) of EfficientNet-Lite0's last map, 480 px  [notebook 07]"),
    "gem": (gem, "GeM (p = 3) of EfficientNet-Lite0's last map, 480 px  [notebook 07]"),
    "gem_ms": (gem_ms, "GeM at 480, 339 and 240 px, combined  [notebook 07]"),
    "gem_finetuned": (gem_finetuned, "GeM, last two blocks and p fine-tuned on the training split (contrastive, "
                                     "hard negatives), 480 px  [notebook 08]"),
}


# the methods that make one global vector per image: these can be whitened and indexed
GLOBAL_METHODS = ("color_hist", "gist", "vlad", "fisher", "fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms",
                  "gem_finetuned")


def describe_methods() -> dict[str, str]:
    """Each method name with its one-line description."""
    return {name: line for name, (_, line) in METHODS.items()}


def whitened(result: Retrieval, d: int | None = None, eps: float = 1e-3) -> Retrieval:
    """``result`` with its global vectors whitened, learned on ``result.X_train``, and L2-normalised.

    Learned on the training split, never on the database or the queries.
    With ``d``: PCA-whitening to ``d`` dimensions (Jegou and Chum, ECCV
    2012; :func:`coursekit.whitening.fit_pca_whitening`). Without: every
    dimension kept, whitened by the training covariance shrunk towards the
    identity (:func:`coursekit.whitening.fit_shrunk_whitening`), which on
    small training splits does better (notebook 05: VLAD on the embedded
    set, 0.591 mAP as is, 0.317 PCA-whitened to 128 dimensions, 0.632 with
    every dimension kept).
    """
    if result.X_db is None:
        raise ValueError("this method has no global vectors to whiten; methods that have: "
                         + ", ".join(GLOBAL_METHODS))
    if result.X_train is None:
        raise ValueError("whitening is learned on the training split: call the method with with_train=True, on a "
                         "dataset that has one (this one has no training images)")
    W = fit_shrunk_whitening(result.X_train, eps) if d is None else fit_pca_whitening(result.X_train, d, eps)
    X_db, X_q = W.apply(result.X_db), W.apply(result.X_q)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=result.cached_seconds,
                     X_train=W.apply(result.X_train))


RERANKINGS = ("aqe", "alpha_qe", "aqe_dba", "alpha_qe_dba", "diffusion")


def reranked(result: Retrieval, how: str) -> Retrieval:
    """``result`` re-ranked with its global vectors (notebook 09, :mod:`coursekit.rerank`).

    ``how``: ``"aqe"``, average query expansion of each query with its top
    5 database vectors (Chum et al., ICCV 2007); ``"alpha_qe"``, the same
    weighted by similarity cubed (Radenovic et al., TPAMI 2018);
    ``"aqe_dba"`` and ``"alpha_qe_dba"``, the database first augmented
    with its own 5 nearest neighbours the same way (Arandjelovic and
    Zisserman, CVPR 2012), then the queries expanded against it;
    ``"diffusion"``, diffusion on the database's mutual 50-NN graph (Iscen
    et al., CVPR 2017; the graph cached on disk). The first ranking's
    similarities are kept as ``first_stage``. After query expansion,
    ``X_q`` (and with DBA ``X_db``) are the expanded vectors and
    ``sims = X_q @ X_db.T``; after diffusion, ``sims`` holds the diffusion
    scores and the vectors are those of ``result``.
    """
    from .. import rerank

    if result.X_db is None:
        raise ValueError("re-ranking uses the global vectors and this method has none; methods that have: "
                         + ", ".join(GLOBAL_METHODS))
    if how not in RERANKINGS:
        raise ValueError(f"unknown re-ranking {how!r}; known: {', '.join(RERANKINGS)}")
    X_db, X_q = result.X_db, result.X_q
    if how == "diffusion":
        sims = rerank.diffusion(X_q, X_db)
    else:
        alpha = rerank.QE_ALPHA if how.startswith("alpha") else 0.0
        if how.endswith("_dba"):
            X_db = rerank.database_augmentation(X_db, rerank.QE_K, alpha)
        X_q = rerank.alpha_query_expansion(X_q, X_db, rerank.QE_K, alpha)
        sims = X_q @ X_db.T
    return Retrieval(sims.astype(np.float32), X_db, X_q, cached_seconds=result.cached_seconds,
                     first_stage=result.sims, X_train=result.X_train)


def run_method(name: str, ds: Dataset, progress: bool = True, whiten: bool = False, dim: int | None = None,
               with_train: bool = False, **params) -> Retrieval:
    """Run the method called ``name`` on ``ds``; with ``whiten``, whiten its
    global vectors, to ``dim`` dimensions if given (see :func:`whitened`);
    for ``rmac``, whiten its regions before their sum (:func:`rmac`).
    ``params`` go to the method (``backbone=``, ``weights=`` of the CNN methods)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    if (whiten or with_train) and name not in GLOBAL_METHODS:
        raise ValueError(f"method {name!r} makes no global vectors, so it cannot be whitened or indexed; "
                         f"methods that can: {', '.join(GLOBAL_METHODS)}")
    if whiten and not ds.train:
        raise ValueError(f"whitening is learned on a training split and {ds.name!r} has none: "
                         "drop --whiten, or use a dataset with training images (embedded, coil100)")
    if dim is not None and not whiten:
        raise ValueError("dim is the dimension kept by the whitening: pass it with whiten")
    fn = METHODS[name][0]
    unknown = set(params) - set(inspect.signature(fn).parameters)
    if unknown:
        raise ValueError(f"method {name!r} takes no {', '.join(sorted(unknown))} (only the CNN methods take a backbone)")
    if whiten and name == "rmac":    # the paper whitens each region before the sum
        return fn(ds, progress=progress, with_train=True, whiten_regions=True, dim=dim, **params)
    if name in GLOBAL_METHODS:
        result = fn(ds, progress=progress, with_train=whiten or with_train, **params)
    else:
        result = fn(ds, progress=progress, **params)
    return whitened(result, dim) if whiten else result


def index_ranks(I: np.ndarray, n_db: int) -> np.ndarray:
    """A full ranking from an index's results: ``I (Q, k) int64`` (``-1`` past the
    candidates) -> ``ranks (Q, n_db) int64``: the results in their order, then
    every database image the index did not return, in database order (it gave
    them no score, so no order among them is better informed)."""
    Q = len(I)
    ranks = np.empty((Q, n_db), np.int64)
    for q in range(Q):  # one row per query: the set difference is per row
        found = I[q][I[q] >= 0]
        rest = np.setdiff1d(np.arange(n_db), found, assume_unique=True)
        ranks[q] = np.concatenate([found, rest])
    return ranks


def neighbour_recall(D_exact: np.ndarray, I: np.ndarray, ranks=(1, 10, 100), copy: float = 1e-6) -> dict[int, float]:
    """Recall@R of an index: the fraction of queries for which one of its first ``R`` results is
    an exact nearest neighbour.

    ``D_exact (Q, N)``: exact squared distances from each query to each
    database vector; ``I (Q, k) int64``: the index's results (``-1`` past
    its candidates). As :func:`coursekit.ann.recall_at`, with two
    differences for image datasets: database vectors within ``copy`` of the
    query are copies of the query itself (COIL-100's queries are database
    images), which every index finds, so they are dropped from the results
    and the neighbour to find is the nearest other image; and any vector at
    the nearest distance counts (duplicates tie).
    """
    found = np.where(I >= 0, np.take_along_axis(D_exact, np.maximum(I, 0), axis=1), np.inf)   # (Q, k)
    nearest = np.where(D_exact > copy, D_exact, np.inf).min(axis=1)                            # (Q,)
    other = found > copy                                  # results that are not copies of the query
    position = np.cumsum(other, axis=1)                   # rank of each among those
    is_nearest = other & (found <= nearest[:, None] * (1 + 1e-5))
    return {int(r): float((is_nearest & (position <= r)).any(axis=1).mean()) for r in ranks}


def evaluate_method(name: str, ds: Dataset, progress: bool = True, whiten: bool = False, dim: int | None = None,
                    index: str | None = None, M: int = 16, nbits: int = 8, nlist: int | None = None,
                    nprobe: int = 8, seed: int = 0, rerank: str | None = None, **params) -> dict:
    """Run a method end to end and measure it.

    Returns a JSON-able dict: ``dataset``, ``method``, ``n_db``,
    ``n_queries``, every measure of :func:`coursekit.evaluation.evaluate`,
    and ``seconds``: the method's time on this machine, with the time of
    cached steps as measured when they were computed (so a second run
    reports the same cost, not the cache's).

    ``whiten``, ``dim``: PCA-whitening learned on the training split
    (:func:`whitened`). ``index``: one of
    :data:`coursekit.ann.INDEX_KINDS`, built by
    :func:`coursekit.ann.build_index` (``M``, ``nbits``, ``nlist``,
    ``nprobe``, ``seed``) on the training split's vectors (the database's
    when the dataset has no training split: ``index_trained_on`` says which);
    the measures are then of the index's ranking (:func:`index_ranks`),
    those of exact search are added with the prefix ``exact_``, and
    ``recall@R`` is the fraction of queries whose exact nearest neighbour
    the index returns in its first ``R`` (:func:`coursekit.ann.recall_at`),
    with ``ms_per_query`` and ``bytes_per_vector`` (see :func:`neighbour_recall`
    for queries that are database images, and ties).

    ``rerank``: one of :data:`RERANKINGS`, applied to the (whitened)
    vectors (:func:`reranked`); the measures are then of the re-ranked
    list, those of the first ranking are added with the prefix ``first_``,
    and ``rerank_seconds`` is the re-ranking's own time (the graph's
    construction included, unless it came from the cache). Not with an
    ``index``.
    """
    from ..ann import build_index, squared_distances

    if rerank is not None and index is not None:
        raise ValueError("re-ranking runs on exact search: pass either rerank or index, not both")
    if rerank is not None and rerank not in RERANKINGS:
        raise ValueError(f"unknown re-ranking {rerank!r}; known: {', '.join(RERANKINGS)}")
    if rerank is not None and name not in GLOBAL_METHODS:
        raise ValueError(f"method {name!r} makes no global vectors, so it cannot be re-ranked by them; "
                         f"methods that can: {', '.join(GLOBAL_METHODS)}")
    start = time.perf_counter()
    result = run_method(name, ds, progress, whiten=whiten, dim=dim, with_train=index is not None, **params)
    if rerank is not None:
        rerank_seconds, result = timed(lambda: reranked(result, rerank))
    scores = evaluate(ranks_from_similarities(result.sims), ds)
    trained_on = f"(trained on {params['train_on']})" if params.get("train_on") else ""
    out = {"dataset": ds.name, "method": name + trained_on + ("+whiten" if whiten else "")
           + (f"+{rerank}" if rerank else ""), "n_db": ds.n_db, "n_queries": ds.n_queries}
    if whiten:
        out["dim"] = int(result.X_db.shape[1])
    if index is None:
        out.update({k: round(v, 4) for k, v in scores.items()})
        if rerank is not None:
            first = evaluate(ranks_from_similarities(result.first_stage), ds)
            out.update({f"first_{k}": round(v, 4) for k, v in first.items()})
            out["rerank_seconds"] = round(rerank_seconds, 3)
    else:
        X_train = result.X_train if result.X_train is not None else result.X_db
        idx = build_index(index, X_train, result.X_db, M=M, nbits=nbits, nlist=nlist, nprobe=nprobe, seed=seed)
        search_seconds, (_, I) = timed(lambda: idx.search(result.X_q, ds.n_db))
        ranked = evaluate(index_ranks(I, ds.n_db), ds)
        recall = neighbour_recall(squared_distances(result.X_q, result.X_db), I,
                                  [r for r in (1, 10, 100) if r <= ds.n_db])
        out.update(index=repr(idx), index_trained_on="train" if result.X_train is not None else "database")
        out.update({k: round(v, 4) for k, v in ranked.items()})
        out.update({f"exact_{k}": round(v, 4) for k, v in scores.items()})
        out.update({f"recall@{r}": round(v, 4) for r, v in recall.items()})
        out.update(ms_per_query=round(1e3 * search_seconds / ds.n_queries, 3),
                   bytes_per_vector=idx.memory_per_vector)
    out["seconds"] = round(time.perf_counter() - start + result.cached_seconds, 2)
    return out
