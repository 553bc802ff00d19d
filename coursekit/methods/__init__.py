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
``sift_match``     RootSIFT matches passing Lowe's ratio test, one per keypoint, counted (notebook 02)
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

The package by job: :mod:`~coursekit.methods.features` (what every method is built on),
:mod:`~coursekit.methods.handcrafted` (notebooks 01-04), :mod:`~coursekit.methods.cnn` (notebooks 07-08),
:mod:`~coursekit.methods.table` (the one table that declares each method, and the lists derived from it) and
:mod:`~coursekit.methods.running` (running a method by name, whitened, re-ranked or indexed, and measuring it).
Every name is importable from here, as ``from coursekit.methods import gem``.
"""

from __future__ import annotations

from .cnn import CNN_SIZE, MULTI_SCALE, crow, fc, gem, gem_finetuned, gem_ms, mac, rmac, spoc
from .features import Retrieval, extract_global, extract_train, query_image, sift_features
from .handcrafted import bow, bow_sv, color_hist, color_inter, fisher, gist, sift_match, sift_ransac, vlad
from .running import (RERANKINGS, evaluate_method, index_ranks, neighbour_recall, rerank_settings, reranked, run_method,
                      whitened)
from .table import (CNN_METHODS, GLOBAL_METHODS, METHODS, PHOTO_METHODS, TABLE, WHITENED_METHODS, Method,
                    describe_methods)

__all__ = ["Retrieval", "METHODS", "GLOBAL_METHODS", "describe_methods", "query_image", "extract_global",
           "extract_train", "sift_features",
           "color_hist", "color_inter", "gist", "sift_match", "sift_ransac", "bow", "bow_sv", "vlad", "fisher",
           "fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms", "whitened", "RERANKINGS", "reranked", "rerank_settings", "run_method",
           "index_ranks", "neighbour_recall", "evaluate_method",
           "gem_finetuned", "CNN_SIZE", "MULTI_SCALE", "Method", "TABLE", "WHITENED_METHODS", "PHOTO_METHODS",
           "CNN_METHODS"]
