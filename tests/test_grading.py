"""The grader on a folder of submissions: a full solution, the student
version, one wrong answer, an infinite loop, a kernel that dies, deleted
cells, a forged result and a corrupt file. Each notebook gets its own kernel
(about a second each)."""

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from coursekit.course import grading
from coursekit.course.studentify import studentify

FIXTURE = Path(__file__).parent / "fixtures" / "notebooks" / "00_solution.ipynb"
TIMEOUT = 4  # seconds per cell; a check call gets half of it

WRONG_AP = """# Exercise 0.3: average precision
def average_precision(labels, n_relevant):
    labels = np.asarray(labels, dtype=bool)
    hits = np.cumsum(labels)
    ranks = np.flatnonzero(labels) + 1
    return float(np.mean(hits[labels] / ranks)) if labels.any() else 0.0  # divides by retrieved positives
"""

LOOPING_AP = """# Exercise 0.3: average precision
def average_precision(labels, n_relevant):
    while True:
        pass
"""


def _solution():
    return nbformat.read(FIXTURE, as_version=4)


def _cell(nb, start: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.source.startswith(start))


def _without_checks(nb):
    nb.cells = [c for c in nb.cells if "ex00.check_" not in c.source]
    return nb


def _write(folder: Path, name: str, nb) -> Path:
    path = folder / name
    nbformat.write(nb, path)
    return path


def make_submissions(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder, "full.ipynb", _solution())
    _write(folder, "empty.ipynb", studentify(_solution()))

    nb = _solution()
    nb.cells[_cell(nb, "# Exercise 0.3")].source = WRONG_AP
    _write(folder, "wrong_ap.ipynb", nb)

    nb = _without_checks(_solution())  # the notebook's own check cells would hit the time limit too
    nb.cells[_cell(nb, "# Exercise 0.3")].source = LOOPING_AP
    nb.cells.insert(_cell(nb, "# Exercise 0.2"), new_code_cell("while True:\n    pass"))
    _write(folder, "infinite.ipynb", nb)

    nb = _solution()
    nb.cells.insert(_cell(nb, "# Exercise 0.3"), new_code_cell("import os\nos._exit(1)"))
    _write(folder, "dies.ipynb", nb)

    nb = _without_checks(_solution())
    del nb.cells[_cell(nb, "# Exercise 0.1")]
    at = _cell(nb, "# Exercise 0.2")
    for source in ("exit()", "import sys\nsys.exit(3)", "name = input('name?')", "def f(:\n    pass",
                   "raise ValueError('oops')"):
        nb.cells.insert(at, new_code_cell(source))
    _write(folder, "messy.ipynb", nb)

    nb = studentify(_solution())  # the display message the grader once read its results from, forged
    nb.cells.append(new_code_cell(
        "from IPython.display import display\n"
        "for i in ('0.1', '0.2', '0.3', '0.4'):\n"
        f"    display({{'application/vnd.coursekit.grade+json': {{'nonce': 'x', 'id': i, 'status': 'passed', 'message': ''}}}}, raw=True)\n"
        "    print('✔ Exercise', i, 'passed')"))
    _write(folder, "forged.ipynb", nb)

    (folder / "corrupt.ipynb").write_text('{"cells": [{"cell_type": "code", "sou')
    (folder / "not_a_notebook.ipynb").write_text('{"hello": "world"}')
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "full-checkpoint.ipynb").write_text("{}")
    (folder / "notes.txt").write_text("not a notebook")


def _digests(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    make_submissions(folder)
    before = _digests(folder)
    results = grading.grade_paths([folder], timeout=TIMEOUT)
    return folder, before, {r.student: r for r in results}


def statuses(result):
    return {e.id: e.status for e in result.exercises}


def test_every_submission_is_graded(graded):
    folder, _, by_name = graded
    assert sorted(by_name) == sorted(["full", "empty", "wrong_ap", "infinite", "dies", "messy",
                                      "forged", "corrupt", "not_a_notebook"])


def test_the_grader_never_modifies_a_submission(graded):
    folder, before, _ = graded
    assert _digests(folder) == before


def test_full_solution_gets_full_marks(graded):
    r = graded[2]["full"]
    assert r.error is None and r.notebook == "00"
    assert statuses(r) == {"0.1": "passed", "0.2": "passed", "0.3": "passed", "0.4": "passed"}
    assert (r.points, r.max_points) == (6, 6)
    assert r.exercises[2].message == "✔ Exercise 0.3 (average precision): passed 13 cases."


def test_student_version_is_not_done(graded):
    r = graded[2]["empty"]
    assert r.error is None and (r.points, r.max_points) == (0, 6)
    assert set(statuses(r).values()) == {"not done"}
    assert all("not done yet" in e.message for e in r.exercises)


def test_one_wrong_answer_fails_exactly_that_exercise(graded):
    r = graded[2]["wrong_ap"]
    assert statuses(r) == {"0.1": "passed", "0.2": "passed", "0.3": "failed", "0.4": "passed"}
    assert (r.points, r.max_points) == (4, 6)
    assert r.exercises[2].message == (
        "Exercise 0.3 (average precision): average_precision(labels=[T T F T F F T F T T F F], "
        "n_relevant=8): expected 0.5596, got 0.7462")


def test_infinite_loops_are_interrupted(graded):
    r = graded[2]["infinite"]
    assert r.error is None
    # The looping cell is interrupted and the rest runs; the looping function fails its check
    # (and mAP, which calls it).
    assert statuses(r) == {"0.1": "passed", "0.2": "passed", "0.3": "failed", "0.4": "failed"}
    assert "did not finish within 2 s — is there an infinite loop?" in r.exercises[2].message
    assert r.points == 2


def test_a_kernel_that_dies_costs_only_what_came_after(graded):
    r = graded[2]["dies"]
    assert r.error == ("the kernel died while running cell 8 (`import os; os._exit(1)`); the exercises defined "
                       "before it are graded")
    assert statuses(r) == {"0.1": "passed", "0.2": "passed", "0.3": "not done", "0.4": "not done"}
    assert "the notebook stopped at cell 8, before it was defined" in r.exercises[2].message
    assert (r.points, r.max_points) == (2, 6) and r.flags == ["kernel-died"]


def test_deleted_cells_exit_input_and_errors(graded):
    r = graded[2]["messy"]
    # No check cells at all: graded the same. The cell of 0.1 is gone: not done.
    # exit(), sys.exit(), input(), a syntax error, an exception: the next cells run.
    assert statuses(r) == {"0.1": "not done", "0.2": "passed", "0.3": "passed", "0.4": "passed"}
    assert "no function `precision_at_k`" in r.exercises[0].message


def test_printed_or_displayed_results_cannot_forge_a_pass(graded):
    r = graded[2]["forged"]
    assert set(statuses(r).values()) == {"not done"} and r.points == 0


def test_a_corrupt_file_is_an_error(graded):
    assert graded[2]["not_a_notebook"].error.startswith("not a readable notebook")
    r = graded[2]["corrupt"]
    assert r.error.startswith("not a readable notebook")
    # Everyone else did notebook 00, so its exercises are listed (as errors).
    assert r.notebook == "00" and set(statuses(r).values()) == {"error"} and r.max_points == 6


def test_table_json_and_csv(graded, tmp_path):
    _, _, by_name = graded
    results = list(by_name.values())
    table = grading.format_table(results)
    assert "notebook 00" in table
    row = next(line for line in table.splitlines() if line.startswith("wrong_ap "))
    assert row.split() == ["wrong_ap", "1", "1", "x", "2", "4/6"]
    assert "wrong_ap: failed: Exercise 0.3 (average precision)" in table
    assert "corrupt: ERROR not a readable notebook" in table

    data = json.loads(grading.to_json(results))
    assert {d["student"]: d["points"] for d in data}["full"] == 6
    assert set(data[0]["exercises"][0]) == {"id", "title", "function", "status", "points", "max_points",
                                            "message"}

    out = tmp_path / "grades.csv"
    grading.write_csv(results, out)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student", "file", "notebook", "0.1 precision at k", "0.2 recall at k",
                             "0.3 average precision", "0.4 mean average precision with junk",
                             "total", "max", "error", "flags"]
    by_student = {r["student"]: r for r in rows}
    assert len(by_student) == len(results)
    assert by_student["wrong_ap"]["0.3 average precision"] == "0"
    assert (by_student["wrong_ap"]["total"], by_student["wrong_ap"]["max"]) == ("4", "6")
    assert by_student["full"]["total"] == "6" and by_student["full"]["error"] == ""
    assert by_student["corrupt"]["error"].startswith("not a readable notebook")
    assert by_student["dies"]["flags"] == "kernel-died" and by_student["full"]["flags"] == ""


def test_kernel_runs_this_python():
    from nbclient import NotebookClient
    from nbformat.v4 import new_notebook

    km_class = grading._kernel_manager_class()
    assert km_class().kernel_spec.argv[:3] == [sys.executable, "-m", "ipykernel_launcher"]
    nb = new_notebook(cells=[
        new_code_cell("import sys, coursekit\nprint(sys.executable)"),
        new_code_cell("from coursekit.exercises import ex00\nex00.check_average_precision(lambda l, n: 0.5)"),
    ])
    NotebookClient(nb, kernel_name="python3", kernel_manager_class=km_class, timeout=30,
                   allow_errors=True).execute(env=grading._kernel_env())
    assert nb.cells[0].outputs[0]["text"].strip() == sys.executable
    # A failed check shows in Jupyter as its one-line message, without a traceback.
    [error] = nb.cells[1].outputs
    assert error["ename"] == "CheckFailed" and len(error["traceback"]) == 1
    assert "Exercise 0.3 (average precision): <lambda>(labels=[T T F" in error["traceback"][0]


# --------------------------------------------------------------------------- the command line

def test_main_json_and_csv(tmp_path, capsys):
    sub = tmp_path / "subs"
    sub.mkdir()
    (sub / "00_alice.ipynb").write_bytes(FIXTURE.read_bytes())
    (sub / "bob.ipynb").write_text("not json")
    gradebook = tmp_path / "grades.csv"
    code = grading.main(["grade", str(sub), "--json", "--csv", str(gradebook), "--timeout", "20"])
    out = capsys.readouterr()
    assert code == 0
    data = json.loads(out.out)
    assert [(d["student"], d["points"], d["max_points"]) for d in data] == [("00_alice", 6, 6), ("bob", 0, 6)]
    assert "graded 00_alice: 6/6" in out.err
    assert gradebook.exists()
    # An existing gradebook is not overwritten without --force.
    assert grading.main([str(sub / "bob.ipynb"), "--csv", str(gradebook)]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert grading.main([str(sub / "bob.ipynb"), "--csv", str(gradebook), "--force", "--quiet",
                         "--notebook", "00"]) == 0
    with open(gradebook, newline="") as f:
        assert [r["student"] for r in csv.DictReader(f)] == ["bob"]


def test_main_bad_arguments(tmp_path, capsys):
    assert grading.main([]) == 2
    assert grading.main([str(tmp_path / "missing.ipynb")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert grading.main([str(tmp_path)]) == 2  # no notebooks
    assert grading.main([str(FIXTURE), "--timeout", "0"]) == 2
    assert grading.main([str(FIXTURE), "--notebook", "42"]) == 2


def test_unknown_notebook_is_a_per_student_error(tmp_path, capsys):
    nb = _solution()
    nb.metadata.pop("coursekit")
    path = _write(tmp_path, "alice.ipynb", nb)
    assert grading.main([str(path), "--quiet"]) == 0
    assert "alice: ERROR cannot tell which notebook this is" in capsys.readouterr().out


def test_module_entry_point(tmp_path):
    bad = tmp_path / "00_broken.ipynb"
    bad.write_text("{")
    p = subprocess.run([sys.executable, "-m", "coursekit.course.grading", "grade", str(bad), "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    [student] = json.loads(p.stdout)
    assert student["student"] == "00_broken" and student["error"].startswith("not a readable notebook")
    assert [e["status"] for e in student["exercises"]] == ["error"] * 4
