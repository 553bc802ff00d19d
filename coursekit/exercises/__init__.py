"""The course's autograded exercises: every exercise, its points and its check.

:data:`EXERCISES` is the one place where exercises and their points are
declared: notebook id -> list of :class:`Exercise`. A notebook says which
list is its own with its metadata ``{"coursekit": {"notebook": "00"}}``; a
notebook without it is known by its file name (``00_retrieval.ipynb`` -> "00").

In a notebook, students call the checks directly::

    from coursekit.exercises.ex00 import check_average_precision
    check_average_precision(average_precision)

and ``python -m coursekit grade`` (:mod:`coursekit.course.grading`) runs the same
checks on submissions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from . import ex00, ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10
from .check import CheckFailed, Checker, Exercise, NotDone, call_student, compare

__all__ = [
    "EXERCISES", "Exercise", "CheckFailed", "NotDone", "Checker", "call_student", "compare",
    "exercise", "notebook_id", "exercises_for",
]

EXERCISES: dict[str, list[Exercise]] = {
    "00": [
        Exercise("0.1", "precision at k", "precision_at_k", 1, ex00.check_precision_at_k,
                 references=("coursekit.evaluation.precision_at_k",)),
        Exercise("0.2", "recall at k", "recall_at_k", 1, ex00.check_recall_at_k,
                 references=("coursekit.evaluation.recall_at_k",)),
        Exercise("0.3", "average precision", "average_precision", 2, ex00.check_average_precision,
                 references=("coursekit.evaluation.average_precision",)),
        Exercise("0.4", "mean average precision with junk", "mean_average_precision", 2,
                 ex00.check_mean_average_precision,
                 references=("coursekit.evaluation.mean_average_precision",)),
    ],
    "01": [
        Exercise("1.1", "joint colour histogram", "joint_histogram", 2, ex01.check_joint_histogram,
                 references=("coursekit.color.joint_histogram",)),
        Exercise("1.2", "chi-squared distance", "chi2_distance", 1, ex01.check_chi2_distance,
                 references=("coursekit.color.chi2_distance",)),
        Exercise("1.3", "histogram intersection", "histogram_intersection", 1, ex01.check_histogram_intersection,
                 references=("coursekit.color.histogram_intersection",)),
    ],
    "02": [
        Exercise("2.1", "RootSIFT", "rootsift", 1, ex02.check_rootsift,
                 references=("coursekit.local.rootsift",)),
        Exercise("2.2", "Lowe's ratio test", "ratio_test", 2, ex02.check_ratio_test,
                 references=("coursekit.local.ratio_test",)),
        Exercise("2.3", "RANSAC for a homography", "ransac_homography", 3, ex02.check_ransac_homography,
                 references=("coursekit.geometry.ransac",)),
    ],
    "03": [
        Exercise("3.1", "idf weights", "idf_weights", 2, ex03.check_idf_weights,
                 references=("coursekit.bow.idf",)),
        Exercise("3.2", "scoring through the inverted file", "inverted_file_scores", 2,
                 ex03.check_inverted_file_scores,
                 references=("coursekit.bow.InvertedFile.score",)),
        Exercise("3.3", "burstiness: power law, idf, L2", "burstiness_tfidf", 2, ex03.check_burstiness_tfidf,
                 references=("coursekit.bow.burstiness", "coursekit.bow.tfidf")),
    ],
    "04": [
        Exercise("4.1", "VLAD aggregation", "vlad", 2, ex04.check_vlad,
                 references=("coursekit.aggregation.vlad",)),
        Exercise("4.2", "the Fisher vector's mean gradient", "fisher_mean_gradient", 3,
                 ex04.check_fisher_mean_gradient,
                 references=("coursekit.aggregation.fisher_vector",)),
    ],
    "05": [
        Exercise("5.1", "PCA-whitening: fit", "fit_whitening", 3, ex05.check_fit_whitening,
                 references=("coursekit.whitening.fit_pca_whitening",)),
        Exercise("5.2", "PCA-whitening: apply", "apply_whitening", 2, ex05.check_apply_whitening,
                 references=("coursekit.whitening.Whitening.apply",)),
    ],
    "06": [
        Exercise("6.1", "LSH codes", "lsh_codes", 2, ex06.check_lsh_codes,
                 references=("coursekit.ann.lsh_codes",)),
        Exercise("6.2", "PQ encoding", "pq_encode", 2, ex06.check_pq_encode,
                 references=("coursekit.ann.pq_encode",)),
        Exercise("6.3", "the ADC lookup table", "adc_table", 2, ex06.check_adc_table,
                 references=("coursekit.ann.adc_tables",)),
    ],
    "07": [
        Exercise("7.1", "MAC pooling", "mac", 1, ex07.check_mac,
                 references=("coursekit.cnn.pooling.mac",)),
        Exercise("7.2", "SPoC pooling with its centring prior", "spoc", 2, ex07.check_spoc,
                 references=("coursekit.cnn.pooling.spoc",)),
        Exercise("7.3", "GeM pooling", "gem", 2, ex07.check_gem,
                 references=("coursekit.cnn.pooling.gem",)),
        Exercise("7.4", "the R-MAC region grid", "rmac_regions", 3, ex07.check_rmac_regions,
                 references=("coursekit.cnn.pooling.rmac_regions",)),
        Exercise("7.5", "the CroW weights", "crow_weights", 2, ex07.check_crow_weights,
                 references=("coursekit.cnn.pooling.crow_channel_weights", "coursekit.cnn.pooling.crow_spatial_weights")),
    ],
    "08": [
        Exercise("8.1", "the contrastive loss", "contrastive_loss", 2, ex08.check_contrastive_loss,
                 references=("coursekit.learning.losses.contrastive_loss",)),
        Exercise("8.2", "the triplet loss", "triplet_loss", 2, ex08.check_triplet_loss,
                 references=("coursekit.learning.losses.triplet_loss",)),
        Exercise("8.3", "hard negatives, one per label", "hard_negatives", 3, ex08.check_hard_negatives,
                 references=("coursekit.learning.mining.hard_negatives",)),
    ],
    "09": [
        Exercise("9.1", "average query expansion", "average_query_expansion", 2, ex09.check_average_query_expansion,
                 references=("coursekit.rerank.average_query_expansion",)),
        Exercise("9.2", "the normalised affinity", "normalized_affinity", 2, ex09.check_normalized_affinity,
                 references=("coursekit.rerank.normalized_affinity",)),
        Exercise("9.3", "conjugate gradient", "conjugate_gradient", 3, ex09.check_conjugate_gradient,
                 references=("coursekit.rerank.conjugate_gradient",)),
    ],
    "10": [
        Exercise("10.1", "what index add must embed", "plan_update", 2, ex10.check_plan_update,
                 references=("coursekit.photo_search.plan_update",)),
        Exercise("10.2", "the top k by dot product", "top_k", 2, ex10.check_top_k,
                 references=("coursekit.photo_search.top_k",)),
    ],
}


def exercise(ex_id: str) -> Exercise:
    """The exercise with this id ("0.3")."""
    for exercises in EXERCISES.values():
        for ex in exercises:
            if ex.id == ex_id:
                return ex
    raise KeyError(f"no exercise {ex_id!r}")


_PREFIX = re.compile(r"^(\d\d)(?:[_\-. ]|$)")


def notebook_id(metadata: Mapping | None = None, path: str | Path | None = None) -> str | None:
    """The notebook id ("00") from its metadata ``coursekit.notebook``, else
    from its file name prefix ``00_``; ``None`` when neither says."""
    meta = (metadata or {}).get("coursekit") or {}
    if isinstance(meta, Mapping) and meta.get("notebook") is not None:
        return str(meta["notebook"])
    if path is not None:
        m = _PREFIX.match(Path(path).name)
        if m:
            return m.group(1)
    return None


def exercises_for(metadata: Mapping | None = None, path: str | Path | None = None) -> list[Exercise]:
    """The exercises of a notebook (an empty list for a notebook without any)."""
    nb_id = notebook_id(metadata, path)
    return list(EXERCISES.get(nb_id, [])) if nb_id is not None else []
