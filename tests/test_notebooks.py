"""The student notebooks, run as the grader runs them.

(The solution notebooks run under nbval, collected from ``solutions/``:
any cell that raises, a failed check included, fails the suite.)
"""

from pathlib import Path

import pytest

from coursekit.grading import grade_notebook

REPO = Path(__file__).resolve().parents[1]
STUDENT_NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert STUDENT_NOTEBOOKS, "notebooks/ is empty: run `make notebooks`"
    assert len(STUDENT_NOTEBOOKS) == len(list((REPO / "solutions").glob("[0-9][0-9]_*.ipynb")))


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
