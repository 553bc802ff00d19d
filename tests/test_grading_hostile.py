"""The grader against students who cheat and submissions that attack: verdicts are computed where the
student's code never runs, submissions cannot see or touch each other, and the gradebook is safe to open.

Each case is a notebook 00 built from the fixture solution; every one is graded once, in one module
fixture (a few seconds each), and the tests read the results.
"""

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from coursekit.course import grading, sandbox
from coursekit.course.studentify import studentify

FIXTURE = Path(__file__).parent / "fixtures" / "notebooks" / "00_solution.ipynb"
TIMEOUT = 6
FULL = {"0.1": "passed", "0.2": "passed", "0.3": "passed", "0.4": "passed"}
needs_landlock = pytest.mark.skipif(not sandbox.landlock_abi(), reason="this kernel has no Landlock")


def _solution():
    return nbformat.read(FIXTURE, as_version=4)


def _cell(nb, start: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.source.startswith(start))


def _statuses(result):
    return {e.id: e.status for e in result.exercises}


def _student_with(*sources: str, solved: bool = False):
    """The student version (or the solution) with cells appended."""
    nb = _solution() if solved else studentify(_solution())
    nb.cells += [new_code_cell(s) for s in sources]
    return nb


IMPORTS_THE_REFERENCE = """
from coursekit.evaluation import precision_at_k, recall_at_k, mean_average_precision
import coursekit.evaluation
def average_precision(labels, n_relevant):
    return coursekit.evaluation.average_precision(labels, n_relevant)
"""

SILENCES_THE_CHECKS = """
import coursekit.exercises as ce
class _Quiet:
    def __init__(self, ex): self.ex = ex
    def check(self, fn, **kw): print('✔ passed')
_real = ce.exercise
ce.exercise = lambda i: _Quiet(_real(i))
for ex in [e for l in ce.EXERCISES.values() for e in l]:
    object.__setattr__(ex, 'check', lambda fn, **kw: print('✔ passed'))
def precision_at_k(labels, k): return 0.0
def recall_at_k(labels, k, n_relevant): return 0.0
def average_precision(labels, n_relevant): return 0.0
def mean_average_precision(ranks, gnd): return 0.0
"""

PATCHES_ON_FIRST_CALL = """
def _patch():
    import numpy as np, builtins
    from coursekit.exercises import check
    check.Checker.case = lambda self, *a, **k: None
    check.compare = lambda *a, **k: None
    np.isclose = lambda *a, **k: np.ones(1, bool)
    np.allclose = lambda *a, **k: True
    builtins.float = lambda *a: 0.0
def precision_at_k(labels, k): _patch(); return 0.0
def recall_at_k(labels, k, n_relevant): _patch(); return 0.0
def average_precision(labels, n_relevant): _patch(); return 0.0
def mean_average_precision(ranks, gnd): _patch(); return 0.0
"""

USES_A_WRAPPER_OF_THE_REFERENCE = """
from coursekit import evaluation
def mean_average_precision(ranks, gnd):   # evaluation.mean_average_precision calls the reference of 0.3
    return evaluation.mean_average_precision(ranks, gnd)
def average_precision(labels, n_relevant):
    import importlib, sys
    try:
        importlib.reload(sys.modules['coursekit.evaluation'])      # the sandbox refuses to read the source
    except Exception:
        pass
    return sys.modules['coursekit.evaluation'].average_precision(labels, n_relevant)
"""

COPIES_THE_REFERENCE_CODE = """
import types, coursekit.evaluation as ev
ref = ev.average_precision
average_precision = types.FunctionType(ref.__code__, ev.__dict__, 'average_precision', ref.__defaults__)
"""

HOSTILE_FUNCTIONS = """
import os
def precision_at_k(labels, k):
    os._exit(3)
def recall_at_k(labels, k, n_relevant):
    while True:
        pass
def average_precision(labels, n_relevant):
    import numpy as np
    big = np.ones(30 * 2**30, dtype=np.uint8)    # 30 GB
    return 0.0
def mean_average_precision(ranks, gnd):
    import subprocess
    subprocess.run(['true'])
    return 0.0
"""

def _functions_that_reach_out(neighbour: Path, outside: Path) -> str:
    return f"""
def precision_at_k(labels, k):
    import json
    cells = json.load(open({str(neighbour)!r}))['cells']     # the neighbour's notebook, at call time
    return 0.0
def recall_at_k(labels, k, n_relevant):
    open({str(outside)!r}, 'w').write('pwned')
    return 0.0
"""


IGNORES_SIGINT = """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
"""


def _reads_neighbour(neighbour: Path) -> str:
    # Copy the neighbour's solution of 0.3, by the absolute path a hostile student could find.
    return f"""
import json
cells = json.load(open({str(neighbour)!r}))['cells']
exec(next(''.join(c['source']) for c in cells if ''.join(c['source']).startswith('# Exercise 0.3')))
"""


def _writes_outside(outside: Path, beside: Path) -> str:
    return f"""
for target in ({str(outside)!r},):
    try:
        open(target, 'w').write('pwned')
    except OSError as e:
        print('refused', e)
import os, glob
for path in glob.glob({str(beside.parent)!r} + '/*.ipynb'):
    try:
        open(path, 'w').write('{{}}')        # over every classmate's submission
    except OSError:
        pass
for path in [{str(beside)!r}] + glob.glob('*') + glob.glob('../*.ipynb'):
    try:
        os.remove(path)
    except OSError:
        pass
"""


def _starts_daemons(marker: str) -> str:
    return f"""
import os, subprocess, sys
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}], start_new_session=True)
if os.fork() == 0:           # a classic double-forked daemon
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])
    os._exit(0)
"""


def _processes_with(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _digests(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    outside = tmp_path_factory.mktemp("elsewhere")
    marker = f"coursekit-daemon-{os.getpid()}-{time.time_ns()}"
    nbformat.write(_solution(), folder / "honest.ipynb")
    beside = folder / "zz_victim.ipynb"
    nbformat.write(_solution(), beside)
    (outside / "keep.txt").write_text("mine")
    cases = {
        "imports": _student_with(IMPORTS_THE_REFERENCE),
        "silences": _student_with(SILENCES_THE_CHECKS),
        "patches": _student_with(PATCHES_ON_FIRST_CALL),
        "wrapper": _student_with(USES_A_WRAPPER_OF_THE_REFERENCE, solved=True),
        "copies_code": _student_with(COPIES_THE_REFERENCE_CODE, solved=True),
        "hostile_functions": _student_with(HOSTILE_FUNCTIONS),
        "reads_neighbour": _student_with(_reads_neighbour(folder / "honest.ipynb")),
        "functions_reach_out": _student_with(_functions_that_reach_out(folder / "honest.ipynb",
                                                                       outside / "pwned_by_function.txt")),
        "writes_outside": _student_with(_writes_outside(outside / "pwned.txt", beside), solved=True),
        "daemons": _student_with(_starts_daemons(marker), solved=True),
        "dies_last": _student_with("import os\nos._exit(1)", solved=True),
        "ignores_sigint": _student_with(IGNORES_SIGINT, "x = 1", "y = 2", solved=True),
        "allocates_30gb": _student_with("import numpy as np\nbig = np.ones(30 * 2**30, np.uint8)", solved=True),
    }
    first_code = _solution()
    del first_code.cells[0]                          # the markdown title: now the first cell is code
    cases["first_cell_code"] = first_code
    if not sandbox.landlock_abi():   # without Landlock an absolute path reaches the disk: attack nothing real
        for name in ("reads_neighbour", "functions_reach_out", "writes_outside"):
            del cases[name]
    for name, nb in cases.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    before = _digests(folder)
    outside_before = _digests(outside)
    start = time.monotonic()
    results = grading.grade_paths([folder], timeout=TIMEOUT, jobs=2)
    seconds = time.monotonic() - start
    return {"results": {r.student: r for r in results}, "folder": folder, "before": before, "outside": outside,
            "outside_before": outside_before, "marker": marker, "seconds": seconds}


def test_importing_coursekits_reference_earns_nothing(hostile):
    r = hostile["results"]["imports"]
    assert _statuses(r) == {"0.1": "failed", "0.2": "failed", "0.3": "failed", "0.4": "failed"}
    assert r.points == 0
    assert r.exercises[2].message == ("Exercise 0.3 (average precision): `average_precision` calls coursekit's "
                                      "reference `coursekit.evaluation.average_precision`; write it yourself")
    assert "reference:0.1" in r.flags and "reference:0.4" in r.flags


def test_silencing_the_checks_in_the_kernel_changes_no_verdict(hostile):
    r = hostile["results"]["silences"]
    assert set(_statuses(r).values()) == {"failed"} and r.points == 0
    assert "expected" in r.exercises[0].message


def test_patching_the_checker_numpy_and_builtins_at_call_time_changes_no_verdict(hostile):
    r = hostile["results"]["patches"]
    assert set(_statuses(r).values()) == {"failed"} and r.points == 0


def test_a_coursekit_function_that_wraps_the_reference_or_a_reload_is_refused(hostile):
    r = hostile["results"]["wrapper"]
    assert _statuses(r) == {"0.1": "passed", "0.2": "passed", "0.3": "failed", "0.4": "failed"}
    assert "calls coursekit's reference `coursekit.evaluation.average_precision`" in r.exercises[2].message
    assert "calls coursekit's reference `coursekit.evaluation.mean_average_precision`" in r.exercises[3].message


def test_running_the_references_own_code_is_refused(hostile):
    r = hostile["results"]["copies_code"]
    assert _statuses(r)["0.3"] == "failed"
    assert "runs the code of coursekit's reference" in r.exercises[2].message


def test_a_crash_a_loop_a_huge_allocation_or_a_process_in_a_function_cost_only_that_exercise(hostile):
    r = hostile["results"]["hostile_functions"]
    assert r.error is None
    by_id = {e.id: e for e in r.exercises}
    assert by_id["0.1"].status == "error" and "crashed the process running it" in by_id["0.1"].message
    assert by_id["0.2"].status == "failed" and "did not finish within" in by_id["0.2"].message
    assert by_id["0.3"].status == "failed" and "raised MemoryError" in by_id["0.3"].message
    assert by_id["0.4"].status == "failed" and "does not allow subprocess.Popen" in by_id["0.4"].message


@needs_landlock
def test_a_submission_cannot_read_a_neighbour(hostile):
    r = hostile["results"]["reads_neighbour"]
    assert r.points == 0 and _statuses(r)["0.3"] == "not done"
    assert any(e["ename"] == "PermissionError" for e in r.cell_errors)


@needs_landlock
def test_a_function_cannot_read_a_neighbour_or_write_outside_when_called(hostile):
    r = hostile["results"]["functions_reach_out"]
    by_id = {e.id: e for e in r.exercises}
    assert by_id["0.1"].status == "failed" and "raised PermissionError" in by_id["0.1"].message
    assert by_id["0.2"].status == "failed" and "raised PermissionError" in by_id["0.2"].message
    assert not (hostile["outside"] / "pwned_by_function.txt").exists()


@needs_landlock
def test_a_submission_cannot_write_or_delete_outside_its_scratch_folder(hostile):
    assert _digests(hostile["outside"]) == hostile["outside_before"]
    assert not (hostile["outside"] / "pwned.txt").exists()
    assert _statuses(hostile["results"]["writes_outside"]) == FULL


@needs_landlock
def test_the_graded_folder_is_unchanged_byte_for_byte(hostile):
    assert _digests(hostile["folder"]) == hostile["before"]
    assert _statuses(hostile["results"]["zz_victim"]) == FULL
    assert _statuses(hostile["results"]["honest"]) == FULL


def test_no_process_of_a_submission_outlives_grading(hostile):
    assert _processes_with(hostile["marker"]) == []
    assert _statuses(hostile["results"]["daemons"]) == FULL


def test_a_kernel_that_dies_after_the_exercises_costs_nothing(hostile):
    r = hostile["results"]["dies_last"]
    assert _statuses(r) == FULL and r.points == 6
    assert r.error.startswith("the kernel died while running cell 12") and "kernel-died" in r.flags


def test_a_cell_that_ignores_the_interrupt_costs_one_time_limit(hostile):
    r = hostile["results"]["ignores_sigint"]
    assert _statuses(r) == FULL
    assert "ignored the interrupt" in r.error and "stopped" in r.flags
    assert r.seconds < TIMEOUT + 30


def test_a_30_gb_allocation_fails_in_its_cell_and_the_notebook_goes_on(hostile):
    r = hostile["results"]["allocates_30gb"]
    assert _statuses(r) == FULL and r.error is None
    assert [e["ename"] for e in r.cell_errors] == ["MemoryError"]


def test_every_cell_runs_when_the_first_cell_is_code(hostile):
    r = hostile["results"]["first_cell_code"]
    assert _statuses(r) == FULL and r.cell_errors == []


def test_the_sandbox_decodes_plain_values_only():
    import pickle

    from coursekit.course import remote

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match="plain values only"):
        remote.decode(pickle.dumps(Evil()))
    import numpy as np
    value = {"a": (np.arange(3, dtype=np.int16), [1.5, None]), "b": np.float32(2)}
    back = remote.decode(pickle.dumps(remote.encode(value)))
    assert back["a"][0].dtype == np.int16 and back["a"][0].tolist() == [0, 1, 2] and back["b"] == 2


# --------------------------------------------------------------------------- output and memory

def test_a_cell_that_prints_300_mb_does_not_grow_the_grader(tmp_path):
    nb = _student_with("import sys\nfor _ in range(30):\n    sys.stdout.write('x' * 10_000_000)\n",
                       solved=True)
    path = tmp_path / "00_loud.ipynb"
    nbformat.write(nb, path)
    # VmHWM is this process's own peak: ru_maxrss would carry over the peak of the (large) pytest
    # process that forked it, since Linux keeps it across exec.
    code = ("from coursekit.course import grading\n"
            f"r = grading.grade_notebook({str(path)!r}, timeout=60)\n"
            "status = open('/proc/self/status').read()\n"
            "print(r.points, int(status.split('VmHWM:')[1].split()[0]) // 1024)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    points, peak_mb = p.stdout.split()
    assert points == "6"
    assert int(peak_mb) < 250, f"the grader's peak memory was {peak_mb} MB"  # about 120 MB for any notebook


# --------------------------------------------------------------------------- the gradebook

def test_the_gradebook_is_safe_to_open(tmp_path):
    bad_name = os.fsdecode(b"caf\xe9")            # Latin-1 bytes: not UTF-8
    results = [
        grading.StudentResult("=HYPERLINK(\"http://x\")", "=a.ipynb", "00", error="-1+1"),
        grading.StudentResult(bad_name, bad_name + ".ipynb", "00",
                              exercises=[grading.ExerciseResult("0.1", "precision at k", "precision_at_k",
                                                                "failed", 0, 1, "boom \x1b[31mred\x1b[0m")]),
        grading.StudentResult("@sum\tx", "b.ipynb", "00"),
    ]
    out = tmp_path / "grades.csv"
    grading.write_csv(results, out)
    raw = out.read_bytes()
    assert b"caf\xe9" in raw                      # the name's own bytes: nothing lost
    with open(out, newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = list(csv.DictReader(f))
    assert [r["student"] for r in rows] == ["'=HYPERLINK(\"http://x\")", bad_name, "'@sum\tx"]
    assert rows[0]["file"] == "'=a.ipynb" and rows[0]["error"] == "'-1+1"
    assert list(rows[0])[-1] == "flags"
    table = grading.format_table(results)
    assert "\x1b" not in table and "\\x1b[31mred" in table and "caf\\xe9" in table
    data = json.loads(grading.to_json(results))
    assert data[1]["student"] == bad_name and data[1]["exercises"][0]["message"].startswith("boom \x1b")


def test_a_missing_gradebook_folder_is_an_error_before_grading(tmp_path, capsys):
    code = grading.main([str(FIXTURE), "--csv", str(tmp_path / "no" / "such" / "grades.csv")])
    assert code == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_a_non_utf8_file_name_is_graded_and_written(tmp_path, capsys):
    folder = tmp_path / "subs"
    folder.mkdir()
    name = os.fsdecode(b"00_\xe9l\xe8ve.ipynb")
    (folder / name).write_bytes(FIXTURE.read_bytes())
    gradebook = tmp_path / "grades.csv"
    assert grading.main([str(folder), "--csv", str(gradebook), "--quiet", "--timeout", "20"]) == 0
    assert b"00_\xe9l\xe8ve" in gradebook.read_bytes()
    assert not list(tmp_path.glob("*.tmp"))
    assert "00_\\xe9l\\xe8ve" in capsys.readouterr().out
