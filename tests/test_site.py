"""``make site``: the course as a static web site, checked in its HTML and in a real headless Chromium.

The fast tests build a site from three tiny notebooks made here (math, a
matplotlib figure, a link between notebooks, one that failed to execute);
the browser tests open its pages in Chromium, driven by playwright, and the
slow test does the same on the real course (executed solutions and student
notebooks). Without a Chromium the browser tests are skipped, saying how to
get one, except under CI (``$CI`` set), where they fail: CI must run them.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit.course import site
from coursekit.cli import main
from coursekit.course.site import MARKER, SiteError, build_site, check_site_dir, remote_resources, rewrite_links

REPO = Path(__file__).resolve().parents[1]
MATH_PER_PAGE = 3  # $x^2$, $x \in \mathbb{R}$ and $$\sum_i a_i$$ in each fixture notebook


# --------------------------------------------------------------------------- fixture notebooks

def _png() -> str:
    """A small matplotlib figure as a notebook's image/png output (base64)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _animation() -> str:
    """A two-frame matplotlib animation as HTML (``to_jshtml``), as notebook 09 shows one: it asks for Font Awesome
    from a CDN, which the site must not load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import animation

    fig, ax = plt.subplots(figsize=(1.5, 1), dpi=40)
    (line,) = ax.plot([0, 1], [0, 1])
    anim = animation.FuncAnimation(fig, lambda i: (line.set_ydata([0, i]), line)[1:], frames=2)
    page = anim.to_jshtml()
    plt.close(fig)
    assert "font-awesome" in page  # else this fixture no longer tests what it is for
    return page


def make_notebooks(root: Path) -> tuple[Path, Path]:
    """``root/executed`` (solved, with outputs) and ``root/students`` (no outputs): 00_a, 01_b, 02_c.

    00_a and 01_b: a title, two sections, inline and displayed math (with a
    double-struck R, whose hidden MathML once made MathJax fetch fonts the site lacks), a
    figure, a link to each other and a name of coursekit's API; 01_b also an
    animation. 02_c failed when it was executed: its one code cell's output is an error.
    """
    executed, students = root / "executed", root / "students"
    executed.mkdir(parents=True)
    students.mkdir(parents=True)
    figure, animation = _png(), _animation()
    for stem, title, other in (("00_a", "00 · Notebook A", "01_b"), ("01_b", "01 · Notebook B", "00_a")):
        for folder in (executed, students):
            code = new_code_cell("plt.plot([0, 1, 2], [0, 1, 4])")
            if folder is executed:
                code.execution_count = 1
                code.outputs = [new_output("display_data", data={"image/png": figure, "text/plain": "<Figure>"})]
                if stem == "01_b":
                    code.outputs.append(new_output("execute_result", execution_count=1, data={
                        "text/html": animation, "text/plain": "<IPython.core.display.HTML object>"}))
            nb = new_notebook(cells=[
                new_markdown_cell(f"# {title}\n\nThe other one is [{other}]({other}.ipynb), its squares are "
                                  f"[there]({other}.ipynb#Squares); we measure with "
                                  "`coursekit.evaluation.average_precision`."),
                new_markdown_cell("## Squares\n\nInline $x^2$ for $x \\in \\mathbb{R}$ and displayed $$\\sum_i a_i$$"),
                code,
                new_markdown_cell("## Further reading\n\nA [web page](https://example.org) is a link, not a resource."),
            ])
            nbformat.write(nb, folder / f"{stem}.ipynb")
    for folder in (executed, students):
        code = new_code_cell("raise ValueError('boom')")
        if folder is executed:
            code.execution_count = 1
            code.outputs = [new_output("error", ename="ValueError", evalue="boom", traceback=["ValueError: boom"])]
        nbformat.write(new_notebook(cells=[new_markdown_cell("# 02 · Notebook C\n\n## Only section"), code]),
                       folder / "02_c.ipynb")
    return executed, students


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory) -> Path:
    """The site of the fixture notebooks, with coursekit's whole API reference (built once: pdoc takes a while)."""
    root = tmp_path_factory.mktemp("site")
    executed, students = make_notebooks(root / "nb")
    index = build_site(root / "site", executed, students)
    assert index == root / "site" / "index.html"
    return root / "site"


@pytest.fixture()
def quick_api(monkeypatch):
    """Skip pdoc (seconds) in tests about the build itself: a one-page stand-in API reference."""
    def write_api(api_dir, modules=("coursekit",)):
        api_dir.mkdir()
        (api_dir / "coursekit.html").write_text("<!DOCTYPE html><title>API</title>")

    monkeypatch.setattr(site, "write_api", write_api)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the HTML

def test_index_lists_every_notebook_with_its_sections(fixture_site):
    index = _read(fixture_site / "index.html")
    for stem, title in (("00_a", "00 · Notebook A"), ("01_b", "01 · Notebook B"), ("02_c", "02 · Notebook C")):
        assert f'href="solutions/{stem}.html">{title}</a>' in index
        assert f'href="notebooks/{stem}.html"' in index
    assert index.index("00 · Notebook A") < index.index("01 · Notebook B") < index.index("02 · Notebook C")
    # the sections link to anchors that the solved page has
    sections = re.findall(r'href="solutions/(\w+)\.html#([^"]+)">([^<]+)</a>', index)
    assert ("00_a", "Squares", "Squares") in sections and ("01_b", "Further-reading", "Further reading") in sections
    assert ("02_c", "Only-section", "Only section") in sections
    for stem, anchor, _ in sections:
        assert f'id="{anchor}"' in _read(fixture_site / "solutions" / f"{stem}.html")
    assert 'href="api/coursekit.html"' in index


def test_every_page_is_there_with_its_title(fixture_site):
    for kind, suffix in (("solutions", "solved"), ("notebooks", "exercises")):
        assert sorted(p.name for p in (fixture_site / kind).iterdir()) == ["00_a.html", "01_b.html", "02_c.html"]
        assert f"<title>01 · Notebook B ({suffix})</title>" in _read(fixture_site / kind / "01_b.html")
    assert (fixture_site / MARKER).is_file()


def test_links_between_notebooks_become_links_between_pages(fixture_site):
    for kind in ("solutions", "notebooks"):
        page = _read(fixture_site / kind / "00_a.html")
        assert 'href="01_b.html">01_b</a>' in page and 'href="01_b.html#Squares"' in page
        assert not re.search(r'href="[^"]*\.ipynb', page)
    assert rewrite_links('<a href="../solutions/03_x.ipynb#s">', ["03_x"]) == '<a href="../solutions/03_x.html#s">'
    assert rewrite_links('<a href="./03_x.ipynb">', ["03_x"]) == '<a href="03_x.html">'
    assert rewrite_links('<a href="99_unknown.ipynb">', ["03_x"]) == '<a href="99_unknown.ipynb">'


def test_coursekit_names_link_to_the_api_reference(fixture_site):
    page = _read(fixture_site / "solutions" / "00_a.html")
    assert ('<a href="../api/coursekit/evaluation.html#average_precision"><code>coursekit.evaluation.average_precision'
            '</code></a>') in page
    assert 'id="average_precision"' in _read(fixture_site / "api" / "coursekit" / "evaluation.html")


def test_navigation_bar(fixture_site):
    def nav(kind, stem):
        page = _read(fixture_site / kind / f"{stem}.html")
        bars = re.findall(r'<nav class="coursekit-nav[^"]*">(.*?)</nav>', page, re.S)
        assert len(bars) == 2 and bars[0] == bars[1]  # top and bottom
        return bars[0]

    first, middle, last = nav("solutions", "00_a"), nav("solutions", "01_b"), nav("notebooks", "02_c")
    assert 'href="../index.html"' in first and 'href="../api/coursekit.html"' in first
    assert 'rel="prev"' not in first and '<a href="01_b.html" rel="next">01 · Notebook B' in first
    assert '<a href="00_a.html" rel="prev">' in middle and '<a href="02_c.html" rel="next">' in middle
    assert 'href="../notebooks/01_b.html"' in middle  # the other version
    assert 'rel="next"' not in last and 'href="../solutions/02_c.html"' in last


def test_figures_are_in_the_solved_pages_only(fixture_site):
    solved = _read(fixture_site / "solutions" / "00_a.html")
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', solved)) == 1
    animated = _read(fixture_site / "solutions" / "01_b.html")
    assert "anim_step" not in solved and "font-awesome" not in animated and ".fa-play::before" in animated
    assert "<img " not in _read(fixture_site / "notebooks" / "00_a.html")


def test_math_is_left_for_mathjax_served_locally(fixture_site):
    page = _read(fixture_site / "solutions" / "00_a.html")
    assert "$x^2$" in page and "$$\\sum_i a_i$$" in page
    assert '<script src="../static/mathjax/MathJax.js?config=' in page
    assert (fixture_site / "static" / "mathjax" / "MathJax.js").is_file()


def test_no_page_loads_anything_from_the_network(fixture_site):
    pages = sorted(fixture_site.rglob("*.html"))
    assert len(pages) > 10  # the notebook pages and the API reference
    local = re.compile(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="(?!data:|#)([^"?#]+)')
    for page in pages:
        html = _read(page)
        assert remote_resources(html) == [], page
        for ref in local.findall(html):  # every local resource is there
            assert (page.parent / ref).resolve().is_file(), f"{page.relative_to(fixture_site)}: {ref} is missing"
    assert 'href="https://example.org"' in _read(fixture_site / "solutions" / "00_a.html")  # a link, allowed


def test_remote_resources_finds_what_a_page_would_fetch():
    page = ('<script src="https://cdn.example/a.js"></script><link rel="stylesheet" href="//fonts.example/b.css">'
            "<img src='http://x.example/c.png'><a href=\"https://example.org\">a link</a><script src=\"local.js\">")
    assert remote_resources(page) == ["https://cdn.example/a.js", "//fonts.example/b.css", "http://x.example/c.png"]


def test_api_reference_from_the_docstrings(fixture_site):
    api = fixture_site / "api"
    assert (api / "coursekit.html").is_file()
    for module, name in (("evaluation", "average_precision"), ("images", "load_image"), ("datasets", "load_dataset"),
                         ("course/site", "build_site")):
        page = _read(api / "coursekit" / f"{module}.html")
        assert f'id="{name}"' in page, f"coursekit/{module}.{name} is not in the API reference"
    # the docstring's text itself, not only the name
    assert "Build the site into" in _read(api / "coursekit" / "course" / "site.html")


def test_a_notebook_that_failed_says_so(fixture_site):
    page = _read(fixture_site / "solutions" / "02_c.html")
    assert 'class="coursekit-error"' in page and "code cell 1: ValueError: boom" in page
    assert 'class="coursekit-error"' not in _read(fixture_site / "solutions" / "00_a.html")
    assert 'class="coursekit-error"' not in _read(fixture_site / "notebooks" / "02_c.html")
    assert "failed to execute for the site (code cell 1: ValueError: boom)" in _read(fixture_site / "index.html")


def test_failures_reported_by_execution_and_missing_notebooks(tmp_path, quick_api):
    executed, students = make_notebooks(tmp_path / "nb")
    (executed / "01_b.ipynb").unlink()
    build_site(tmp_path / "site", executed, students, failed={"00_a.ipynb": "TimeoutError: cell 2 ran 1800 s"})
    assert "TimeoutError: cell 2 ran 1800 s" in _read(tmp_path / "site" / "solutions" / "00_a.html")
    missing = _read(tmp_path / "site" / "solutions" / "01_b.html")
    assert "This notebook was not executed" in missing and "make course executes it" in missing
    assert "Not executed for the site" in _read(tmp_path / "site" / "index.html")
    assert "01 · Notebook B" in _read(tmp_path / "site" / "index.html")  # titled from its student version


def test_refuses_a_folder_it_did_not_make(tmp_path, quick_api):
    executed, students = make_notebooks(tmp_path / "nb")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(SiteError, match="not a site built by coursekit"):
        build_site(mine, executed, students)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SiteError, match="not a folder"):
        check_site_dir(tmp_path / "afile")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine", "nb"]  # no half-built site left


def test_rebuilds_its_own_site_and_an_empty_folder(tmp_path, quick_api):
    executed, students = make_notebooks(tmp_path / "nb")
    out = tmp_path / "site"
    out.mkdir()  # empty: fine
    build_site(out, executed, students)
    (out / "solutions" / "99_stale.html").write_text("from an old build")
    (executed / "02_c.ipynb").unlink()
    (students / "02_c.ipynb").unlink()
    build_site(out, executed, students)
    assert sorted(p.name for p in (out / "solutions").iterdir()) == ["00_a.html", "01_b.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb", "site"]


def test_a_failing_build_keeps_the_previous_site(tmp_path, quick_api, monkeypatch):
    executed, students = make_notebooks(tmp_path / "nb")
    out = tmp_path / "site"
    build_site(out, executed, students)
    monkeypatch.setattr(site, "remote_resources", lambda page: ["https://cdn.example/x.js"])
    with pytest.raises(SiteError, match="must work offline.*cdn.example"):
        build_site(out, executed, students)
    assert (out / "solutions" / "00_a.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb", "site"]


def test_no_notebooks_is_an_error(tmp_path, quick_api):
    (tmp_path / "e").mkdir()
    with pytest.raises(SiteError, match="no notebooks .* make course"):
        build_site(tmp_path / "site", tmp_path / "e", tmp_path / "e")


def test_cli_refuses_before_executing_anything(tmp_path, monkeypatch, capsys):
    import coursekit.course.notebooks

    monkeypatch.setattr(coursekit.course.notebooks, "execute_notebooks", lambda out, timeout: pytest.fail("executed"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(["site", "--out", str(tmp_path / "mine"), "--executed", str(tmp_path / "ex")]) == 2
    assert "not a site built by coursekit" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_cli_executes_then_builds_and_names_failures(tmp_path, monkeypatch, capsys):
    import coursekit.course.notebooks

    calls = {}

    def execute(out, timeout):
        calls["execute"] = (out, timeout)
        return [{"notebook": "00_a.ipynb", "status": "unchanged", "seconds": None},
                {"notebook": "01_b.ipynb", "status": "failed", "error": "cell 3: KeyError: 'x'", "seconds": 1.0}]

    def build(out, executed, students, failed=None):
        calls["build"] = (out, executed, students, failed)
        (out / "solutions").mkdir(parents=True)
        (out / "notebooks").mkdir()
        return out / "index.html"

    monkeypatch.setattr(coursekit.course.notebooks, "execute_notebooks", execute)
    monkeypatch.setattr(site, "build_site", build)
    out, ex = tmp_path / "site", tmp_path / "ex"
    assert main(["site", "--out", str(out), "--executed", str(ex), "--timeout", "60"]) == 1
    assert calls["execute"] == (ex, 60) and ex.is_dir()
    assert calls["build"] == (out, ex, REPO / "notebooks", {"01_b.ipynb": "cell 3: KeyError: 'x'"})
    captured = capsys.readouterr()
    assert "01_b.ipynb FAILED to execute (cell 3: KeyError: 'x')" in captured.err
    assert f"[site] wrote {out}/" in captured.out


# --------------------------------------------------------------------------- in a real browser

def find_chromium() -> str | None:
    """The Chromium to drive: ``$COURSEKIT_CHROMIUM``, else chromium, chromium-browser or google-chrome on PATH."""
    if os.environ.get("COURSEKIT_CHROMIUM"):
        return os.environ["COURSEKIT_CHROMIUM"]
    return next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                None)


def _unavailable(reason: str):
    """Skip, saying how to get what is missing; under CI (``$CI`` set) fail instead: CI must run these tests."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, driven by playwright, for the whole module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]' (or make setup)")
    executable = find_chromium()
    if executable is None:
        _unavailable("no Chromium found: make browser (as root, installs Debian's), sudo apt-get install chromium, "
                     "or set COURSEKIT_CHROMIUM=/path/to/chrome")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable)
        yield chromium
        chromium.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102
        pass


def serve(folder: Path):
    """A local HTTP server on 127.0.0.1 for ``folder``, in a thread; returns (base URL, server)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


_INSPECT = r"""() => {
  const jax = (window.MathJax && MathJax.Hub) ? MathJax.Hub.getAllJax() : [];
  const raw = [];
  for (const md of document.querySelectorAll('.jp-RenderedMarkdown')) {
    const text = md.cloneNode(true);
    text.querySelectorAll('code, pre, script').forEach(e => e.remove());
    raw.push(...(text.textContent.match(/\$[^$\n]+\$/g) || []));
  }
  return {
    images: [...document.images].map(i => ({src: i.src.slice(0, 50), width: i.complete ? i.naturalWidth : 0})),
    formulas: jax.length,
    tex_errors: jax.filter(j => j.texError).map(j => j.originalText),
    rendered: document.querySelectorAll('.MathJax, .MathJax_Display, mjx-container').length,
    error_elements: document.querySelectorAll('.MathJax_Error, .merror, .noError, mjx-merror').length,
    raw_math: raw,
  };
}"""


def check_page(browser, url: str, timeout_ms: int = 30_000) -> tuple[list[str], dict]:
    """Open ``url``, wait for MathJax and the images, and return (problems, what the page shows).

    Problems: console errors, uncaught page errors, failed requests and HTTP
    errors, MathJax missing or never done, images that did not load, formulas
    MathJax could not typeset, error elements, ``$...$`` left raw in the text.
    """
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:120]} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url[:120]}") if r.status >= 400 else None)
    try:
        page.goto(url, wait_until="load", timeout=timeout_ms)
        if page.evaluate("() => !!document.querySelector('script[src*=\"MathJax.js\"]')"):
            if not page.evaluate("() => !!(window.MathJax && MathJax.Hub)"):
                problems.append("MathJax did not load")
            else:
                page.wait_for_function("() => MathJax.isReady === true", timeout=timeout_ms)
                page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
        page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=timeout_ms)
        info = page.evaluate(_INSPECT)
    finally:
        page.close()
    problems += [f"image did not load: {i['src']}" for i in info["images"] if i["width"] <= 0]
    problems += [f"MathJax could not typeset: {t}" for t in info["tex_errors"]]
    if info["error_elements"]:
        problems.append(f"{info['error_elements']} MathJax error elements")
    if info["rendered"] < info["formulas"]:
        problems.append(f"{info['formulas']} formulas but {info['rendered']} rendered")
    problems += [f"raw math left: {m}" for m in info["raw_math"]]
    return problems, info


@pytest.fixture(scope="module")
def served_fixture_site(fixture_site):
    base, server = serve(fixture_site)
    yield base
    server.shutdown()


@pytest.mark.parametrize("how", ["file", "http"])
def test_pages_render_in_chromium(browser, fixture_site, served_fixture_site, how):
    """Every notebook page (and the index) in Chromium, opened from disk and from a local server."""
    start = time.perf_counter()
    pages = sorted(fixture_site.glob("solutions/*.html")) + sorted(fixture_site.glob("notebooks/*.html"))
    for path in pages + [fixture_site / "index.html"]:
        rel = path.relative_to(fixture_site).as_posix()
        url = path.as_uri() if how == "file" else f"{served_fixture_site}/{rel}"
        problems, info = check_page(browser, url)
        assert problems == [], f"{rel}: {problems}"
        if path.stem in ("00_a", "01_b"):
            assert info["formulas"] == MATH_PER_PAGE and info["rendered"] >= MATH_PER_PAGE, rel
            figures = {"solutions/00_a.html": 1, "solutions/01_b.html": 2}.get(rel, 0)  # 01_b: an animation too
            assert len(info["images"]) == figures, rel
    print(f"{len(pages) + 1} pages over {how} in {time.perf_counter() - start:.1f} s")


def test_the_browser_check_sees_broken_math_and_missing_mathjax(browser, fixture_site, tmp_path):
    """The checks can fail: a formula that does not parse, and a site whose MathJax is gone."""
    broken = tmp_path / "site"
    shutil.copytree(fixture_site, broken, ignore=shutil.ignore_patterns("api"))
    page = broken / "solutions" / "00_a.html"
    page.write_text(_read(page).replace("Inline $x^2$", "Inline $\\frac{x}$ and $\\nosuchmacro$"), encoding="utf-8")
    problems, info = check_page(browser, page.as_uri())
    assert any("could not typeset" in p and "frac" in p for p in problems), problems
    assert any("nosuchmacro" in p for p in problems), problems
    assert info["error_elements"] == 2

    (broken / "static" / "mathjax" / "MathJax.js").unlink()
    problems, _ = check_page(browser, (broken / "solutions" / "01_b.html").as_uri())
    assert "MathJax did not load" in problems and any(p.startswith("raw math left: $x^2$") for p in problems)
    assert any("request failed" in p and "MathJax.js" in p for p in problems), problems

    page = broken / "notebooks" / "01_b.html"
    page.write_text(_read(page).replace("</main>", '<img src="nowhere.png"></main>'), encoding="utf-8")
    problems, _ = check_page(browser, page.as_uri())
    assert any(p.startswith("image did not load") for p in problems), problems


# --------------------------------------------------------------------------- the real course

def _expected(nb) -> tuple[int, bool]:
    """(image outputs, whether the markdown has $-math) of a notebook: what its page must show."""
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if {"image/png", "image/jpeg"} & set(o.get("data", {})))
    math = any(re.search(r"\$[^$\n]+\$", c.source) for c in nb.cells if c.cell_type == "markdown")
    return images, math


@pytest.mark.slow
def test_the_course_site_renders_in_chromium(browser, tmp_path):
    """The real thing: the executed solutions (build/course, executed here if needed) and the student notebooks."""
    from coursekit.course.notebooks import execute_notebooks

    executed = REPO / "build" / "course"
    executed.mkdir(parents=True, exist_ok=True)
    records = execute_notebooks(executed, timeout=1800)
    failed = [r for r in records if r["status"] == "failed"]
    assert not failed, f"solution notebooks failed to execute: {failed}"

    start = time.perf_counter()
    out = tmp_path / "site"
    build_site(out, executed, REPO / "notebooks", failed={r["notebook"]: r["error"] for r in failed})
    built = time.perf_counter() - start
    stems = sorted(p.stem for p in (REPO / "solutions").glob("[0-9][0-9]*.ipynb"))
    assert len(stems) >= 10
    index = _read(out / "index.html")
    for stem in stems:
        assert f'href="solutions/{stem}.html"' in index and f'href="notebooks/{stem}.html"' in index

    base, server = serve(out)
    try:
        start = time.perf_counter()
        for kind, source in (("solutions", executed), ("notebooks", REPO / "notebooks")):
            for stem in stems:
                assert (source / f"{stem}.ipynb").is_file(), f"{source / stem}.ipynb is missing (make notebooks)"
                images, math = _expected(nbformat.read(source / f"{stem}.ipynb", as_version=4))
                page = _read(out / kind / f"{stem}.html")
                assert remote_resources(page) == [], f"{kind}/{stem}.html"
                assert 'class="coursekit-error"' not in page, f"{kind}/{stem}.html"
                problems, info = check_page(browser, f"{base}/{kind}/{stem}.html", timeout_ms=60_000)
                assert problems == [], f"{kind}/{stem}.html: {problems}"
                assert sum(i["width"] > 0 for i in info["images"]) >= images, f"{kind}/{stem}.html: figures missing"
                assert info["formulas"] > 0 or not math, f"{kind}/{stem}.html: its math was not typeset"
        problems, _ = check_page(browser, f"{base}/index.html")
        assert problems == [], problems
        print(f"site built in {built:.0f} s; {2 * len(stems) + 1} pages checked in Chromium in "
              f"{time.perf_counter() - start:.0f} s")
    finally:
        server.shutdown()
