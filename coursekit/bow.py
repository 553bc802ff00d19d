"""Bag of visual words: quantise local descriptors, count words, search an inverted file.

The text-retrieval view of images (Sivic and Zisserman, "Video Google: a text
retrieval approach to object matching in videos", ICCV 2003):

1. a **vocabulary** of ``K`` visual words: the centroids of k-means on
   training descriptors (:func:`train_vocabulary`);
2. each descriptor is replaced by the id of its nearest word (:func:`assign`)
   and an image becomes the histogram of its words: a sparse ``(K,)`` vector
   of counts (:func:`word_counts`);
3. counts are weighted by **tf-idf**: a word that occurs in every image says
   nothing (:func:`idf`, :func:`tfidf`), and L2-normalised;
4. the database is stored as an **inverted file**: for each word, the list
   of images that contain it. Scoring a query touches only the lists of its
   own words, which is why it is fast when ``K`` is large and images are
   sparse (Nister and Stewenius, CVPR 2006; Philbin et al., CVPR 2007).

Here the inverted file is a ``scipy.sparse`` matrix: ``(N, K)`` in CSR form is
the images' word lists, its transpose ``(K, N)`` in CSR form is the posting
lists, and ``Q @ D.T`` is inverted-file scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["train_vocabulary", "assign", "word_counts", "idf", "tfidf", "burstiness", "InvertedFile",
           "training_descriptors", "dataset_vocabulary"]


def train_vocabulary(X: np.ndarray, k: int, seed: int = 0, batch_size: int = 4096, max_iter: int = 50) -> np.ndarray:
    """Visual words: k-means centroids of training descriptors.

    ``X (M, D) float32`` -> ``(k, D) float32``. Uses scikit-learn's
    ``MiniBatchKMeans`` (Sculley, WWW 2010), seeded. On one thread: its
    products are thin, and with two threads on a busy 2-core machine they
    ran several times slower than on one (threads waiting for a core).
    """
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] < k:
        raise ValueError(f"need at least k={k} training descriptors (M, D), got shape {X.shape}")
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size, max_iter=max_iter,
                         n_init=1, init="k-means++")
    with threadpool_limits(1):
        km.fit(X)
    return km.cluster_centers_.astype(np.float32)


def assign(X: np.ndarray, C: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Nearest centroid of each descriptor: ``X (M, D)``, ``C (K, D)`` -> ``(M,) int64``.

    Uses ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2``; ``||x||^2`` is the same
    for every ``c`` and drops out of the argmin. In chunks of rows, so
    ``(chunk, K)`` distances fit in memory.
    """
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    if X.ndim != 2 or C.ndim != 2 or X.shape[1] != C.shape[1]:
        raise ValueError(f"X (M, D) and C (K, D) must share D, got {X.shape} and {C.shape}")
    c2 = (C * C).sum(axis=1)
    out = np.empty(len(X), dtype=np.int64)
    for s in range(0, len(X), chunk):
        # for each x: argmin_k ||x - c_k||^2
        out[s:s + chunk] = np.argmin(c2[None, :] - 2.0 * (X[s:s + chunk] @ C.T), axis=1)
    return out


def word_counts(words: list[np.ndarray], k: int) -> sp.csr_matrix:
    """Term frequencies: one row per image, ``(N, k)`` sparse ``float32`` counts.

    ``words[i]`` holds the word ids of image ``i``'s descriptors.
    """
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    rows = np.repeat(np.arange(len(words)), lengths)
    cols = np.concatenate([np.asarray(w, dtype=np.int64) for w in words]) if len(words) else np.zeros(0, np.int64)
    data = np.ones(rows.size, dtype=np.float32)
    m = sp.csr_matrix((data, (rows, cols)), shape=(len(words), k))  # duplicates are summed
    m.sum_duplicates()
    return m


def idf(counts: sp.spmatrix) -> np.ndarray:
    """Inverse document frequency ``log(N / n_k)`` of each word: ``(K,) float32``.

    ``counts (N, K)``: the database's term frequencies; ``n_k`` is the number
    of database images that contain word ``k``. A word in no image gets 0 (it
    can never match).
    """
    counts = sp.csr_matrix(counts)
    n = counts.shape[0]
    n_k = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)  # images per word
    with np.errstate(divide="ignore"):
        w = np.where(n_k > 0, np.log(n / np.maximum(n_k, 1)), 0.0)
    return w.astype(np.float32)


def burstiness(counts: sp.spmatrix, alpha: float = 0.5) -> sp.csr_matrix:
    """Power-law on term frequencies, ``tf -> tf^alpha``: a word repeated many
    times in one image (a brick wall, a window grid) no longer dominates its
    score (Jegou, Douze and Schmid, "On the burstiness of visual elements",
    CVPR 2009). ``alpha = 1`` leaves counts unchanged.
    """
    out = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    out.data = np.power(out.data, alpha, dtype=np.float32)
    return out


def tfidf(counts: sp.spmatrix, weights: np.ndarray) -> sp.csr_matrix:
    """tf-idf vectors, L2-normalised: ``(N, K)`` sparse ``float32``.

    ``counts (N, K)`` term frequencies; ``weights (K,)`` from :func:`idf`.
    The dot product of two rows is their cosine similarity. (Raw counts are
    used as tf; dividing by the number of words in the image would not
    change the normalised vector.)
    """
    m = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    m.data *= np.asarray(weights, dtype=np.float32)[m.indices]
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    m.data /= np.maximum(norms[row_of], 1e-12)
    return m


@dataclass
class InvertedFile:
    """The database as posting lists: for each word, the images that hold it.

    ``postings``: ``(K, N)`` CSR matrix of tf-idf weights (row ``k`` is word
    ``k``'s posting list). Build it with :meth:`build`; :meth:`search` scores
    queries by accumulating over the posting lists of their words only.
    """

    postings: sp.csr_matrix
    weights: np.ndarray
    alpha: float = 1.0

    @classmethod
    def build(cls, counts: sp.spmatrix, alpha: float = 1.0) -> InvertedFile:
        """From the database's term frequencies ``(N, K)``; ``alpha < 1``
        applies the burstiness power law to tf."""
        tf = burstiness(counts, alpha) if alpha != 1.0 else sp.csr_matrix(counts, dtype=np.float32)
        w = idf(counts)
        postings = tfidf(tf, w).T.tocsr()
        postings.eliminate_zeros()  # a word in every image has idf 0: its list would add nothing
        return cls(postings, w, alpha)

    @property
    def n_db(self) -> int:
        return self.postings.shape[1]

    def query_vectors(self, counts: sp.spmatrix) -> sp.csr_matrix:
        """Queries' term frequencies ``(Q, K)`` -> their tf-idf vectors, with the database's idf."""
        tf = burstiness(counts, self.alpha) if self.alpha != 1.0 else counts
        return tfidf(tf, self.weights)

    def search(self, counts: sp.spmatrix) -> np.ndarray:
        """Cosine similarity of each query to each database image: ``(Q, N) float32``.

        Sparse times sparse: the cost grows with the lengths of the posting
        lists of the query's words, not with ``K`` times ``N``.
        """
        q = self.query_vectors(counts)
        if q.shape[1] != self.postings.shape[0]:
            raise ValueError(f"queries have {q.shape[1]} words, the inverted file {self.postings.shape[0]}")
        return self.score(q)

    def score(self, q: sp.csr_matrix) -> np.ndarray:
        """Scores of already weighted queries ``(Q, K)``: accumulate, for each
        word of each query, its weight times the word's posting list."""
        return (q @ self.postings).toarray().astype(np.float32, copy=False)


# --------------------------------------------------------------------------- learned on a dataset

def training_descriptors(ds, n_sample: int = 100_000, seed: int = 0, progress: bool = True):
    """A seeded sample of RootSIFT descriptors from the dataset's training split,
    ``(M, 128) float32``, and a dict naming where they came from (for cache keys).

    Datasets without a training split (SMVS, UKBench...) fall back to their
    database images, as early BoW papers learned vocabularies on the
    collection itself; the returned dict says which was used.
    """
    from .cache import files_fingerprint
    from .local import MAX_FEATURES, MAX_SIZE, extract_sift, rootsift

    paths = ds.train if ds.train else ds.db
    feats, _ = extract_sift(paths, progress=progress, desc=f"sift: {ds.name} training")
    X = feats.desc
    if len(X) == 0:
        raise ValueError(f"the {len(paths)} {'training' if ds.train else 'database'} images of {ds.name!r} have no "
                         "SIFT keypoints (flat images?): a vocabulary or a GMM cannot be learned from them")
    if len(X) > n_sample:
        X = X[np.sort(np.random.default_rng(seed).choice(len(X), n_sample, replace=False))]
    source = {"dataset": ds.name, "split": "train" if ds.train else "db", "files": files_fingerprint(paths),
              "n_sample": n_sample, "seed": seed, "sift": [MAX_FEATURES, MAX_SIZE]}
    return rootsift(X.astype(np.float32)), source


def dataset_vocabulary(ds, k: int, seed: int = 0, n_sample: int = 100_000, progress: bool = True):
    """A visual vocabulary of ``k`` words for ``ds``, learned on its training
    split (see :func:`training_descriptors`) and cached on disk.

    Returns ``C (k, 128) float32`` and the seconds the cache saved. k-means
    runs 10 passes of mini-batches of 8192: on the embedded set's 100k
    descriptors and k = 4000 this reaches the inertia of 50 passes of 4096
    in much less time.
    """
    from .cache import cached_arrays

    X, source = training_descriptors(ds, n_sample, seed, progress)
    if len(X) < k:
        raise ValueError(f"a vocabulary of k={k} words needs at least {k} training descriptors; the "
                         f"{source['split']} images of {ds.name!r} gave {len(X)}: pass a smaller k")
    key = {"what": "vocabulary", "k": k, "source": source, "version": 1}
    arrays, saved = cached_arrays("vocabulary", key,
                                  lambda: {"C": train_vocabulary(X, k, seed, batch_size=8192, max_iter=10)})
    return arrays["C"], saved
