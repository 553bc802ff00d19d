"""Student notebooks generated from the solutions: blocks replaced, the rest verbatim."""

import copy
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit.exercises import NotDone
from coursekit.course.studentify import (
    StudentifyError, generate, is_up_to_date, main, render, repo_dirs, stale, studentify,
    studentify_source,
)

FIXTURE = Path(__file__).parent / "fixtures" / "notebooks" / "00_solution.ipynb"


# --------------------------------------------------------------------------- one cell

def test_block_becomes_a_raise_at_its_indentation():
    source = (
        "# Exercise 0.3: average precision\n"
        "def average_precision(labels, n_relevant):\n"
        "    \"\"\"Docstring kept.\"\"\"\n"
        "    ### BEGIN SOLUTION\n"
        "    hits = np.cumsum(labels)\n"
        "    return hits\n"
        "    ### END SOLUTION\n"
        "\n"
        "# a comment after, kept"
    )
    assert studentify_source(source) == (
        "# Exercise 0.3: average precision\n"
        "def average_precision(labels, n_relevant):\n"
        "    \"\"\"Docstring kept.\"\"\"\n"
        "    raise NotImplementedError(\"Exercise 0.3: average precision\")\n"
        "\n"
        "# a comment after, kept"
    )


def test_end_on_the_last_line_and_nested_indentation():
    source = ("# Exercise 1.2: loop\nfor x in xs:\n    if x:\n        ### BEGIN SOLUTION\n"
              "        y = x\n        ### END SOLUTION")
    assert studentify_source(source) == (
        "# Exercise 1.2: loop\nfor x in xs:\n    if x:\n"
        "        raise NotImplementedError(\"Exercise 1.2: loop\")")


def test_stated_stub_replaces_the_block():
    source = ("# Exercise 2.1: histogram\ndef hist(x, bins):\n    ### BEGIN SOLUTION\n"
              "    ### STUB h = ...  # a (bins,) histogram\n"
              "    ### STUB\n"
              "    h = np.bincount(x, minlength=bins)\n    ### END SOLUTION\n    return h\n")
    assert studentify_source(source) == (
        "# Exercise 2.1: histogram\ndef hist(x, bins):\n    h = ...  # a (bins,) histogram\n\n    return h\n")


def test_two_blocks_in_one_cell_and_the_nearest_header():
    source = ("# Exercise 0.1: a\ndef a():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
              "# Exercise 0.2: b\ndef b():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\n")
    out = studentify_source(source)
    assert 'raise NotImplementedError("Exercise 0.1: a")' in out
    assert 'raise NotImplementedError("Exercise 0.2: b")' in out
    assert "return 1" not in out and "return 2" not in out


def test_cells_without_markers_are_verbatim():
    source = "x = 1  # ### not a marker\n\n\ty = '### BEGIN SOLUTION is only a marker alone on its line'\n"
    assert studentify_source(source) == source


@pytest.mark.parametrize("source, match", [
    ("# Exercise 0.1: a\n### BEGIN SOLUTION\nx = 1\n", "without '### END SOLUTION'"),
    ("# Exercise 0.1: a\nx = 1\n### END SOLUTION\n", "'### END SOLUTION' without"),
    ("# Exercise 0.1: a\n### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
    ("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n", "without an exercise"),
])
def test_unpaired_markers_are_errors(source, match):
    with pytest.raises(StudentifyError, match=match):
        studentify_source(source)


def test_errors_name_the_notebook_and_the_cell():
    nb = new_notebook(cells=[new_code_cell("x = 1"),
                             new_code_cell("# Exercise 0.1: a\n### BEGIN SOLUTION\nx = 2\n")])
    nb.cells[1]["id"] = "abc"
    with pytest.raises(StudentifyError, match=r"^00_x\.ipynb, cell 2 \(id abc\), line 2: '### BEGIN SOLUTION' without '### END"):
        studentify(nb, "00_x.ipynb")
    nb = new_notebook(cells=[new_markdown_cell("### BEGIN SOLUTION\nanswer\n### END SOLUTION")])
    with pytest.raises(StudentifyError, match="cell 1.*markdown cell"):
        studentify(nb, "00_x.ipynb")


# --------------------------------------------------------------------------- one notebook

def test_studentify_the_fixture():
    solution = nbformat.read(FIXTURE, as_version=4)
    solution.cells[1].outputs = [new_output("stream", name="stdout", text="hello\n")]
    solution.cells[1].execution_count = 3
    before = copy.deepcopy(solution)
    student = studentify(solution, FIXTURE.name)
    assert solution == before  # pure
    assert student.metadata == solution.metadata
    assert len(student.cells) == len(solution.cells)
    for s, c in zip(solution.cells, student.cells):
        assert c.cell_type == s.cell_type and c.get("id") == s.get("id") and c.metadata == s.metadata
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
        if "### BEGIN SOLUTION" not in s.source:
            assert c.source == s.source
        else:
            assert "### " not in c.source and "NotImplementedError(\"Exercise 0." in c.source
            inside = s.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            for line in inside.splitlines():
                if line.strip():
                    assert line not in c.source.splitlines()


def _namespace(nb) -> dict:
    ns: dict = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "check_" not in cell.source:
            exec(compile(cell.source, "<cell>", "exec"), ns)
    return ns


def test_solution_passes_and_student_version_is_not_done():
    solution = nbformat.read(FIXTURE, as_version=4)
    sol, stu = _namespace(solution), _namespace(studentify(solution))
    checks = {e.function: e.check for e in ex00_exercises()}
    for name, check in checks.items():
        assert check(sol[name], quiet=True) is None  # passing is not raising
        with pytest.raises(NotDone):
            check(stu[name])


def ex00_exercises():
    from coursekit.exercises import EXERCISES
    return EXERCISES["00"]


def test_rendered_text_is_stable_and_valid():
    text = render(FIXTURE)
    assert text == render(FIXTURE) and text.endswith("\n")
    nbformat.validate(nbformat.reads(text, as_version=4))


# --------------------------------------------------------------------------- folders

@pytest.fixture
def repo(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / FIXTURE.name).write_bytes(FIXTURE.read_bytes())
    (tmp_path / "solutions" / "notes.txt").write_text("not a notebook")
    return tmp_path / "solutions", tmp_path / "notebooks"


def test_generate_writes_only_the_student_notebooks(repo, tmp_path):
    solutions, notebooks = repo
    before = {p: p.read_bytes() for p in solutions.iterdir()}
    assert not is_up_to_date(solutions, notebooks)
    assert stale(solutions, notebooks) == [f"{notebooks / FIXTURE.name} is missing (generated from "
                                           f"{solutions / FIXTURE.name})"]
    assert generate(solutions, notebooks) == [notebooks / FIXTURE.name]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [FIXTURE.name, FIXTURE.name, "notes.txt"])
    assert {p: p.read_bytes() for p in solutions.iterdir()} == before
    assert is_up_to_date(solutions, notebooks)
    # Nothing to do the second time: the file is not even touched.
    os.utime(notebooks / FIXTURE.name, (1, 1))
    assert generate(solutions, notebooks) == []
    assert (notebooks / FIXTURE.name).stat().st_mtime == 1


def test_stale_after_an_edit_of_the_solution(repo):
    solutions, notebooks = repo
    generate(solutions, notebooks)
    nb = nbformat.read(solutions / FIXTURE.name, as_version=4)
    nb.cells[0].source += "\nOne more line."
    nbformat.write(nb, solutions / FIXTURE.name)
    assert [s.endswith(f"is out of date with {solutions / FIXTURE.name}") for s in stale(solutions, notebooks)] == [True]
    assert generate(solutions, notebooks) == [notebooks / FIXTURE.name]
    assert is_up_to_date(solutions, notebooks)
    (notebooks / "99_orphan.ipynb").write_text("{}")
    assert stale(solutions, notebooks) == [f"{notebooks / '99_orphan.ipynb'} has no source in {solutions}"]


def test_generate_refuses_to_overwrite_a_worked_in_notebook(repo):
    solutions, notebooks = repo
    generate(solutions, notebooks)
    target = notebooks / FIXTURE.name
    nb = nbformat.read(target, as_version=4)
    nb.cells[1].execution_count = 1
    nbformat.write(nb, target)
    worked = target.read_bytes()
    (solutions / FIXTURE.name).write_text(
        (solutions / FIXTURE.name).read_text().replace("A tiny solution", "A small solution"))
    with pytest.raises(StudentifyError, match="has outputs"):
        generate(solutions, notebooks)
    assert target.read_bytes() == worked
    assert generate(solutions, notebooks, force=True) == [target]
    assert is_up_to_date(solutions, notebooks)


def test_generate_refuses_the_same_folder(repo):
    solutions, _ = repo
    with pytest.raises(StudentifyError, match="different folders"):
        generate(solutions, solutions)


# --------------------------------------------------------------------------- this repository

def test_repository_notebooks_are_up_to_date():
    """notebooks/ must be exactly what `make notebooks` generates from solutions/."""
    solutions, notebooks = repo_dirs()
    problems = stale(solutions, notebooks)
    assert not problems, "notebooks/ is out of date, run `make notebooks`:\n" + "\n".join(problems)


def test_main(repo, monkeypatch, capsys):
    solutions, notebooks = repo
    monkeypatch.setattr("coursekit.course.studentify.repo_dirs", lambda: (solutions, notebooks))
    assert main(["--check"]) == 1
    assert "is missing" in capsys.readouterr().out
    assert main([]) == 0
    assert capsys.readouterr().out == f"wrote {notebooks / FIXTURE.name}\n"
    assert main(["--check"]) == 0
    assert main([]) == 0
    assert "up to date" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--bogus"])
