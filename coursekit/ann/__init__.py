"""Nearest-neighbour search: exact, trees, hashing, quantization, inverted files.

Every index has the same small interface (:class:`Index`)::

    index = IVFPQIndex(nlist=256, M=16, nprobe=8, seed=0).train(X_train)
    index.add(X_db)                      # (N, D) float32, ids 0 .. N - 1
    D, I = index.search(X_q, k=10)       # (Q, k) float32 distances, (Q, k) int64 ids, nearest first
    index.memory_per_vector              # bytes kept per database vector

| class | module | idea | memory per vector | faiss |
|---|---|---|---|---|
| :class:`ExactIndex` | ``exact`` | compare with every vector (L2 or inner product) | ``4 D`` | ``IndexFlatL2`` |
| :class:`KDTreeIndex` | ``kdtree`` | k-d tree, exact or with a budget of leaves; randomised forests (Friedman et al. 1977; Silpa-Anan and Hartley 2008) | ``4 D`` + tree | (scikit-learn ``KDTree``) |
| :class:`LSHIndex` | ``lsh`` | random-hyperplane codes, Hamming ranking, several tables, exact re-ranking (Charikar 2002) | ``n_tables * n_bits / 8`` (+ ``4 D`` to re-rank) | ``IndexLSH`` |
| :class:`VQIndex` | ``pq`` | one k-means codebook: a vector is its centroid's id | 1 or 2 | -- |
| :class:`PQIndex` | ``pq`` | product quantization, ADC or SDC (Jegou et al. 2011) | ``M nbits / 8`` | ``IndexPQ`` |
| :class:`OPQIndex` | ``pq`` | PQ after a learned rotation (Ge et al. 2013) | ``M nbits / 8`` | ``OPQMatrix`` + ``IndexPQ`` |
| :class:`IVFPQIndex` | ``pq`` | IVF-ADC: coarse k-means, residual PQ, ``nprobe`` lists (Jegou et al. 2011) | ``M nbits / 8 + 8`` | ``IndexIVFPQ`` |
| :class:`MultiIndexPQIndex` | ``multi_index`` | inverted multi-index, ``K^2`` cells (Babenko and Lempitsky 2012) | ``M nbits / 8 + 8`` | ``IMI2xK,PQMnp`` |
| :class:`LOPQIndex` | ``lopq`` | IVF with one OPQ per list (Kalantidis and Avrithis 2014) | ``M nbits / 8 + 8`` | -- |

The functions the exercises of notebook 06 are checked against:
:func:`lsh_codes` (LSH codes), :func:`pq_encode` (PQ encoding),
:func:`adc_tables` (the ADC lookup table), with :func:`adc_distances` and
:func:`pq_decode` beside them. Measuring: :func:`recall_at`,
:func:`true_neighbours`, :func:`evaluate_index`, :func:`sweep` (recall
against time as a search parameter varies), :func:`build_index` (what
``python -m coursekit evaluate --index`` builds); test data:
:func:`synthetic_vectors`.

Implementation: numpy and scipy, vectorised (no Python loop over database
vectors; the k-d tree search loops over tree nodes), seeded. k-means
(:func:`kmeans`) follows faiss's defaults so that comparisons with faiss
train alike; :mod:`coursekit.ann.compare` builds the same configurations
in faiss and measures both (``benchmarks/bench_ann.py`` prints the table).
"""

from .base import Index, as_vectors, kmeans, nearest_centroid, squared_distances, top_k
from .evaluate import INDEX_KINDS, build_index, evaluate_index, recall_at, sweep, synthetic_vectors, true_neighbours
from .exact import ExactIndex
from .kdtree import KDTreeIndex, build_kdtree
from .lopq import LOPQIndex
from .lsh import LSHIndex, hamming_distances, hamming_distances_lut, lsh_codes, random_hyperplanes
from .multi_index import MultiIndexPQIndex, multi_index_cells
from .pq import (IVFPQIndex, OPQIndex, PQIndex, VQIndex, adc_distances, adc_tables, eigenvalue_allocation, ivf_scan,
                 pq_decode, pq_encode, procrustes, sdc_tables, train_codebooks, train_opq)

__all__ = [
    "Index", "ExactIndex", "KDTreeIndex", "LSHIndex", "VQIndex", "PQIndex", "OPQIndex", "IVFPQIndex",
    "MultiIndexPQIndex", "LOPQIndex",
    "as_vectors", "kmeans", "nearest_centroid", "squared_distances", "top_k", "build_kdtree",
    "random_hyperplanes", "lsh_codes", "hamming_distances", "hamming_distances_lut",
    "train_codebooks", "pq_encode", "pq_decode", "adc_tables", "sdc_tables", "adc_distances", "train_opq",
    "procrustes", "eigenvalue_allocation",
    "ivf_scan", "multi_index_cells",
    "recall_at", "true_neighbours", "evaluate_index", "sweep", "synthetic_vectors", "INDEX_KINDS", "build_index",
]
