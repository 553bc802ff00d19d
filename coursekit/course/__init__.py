"""Course tooling: what runs the course, rather than what the course teaches.

No module of the retrieval pipeline imports anything from here (``tests/test_architecture.py`` checks);
only :mod:`coursekit.cli` does.

- :mod:`~coursekit.course.notebooks`: executing the solved notebooks (with stamps: an unchanged notebook is
  not run again) and the prose check :func:`~coursekit.course.notebooks.unprinted_numbers`;
- :mod:`~coursekit.course.report`: ``make course``: what the report measures on each dataset, the benchmarks
  it runs, its Markdown and JSON (:func:`~coursekit.course.report.run_course`);
- :mod:`~coursekit.course.studentify`: the student notebooks, generated from the solved ones;
- :mod:`~coursekit.course.site`: the course as a static web site;
- :mod:`~coursekit.course.grading`: ``python -m coursekit grade``, executing and grading submissions;
- :mod:`~coursekit.course.sandbox` and :mod:`~coursekit.course.remote`: the grader's sandbox, and a
  student's function called in a process of its own.

Import from the modules themselves: this file imports none of them. Several run as
``python -m coursekit.course.NAME``, which imports this package first: in the grader's runner that happens
before the sandbox is entered and before the audit hook fixes which coursekit modules it may use, so this
package loads nothing more than its own name.
"""
