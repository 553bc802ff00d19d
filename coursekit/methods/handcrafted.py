"""The hand-crafted methods: colour histograms and GIST (notebook 01), SIFT matching and its spatial
verification (notebook 02), bags of visual words (notebook 03), VLAD and Fisher vectors (notebook 04)."""

from __future__ import annotations

import cv2
import numpy as np
from tqdm.auto import tqdm

from .. import aggregation, color, geometry, local
from .. import bow as bag_of_words
from ..cache import array_digest, cached_arrays, files_fingerprint
from ..datasets import Dataset
from ..gist import gist_descriptor
from ..whitening import l2_normalize
from .features import Retrieval, aggregated_splits, dataset_key, extract_global, extract_train, sift_features

__all__ = ["color_hist", "color_inter", "gist", "sift_match", "sift_ransac", "bow", "bow_sv", "vlad", "fisher"]


def color_hist(ds: Dataset, bins: tuple[int, int, int] = (16, 16, 16), space: str = "hsv",
               progress: bool = True, with_train: bool = False) -> Retrieval:
    """Joint colour histogram, square-rooted (Hellinger), compared by dot product.

    Swain and Ballard, "Color indexing", IJCV 1991; the Hellinger kernel as
    in Arandjelovic and Zisserman, CVPR 2012.

    The defaults were chosen on the *training* splits, never on the test
    queries: retrieval among the 312 training renderings of the embedded set
    (one cropped query per object) and among COIL-100's objects 1-50 (views
    at 0, 90, 180 and 270 degrees as queries). HSV beat RGB on the first and
    tied on the second; 16 bins per channel beat 8 on both, finer bins gained
    little more for 8 times the dimensions; Hellinger was best on COIL and
    second to L1 on the embedded set. Notebook 01 measures these choices.
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
    ranked as well as the Euclidean distance on both, and it keeps
    ``sims = X_q @ X_db.T``. 128 pixels beat 256
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


def _below(first_stage: np.ndarray) -> np.ndarray:
    """First-stage scores shifted below -1, order kept: what is not re-scored ranks after what is."""
    return first_stage - first_stage.max() - 1.0


def _rescored(scores: np.ndarray, ids: np.ndarray, new: np.ndarray) -> None:
    """Give ``ids`` (best first) the non-negative integer scores ``new``, in place;
    equal scores keep the first-stage order (a tie-break fraction below 0.5)."""
    k = len(ids)
    scores[ids] = new + 0.5 * (k - np.arange(k)) / (k + 1)


def _sift_first_stage(ds: Dataset, fdb, fq, ratio: float, shortlist: int, progress: bool, name: str):
    """For each query: ``(q, ids, nn, d1, d2, scores)``: the two nearest descriptors of each database
    image ``ids`` (all, or the colour short list) as :func:`local.nearest_many` gives them, and the
    query's row of first-stage scores (one-to-one ratio-test match counts at ``ratio``)."""
    colour, seconds = None, 0.0
    if ds.n_db > shortlist:
        colour_result = color_hist(ds, progress=progress)
        colour, seconds = colour_result.sims, colour_result.cached_seconds
    all_blocks = local.pad_features(fdb, np.arange(ds.n_db)) if colour is None else None

    def per_query():
        for q in tqdm(range(ds.n_queries), desc=f"{name}: matching", disable=not progress):
            short = None if colour is None else np.argsort(-colour[q], kind="stable")[:shortlist]  # ties: db order
            blocks = all_blocks if short is None else local.pad_features(fdb, short)
            ids, nn, d1, d2 = local.nearest_many(fq.descriptors(q), blocks)
            counts = np.zeros(ds.n_db, np.int64)
            counts[ids] = local.ratio_mask(nn, d1, d2, ratio).sum(axis=0)
            if short is None:
                scores = counts.astype(np.float32)
            else:
                scores = _below(colour[q])
                _rescored(scores, short, counts[short])
            yield q, ids, nn, d1, d2, scores

    return per_query(), seconds


def sift_match(ds: Dataset, max_features: int = 500, ratio: float = 0.7, shortlist: int = 1000,
               progress: bool = True) -> Retrieval:
    """The number of one-to-one SIFT matches that pass Lowe's ratio test, as a similarity.

    RootSIFT descriptors (Arandjelovic and Zisserman, CVPR 2012) of at most
    ``max_features`` keypoints per image (Lowe, IJCV 2004); each query
    keypoint's nearest neighbour in a database image is a match when it
    passes the ratio test at ``ratio``, and each database keypoint counts
    once (:func:`coursekit.local.one_to_one`): without that, many query
    keypoints on a repeated texture land on one database keypoint and a
    wrong image wins by volume. ``ratio`` 0.7 and the one-to-one rule were
    chosen on training splits, never on test queries: the embedded set's
    training images and COIL-100's training views, each a query against the
    others (``benchmarks/bench_local.py --choose`` prints that comparison);
    notebook 02 shows what they change on the test queries. A database of at most
    ``shortlist`` images is matched entirely; a larger one only on the
    ``shortlist`` images that the colour histogram (:func:`color_hist`)
    ranks first, the rest ranked after them in colour order. The colour
    short list because it costs little (cached, no extra pass over the
    images) and, measured on COIL-100 and the embedded set, keeps more of
    the positives in a short list of the same length than the mean of each
    image's RootSIFT descriptors does. Matching costs about (query
    keypoints) x (keypoints of the images matched) x 128 multiply-adds per
    query, in float32 matrix products.
    """
    fdb, fq, seconds = sift_features(ds, max_features, progress)
    queries, colour_seconds = _sift_first_stage(ds, fdb, fq, ratio, shortlist, progress, "sift_match")
    sims = np.zeros((ds.n_queries, ds.n_db), np.float32)
    for q, *_, scores in queries:
        sims[q] = scores
    return Retrieval(sims, cached_seconds=seconds + colour_seconds)


def _verified_key(ds: Dataset, method: str, **settings) -> dict:
    """The cache key of a spatially verified ranking: the images (their fingerprints and the query boxes),
    the method's ``settings``, OpenCV's version (it extracts the SIFT) and a version for the verification
    code: raise it when :mod:`coursekit.geometry`'s RANSAC or the matching changes."""
    return {"method": method, **dataset_key(ds), **settings, "opencv": cv2.__version__, "version": 2}


def _verify(fq, fdb, q: int, short: np.ndarray, ids: np.ndarray, nn: np.ndarray, d1: np.ndarray, d2: np.ndarray,
            ratio: float, model: str, threshold: float, max_scale: float | None) -> np.ndarray:
    """RANSAC inliers ``(len(short),) int64`` of query ``q`` with each database image of ``short``, from
    the one-to-one matches at ``ratio`` of the nearest descriptors ``(ids, nn, d1, d2)`` as
    :func:`local.nearest_many` returns them (an image of ``short`` missing from ``ids`` has no matches)."""
    matches = local.matches_per_image(ids, nn, local.ratio_mask(nn, d1, d2, ratio), short)
    _, inliers = geometry.spatial_verification(short, fq.keypoints(q), [fdb.keypoints(i) for i in short],
                                               matches, model, threshold, rng=q, max_scale=max_scale)
    return inliers


def sift_ransac(ds: Dataset, max_features: int = 500, ratio: float = 0.7, shortlist: int = 1000,
                top: int = 100, verify_ratio: float = 0.8, model: str = "homography", threshold: float = 5.0,
                max_scale: float | None = 8.0, progress: bool = True) -> Retrieval:
    """:func:`sift_match`, then its top ``top`` re-ranked by RANSAC inliers.

    Spatial verification (Philbin, Chum, Isard, Sivic and Zisserman, CVPR
    2007): a ``model`` (homography or affine) is fitted by RANSAC
    (:func:`coursekit.geometry.ransac`, ``threshold`` in pixels of the
    database image, seeded) to the one-to-one ratio-test matches at
    ``verify_ratio`` of each of the first ``top`` images, and the number of
    inliers becomes their score; the images below keep their
    ``sift_match`` order. Models that are not :func:`coursekit.geometry.plausible`
    (a corner of the query sent through infinity, a fold, an area scaled by
    more than ``max_scale``) count no inliers. The verification takes more
    matches than the first stage (0.8 against 0.7): RANSAC separates the
    right ones, and more of them help it on hard views. ``verify_ratio``
    was chosen on the training splits as :func:`sift_match`'s ratio
    (``bench_local.py --choose``); ``max_scale`` changed little there and
    is kept because it refuses models that no view of a plane produces.
    ``model="affine"`` (3 matches a sample) was about even with the
    homography there and fits by chance more often (any 5 matches give it 3
    inliers); the homography, the model of Philbin et al. and of OpenCV's
    pipeline, stays the default. ``sims`` holds, for
    the re-ranked images, the inlier count plus a fraction below 0.5 that
    keeps the first-stage order among equal counts; ``first_stage`` holds
    the ``sift_match`` similarities.
    """
    key = _verified_key(ds, "sift_ransac", max_features=max_features, ratio=ratio, shortlist=shortlist, top=top,
                        verify_ratio=verify_ratio, model=model, threshold=threshold, max_scale=max_scale)

    def compute() -> dict[str, np.ndarray]:
        fdb, fq, seconds = sift_features(ds, max_features, progress)
        queries, colour_seconds = _sift_first_stage(ds, fdb, fq, ratio, shortlist, progress, "sift_ransac")
        sims = np.zeros((ds.n_queries, ds.n_db), np.float32)
        first_stage = np.zeros((ds.n_queries, ds.n_db), np.float32)
        for q, ids, nn, d1, d2, scores in queries:
            first_stage[q] = scores
            short = np.argsort(-scores, kind="stable")[:top]          # ties in database order, as evaluate ranks them
            inliers = _verify(fq, fdb, q, short, ids, nn, d1, d2, verify_ratio, model, threshold, max_scale)
            sims[q] = _below(scores)
            _rescored(sims[q], short, inliers)
        return {"sims": sims, "first_stage": first_stage, "inner_saved": np.float64(seconds + colour_seconds)}

    # Cached as a whole: verifying the short lists costs more than reading the features it starts from.
    arrays, saved = cached_arrays("verified", key, compute)
    return Retrieval(arrays["sims"], cached_seconds=saved + float(arrays["inner_saved"]),
                     first_stage=arrays["first_stage"])


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
           ratio: float = 0.8, model: str = "homography", threshold: float = 5.0, max_scale: float | None = 8.0,
           progress: bool = True) -> Retrieval:
    """:func:`bow`, then its top ``top`` re-ranked by RANSAC inliers.

    Spatial verification of the short list (Philbin, Chum, Isard, Sivic and
    Zisserman, "Object retrieval with large vocabularies and fast spatial
    matching", CVPR 2007), as in :func:`sift_ransac`: the tentative
    correspondences are the query's descriptors whose nearest neighbour in
    the database image passes Lowe's ratio test at ``ratio``, one per
    database keypoint (Philbin et al. take descriptors that share a visual
    word; with ``k`` in the thousands rather than a million, a shared word
    is a weak correspondence); implausible models count nothing. Scores,
    ``ratio`` and ``max_scale`` as in :func:`sift_ransac`'s verification;
    ``first_stage`` holds the :func:`bow` scores.
    """
    counts_db, counts_q, fdb, fq, seconds = _bow_counts(ds, k, max_features, progress)
    first_stage = bag_of_words.InvertedFile.build(counts_db, alpha).search(counts_q)
    # The short lists come from first_stage, so the key names its digest.
    key = _verified_key(ds, "bow_sv", first_stage=array_digest(first_stage), max_features=max_features, top=top,
                        ratio=ratio, model=model, threshold=threshold, max_scale=max_scale)

    def compute() -> dict[str, np.ndarray]:
        sims = np.zeros_like(first_stage)
        for q in tqdm(range(ds.n_queries), desc="bow_sv: verifying", disable=not progress):
            short = np.argsort(-first_stage[q], kind="stable")[:top]
            ids, nn, d1, d2 = local.nearest_many(fq.descriptors(q), local.pad_features(fdb, short))
            inliers = _verify(fq, fdb, q, short, ids, nn, d1, d2, ratio, model, threshold, max_scale)
            sims[q] = _below(first_stage[q])
            _rescored(sims[q], short, inliers)
        return {"sims": sims}

    arrays, saved = cached_arrays("verified", key, compute)
    return Retrieval(arrays["sims"], cached_seconds=seconds + saved, first_stage=first_stage)


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
    X_db, X_q, X_tr, seconds = aggregated_splits(ds, describe, key, max_features, with_train, progress)
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
    X_db, X_q, X_tr, seconds = aggregated_splits(ds, describe, key, max_features, with_train, progress)
    return Retrieval(X_q @ X_db.T, X_db, X_q, cached_seconds=seconds + s_gmm, X_train=X_tr)
