"""Every notebook, run as the grader runs it.

The student notebooks: every narrative cell runs, and every exercise is "not done". The solved
notebooks: every cell runs and every exercise earns full marks, with its verdict computed in the
grader's process from the function copied out of the kernel (:mod:`coursekit.course.remote`). That is also
the suite's run of the solutions: a cell that raises fails it.
"""

from pathlib import Path

import pytest

from coursekit.course.grading import grade_notebook

REPO = Path(__file__).resolve().parents[1]
STUDENT_NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLVED_NOTEBOOKS = sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert STUDENT_NOTEBOOKS, "notebooks/ is empty: run `make notebooks`"
    assert len(STUDENT_NOTEBOOKS) == len(SOLVED_NOTEBOOKS)


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.stem for p in STUDENT_NOTEBOOKS])
def test_student_notebook_runs_with_every_exercise_not_done(path):
    result = grade_notebook(path, timeout=900)
    assert result.error is None, result.error
    assert result.exercises, "no exercises found for this notebook"
    for ex in result.exercises:
        assert ex.status == "not done", f"{ex.id}: {ex.status}: {ex.message}"
    assert result.points == 0
    # Narrative cells run: the only failures are the exercises' own stubs and their checks.
    unexpected = [e for e in result.cell_errors if e["ename"] not in ("NotImplementedError", "NotDone")]
    assert not unexpected, unexpected


@pytest.mark.parametrize("path", SOLVED_NOTEBOOKS, ids=[p.stem for p in SOLVED_NOTEBOOKS])
def test_solved_notebook_runs_and_earns_full_marks(path):
    result = grade_notebook(path, timeout=900)
    assert result.error is None, result.error
    assert result.cell_errors == [], result.cell_errors
    not_passed = [(e.id, e.status, e.message) for e in result.exercises if e.status != "passed"]
    assert not not_passed, not_passed
    assert result.exercises and result.points == result.max_points and result.flags == []
