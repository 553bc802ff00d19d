"""The course as a static web site (``make site``, ``python -m coursekit site``).

:func:`build_site` writes, into one folder that it owns::

    index.html                 the table of contents: each notebook's title (its first ``# `` heading)
                               and sections (its ``## `` headings), linking to both versions
    solutions/NN_name.html     the executed solution notebooks, figures and all
    notebooks/NN_name.html     the student notebooks, as a student gets them
    api/                       coursekit's API reference, rendered from its docstrings by pdoc
    static/mathjax/            MathJax 2.7, copied from the ``jupyter-server-mathjax`` package

The site works offline (a classroom may have no internet): pages are made by
nbconvert's ``HTMLExporter`` with its ``lab`` template, minus everything it
would load from a CDN (require.js, MathJax, mermaid, the widget manager),
with MathJax served from ``static/``; figures are embedded in the pages, and
the icons of matplotlib's animations are drawn without Font Awesome.
:func:`remote_resources` finds any resource a page would still fetch from
the network, and :func:`build_site` refuses to finish a site that has one.

Links written as ``NN_name.ipynb`` in a notebook's markdown become links to
the page of that notebook, and inline code naming coursekit
(```coursekit.whitening.fit_pca```) becomes a link into the API reference.
Every notebook page has a navigation bar: the index, the previous and the
next notebook, the other version of this one, the API reference.

A solution notebook that failed to execute still gets its page, headed by
the error (which cell, which exception), never silently missing.

The folder is rewritten on each build, so :func:`check_site_dir` refuses one
that is neither empty nor a previous build (told apart by the marker file
:data:`MARKER`): nothing a user made is ever removed.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..cache import atomic_write

__all__ = ["SiteError", "MARKER", "TITLE", "build_site", "check_site_dir", "mathjax_source", "notebook_headings",
           "rewrite_links", "remote_resources", "offline_icons", "notebook_errors", "write_api"]

MARKER = ".coursekit-site"
TITLE = "Content-based image retrieval: a course in notebooks"
NOTEBOOKS = "[0-9][0-9]*.ipynb"
PACKAGE = Path(__file__).resolve().parents[1]

# MathJax's combined configuration that jupyter-server-mathjax ships (its fonts are STIX-Web, HTML-CSS output)
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"


class SiteError(Exception):
    """The site cannot be built: the message names the problem and the fix."""


# --------------------------------------------------------------------------- the output folder

def check_site_dir(out: Path) -> None:
    """Refuse an output folder that :func:`build_site` must not rewrite.

    It may be absent, empty, or a previous site build (it holds
    :data:`MARKER`); anything else (a file, a folder of someone's work) is a
    :class:`SiteError`, since building the site replaces the folder whole.
    """
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir() or out.is_symlink():
        raise SiteError(f"{out} exists and is not a folder: give --out a folder for the site (default build/site)")
    if any(out.iterdir()) and not (out / MARKER).is_file():
        raise SiteError(f"{out} is a non-empty folder that is not a site built by coursekit (no {MARKER} in it), "
                        "and building the site would replace it: give --out an empty or new folder")


# --------------------------------------------------------------------------- reading the notebooks

@dataclass
class _Notebook:
    """One notebook of the course, as the site shows it."""

    stem: str                     # "03_bag_of_words"
    title: str = ""               # its first "# " heading
    sections: list = field(default_factory=list)  # [(text, anchor id)] of its "## " headings
    error: str | None = None      # why the solved page is incomplete (or empty), if it is
    missing: bool = False         # no executed copy at all (else it failed where error says)


_HEADING = re.compile(r'<h([12]) id="([^"]*)"[^>]*>(.*?)<a class="anchor-link"', re.S)


def notebook_headings(page: str) -> list[tuple[int, str, str]]:
    """``(level, anchor id, text)`` of the ``# `` and ``## `` markdown headings of a page that nbconvert made.

    Read from the page, not the notebook, so that the ids are the ones
    nbconvert gave (only markdown headings get its anchor links).
    """
    return [(int(level), anchor, html.unescape(re.sub(r"<[^>]+>", "", text)).strip())
            for level, anchor, text in _HEADING.findall(page)]


def notebook_errors(nb) -> str | None:
    """One line naming the first code cell of ``nb`` whose output is an error, or ``None``."""
    number = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        number += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"code cell {number}: {output.get('ename')}: {output.get('evalue')}"
    return None


# --------------------------------------------------------------------------- links

_NB_LINK = re.compile(r'href="(?:\./|\.\./(solutions|notebooks)/)?(\d\d[\w.-]*?)\.ipynb(#[^"]*)?"')
_API_CODE = re.compile(r"<code>(coursekit(?:\.\w+)*)</code>")


def _api_target(name: str, api_dir: Path) -> str | None:
    """``coursekit.whitening.fit_pca`` -> ``coursekit/whitening.html#fit_pca``, if pdoc wrote that page."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        page = "/".join(parts[:cut]) + ".html"
        if (api_dir / page).is_file():
            anchor = ".".join(parts[cut:])
            return page + (f"#{anchor}" if anchor else "")
    return None


def rewrite_links(page: str, stems: Sequence[str], api_dir: Path | None = None) -> str:
    """Point a notebook page's links at the site instead of at ``.ipynb`` files.

    ``href="01_color.ipynb#x"`` becomes ``href="01_color.html#x"`` (the same
    version), ``../solutions/01_color.ipynb`` becomes ``../solutions/01_color.html``,
    for the notebooks named in ``stems``; other links are left alone.
    ```coursekit.x.y``` in the text becomes a link to its page of the API
    reference in ``api_dir`` (pages sit one folder below the site's root).
    """
    known = set(stems)

    def notebook(m: re.Match) -> str:
        folder, stem, anchor = m.group(1), m.group(2), m.group(3) or ""
        if stem not in known:
            return m.group(0)
        return f'href="{f"../{folder}/" if folder else ""}{stem}.html{anchor}"'

    def api(m: re.Match) -> str:
        target = _api_target(m.group(1), api_dir) if api_dir else None
        return f'<a href="../api/{target}">{m.group(0)}</a>' if target else m.group(0)

    return _API_CODE.sub(api, _NB_LINK.sub(notebook, page))


_RESOURCE = re.compile(r"<(script|link|img|iframe|source|video|audio)\b[^>]*?\b(src|href)\s*=\s*[\"']?"
                       r"((?:https?:)?//[^\"'\s>]+)", re.I)


def remote_resources(page: str) -> list[str]:
    """The URLs a page would load from the network: ``<script src>``, ``<link href>``, ``<img src>`` and the like.

    Links a reader may follow (``<a href>``) are not resources and are not listed.
    """
    return [m.group(3) for m in _RESOURCE.finditer(page)]


# matplotlib's animations (Animation.to_jshtml) load Font Awesome 4 from a CDN for their buttons' icons; the site
# draws those icons with geometric-shape characters that common fonts have (the buttons keep their titles and
# aria-labels)
_FONT_AWESOME = re.compile(r"<link\b[^>]*?href=[\"'](?:https?:)?//[^\"']*font-awesome[^\"']*\.css[\"'][^>]*>", re.I)
_ANIMATION_ICONS = """<style type="text/css">
.fa { font-style: normal; display: inline-block; min-width: 1em; }
.fa-minus::before { content: "\\2212"; } .fa-plus::before { content: "+"; }
.fa-fast-backward::before { content: "\\25C0\\25C0"; } .fa-fast-forward::before { content: "\\25B6\\25B6"; }
.fa-step-backward::before { content: "\\25C1"; } .fa-step-forward::before { content: "\\25B7"; }
.fa-play::before { content: "\\25B6"; } .fa-pause::before { content: "\\2016"; }
.fa-flip-horizontal { transform: scaleX(-1); }
</style>"""


def offline_icons(page: str) -> str:
    """Replace the Font Awesome stylesheet that matplotlib's JavaScript animations fetch from a CDN with local CSS."""
    return _FONT_AWESOME.sub(lambda m: _ANIMATION_ICONS, page)


# --------------------------------------------------------------------------- the pieces

def mathjax_source() -> Path:
    """The MathJax 2.7 folder that the ``jupyter-server-mathjax`` package ships."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise SiteError("the site serves MathJax from the jupyter-server-mathjax package, which is not installed: "
                        "pip install -e . (or make setup)") from None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise SiteError(f"{static} has no MathJax.js: reinstall it (pip install --force-reinstall "
                        "jupyter-server-mathjax)")
    return static


def write_api(api_dir: Path, modules: Sequence[str] = ("coursekit",)) -> None:
    """coursekit's API reference into ``api_dir``, rendered from its docstrings by pdoc.

    pdoc renders the docstrings as they are written (reStructuredText, the
    package's style), which is all we want, and spares us writing a doc
    generator. It runs in a subprocess: it imports every module, and its
    rendering settings are global.
    """
    cmd = [sys.executable, "-m", "pdoc", "--docformat", "restructuredtext", "--no-math", "--no-mermaid",
           "--footer-text", "coursekit, the image retrieval course's package", "--output-directory", str(api_dir),
           *modules]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SiteError(f"pdoc failed (exit {done.returncode}) on {', '.join(modules)}:\n{done.stderr.strip()}\n"
                        "fix the import error above, or pip install -e . if pdoc is missing")


_TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{#- nbconvert's lab template, with nothing loaded from a CDN: MathJax from the site's own static/ -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  tex2jax: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
            processEscapes: true, processEnvironments: true},
  // an undefined macro is an error (reported below), not red text that a reader may miss
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}, noUndefined: {disabled: true}},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true},
               // MathJax's probe font is url('about:blank'), which browsers refuse with a console error
               styles: {"@font-face": {"font-family": "MathJax_Blank", src: "local('MathJax_Blank')"}}},
  displayAlign: "center",
  messageStyle: "none"
});
// A formula that does not parse is shown as it was written; say so where a reader (or a test) looks.
MathJax.Hub.Register.MessageHook("TeX Jax - parse error", function (m) {
  console.error("MathJax could not typeset $" + m[2] + "$: " + m[1]);
});
MathJax.Hub.Register.MessageHook("Math Processing Error", function (m) {
  console.error("MathJax processing error: " + (m[2] && m[2].message));
});
MathJax.Hub.Register.MessageHook("file failed to load", function (m) {
  console.error("MathJax could not load " + m[1]);
});
</script>
<script src="{{ resources.coursekit.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}
<link rel="icon" href="data:,">
<style type="text/css">
nav.coursekit-nav { display: flex; flex-wrap: wrap; gap: 0.4em 1.5em; padding: 0.6em 1em; margin: 0 0 1em 0;
  font-family: var(--jp-ui-font-family); font-size: 14px; background: #f3f5f7; border-bottom: 1px solid #d0d7de; }
nav.coursekit-nav.bottom { margin: 2em 0 0 0; border-top: 1px solid #d0d7de; border-bottom: none; }
nav.coursekit-nav a { text-decoration: none; }
/* MathJax's hidden MathML for screen readers asks for TeX web fonts that the site does not ship (it draws with
   STIX-Web); it is never seen, so it keeps the page's font and nothing is requested in vain */
.MJX_Assistive_MathML, .MJX_Assistive_MathML * { font-family: inherit !important; }
div.coursekit-error { margin: 1em; padding: 0.8em 1em; border: 1px solid #d73a49; background: #ffeef0;
  font-family: var(--jp-ui-font-family); font-size: 14px; }
</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.coursekit.nav }}
{{ resources.coursekit.banner }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.coursekit.nav_bottom }}
{{ super() }}
{%- endblock body_footer -%}
"""


def _exporter():
    """nbconvert's ``HTMLExporter`` with the site's template (the lab template, offline)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", theme="light", embed_images=True,
                        extra_loaders=[DictLoader({"coursekit_site.html.j2": _TEMPLATE})],
                        template_file="coursekit_site.html.j2")


def _nav(kind: str, i: int, notebooks: list[_Notebook], where: str = "") -> str:
    """The navigation bar of page ``i`` of ``kind`` ("solutions" or "notebooks")."""
    other, other_label = ("notebooks", "Exercises (student version)") if kind == "solutions" else \
        ("solutions", "Solved version")
    links = ['<a href="../index.html">Course index</a>']
    if i > 0:
        prev = notebooks[i - 1]
        links.append(f'<a href="{prev.stem}.html" rel="prev">&larr; {html.escape(prev.title)}</a>')
    if i + 1 < len(notebooks):
        nxt = notebooks[i + 1]
        links.append(f'<a href="{nxt.stem}.html" rel="next">{html.escape(nxt.title)} &rarr;</a>')
    links.append(f'<a href="../{other}/{notebooks[i].stem}.html">{other_label}</a>')
    links.append('<a href="../api/coursekit.html">API reference</a>')
    return f'<nav class="coursekit-nav{where}">' + "\n".join(links) + "</nav>"


def _placeholder(stem: str, kind: str) -> nbformat.NotebookNode:
    """A one-cell notebook standing for a notebook that is missing from its folder."""
    what = "executed solution" if kind == "solutions" else "student version"
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        f"# {stem}\n\nThe {what} of this notebook is missing, so this page has no content.")])


_NAV, _NAV_BOTTOM = "<!-- coursekit:nav -->", "<!-- coursekit:nav-bottom -->"


def _render(exporter, nb, stem: str, banner: str) -> str:
    """One notebook page, with placeholders for its navigation (which names its neighbours' titles)."""
    resources = {"metadata": {"name": stem},
                 "coursekit": {"mathjax_url": f"../static/mathjax/MathJax.js?config={MATHJAX_CONFIG}",
                               "nav": _NAV, "nav_bottom": _NAV_BOTTOM, "banner": banner}}
    page, _ = exporter.from_notebook_node(nb, resources=resources)
    return page


def _finish(page: str, kind: str, i: int, notebooks: list[_Notebook]) -> str:
    """A rendered page with its title and navigation filled in."""
    title = notebooks[i].title + (" (solved)" if kind == "solutions" else " (exercises)")
    page = re.sub(r"<title>.*?</title>", lambda m: f"<title>{html.escape(title)}</title>", page, count=1, flags=re.S)
    return page.replace(_NAV, _nav(kind, i, notebooks)).replace(_NAV_BOTTOM, _nav(kind, i, notebooks, " bottom"))


def _index(title: str, notebooks: list[_Notebook]) -> str:
    """The site's front page: the table of contents."""
    items = []
    for nb in notebooks:
        sections = "".join(f'<li><a href="solutions/{nb.stem}.html#{html.escape(anchor, quote=True)}">'
                           f"{html.escape(text)}</a></li>" for text, anchor in nb.sections)
        error = "" if not nb.error else (
            f'<p class="error">Not executed for the site ({html.escape(nb.error)}): its solved page is empty.</p>'
            if nb.missing else
            f'<p class="error">This notebook failed to execute for the site ({html.escape(nb.error)}): '
            "its solved page stops there.</p>")
        items.append(f'<li class="notebook"><a class="title" href="solutions/{nb.stem}.html">'
                     f"{html.escape(nb.title)}</a>"
                     f' &middot; <a href="notebooks/{nb.stem}.html">exercises (student version)</a>{error}'
                     f"<ul>{sections}</ul></li>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; line-height: 1.5; }}
a {{ color: #0b5cad; text-decoration: none; }} a:hover {{ text-decoration: underline; }}
ol.toc {{ list-style: none; padding-left: 0; }} ol.toc > li {{ margin-bottom: 1em; }}
a.title {{ font-weight: 600; font-size: 1.1em; }}
ol.toc ul {{ margin: 0.2em 0; }} .error {{ color: #b31d28; margin: 0.2em 0; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>Each notebook in two versions: solved (executed, with its figures) and the exercises as a student gets them.
The <a href="api/coursekit.html">API reference of coursekit</a> documents the package the notebooks call.</p>
<h2>Contents</h2>
<ol class="toc">
{chr(10).join(items)}
</ol>
</body>
</html>
"""


# --------------------------------------------------------------------------- the site

def build_site(out: Path, executed: Path, students: Path, *, failed: Mapping[str, str] | None = None,
               title: str = TITLE, api_modules: Sequence[str] = ("coursekit",)) -> Path:
    """Build the site into ``out`` and return its ``index.html``.

    ``executed`` holds the executed solution notebooks (``NN_name.ipynb``,
    as ``make course`` writes them into ``build/course``), ``students`` the
    student notebooks (``notebooks/``). ``failed`` maps a notebook's file
    name to the error that stopped its execution (from
    :func:`coursekit.course.notebooks.execute_notebooks`); an error output inside an
    executed notebook is found without it. Either way the notebook's solved
    page opens with the error, and the index says so.

    The site is written into a new folder beside ``out`` that then replaces
    ``out``, so a build that fails leaves the previous site as it was.
    ``out`` must be absent, empty or a previous build (:func:`check_site_dir`).
    """
    out, executed, students = Path(out), Path(executed), Path(students)
    check_site_dir(out)
    failed = dict(failed or {})
    stems = sorted({p.stem for p in executed.glob(NOTEBOOKS)} | {p.stem for p in students.glob(NOTEBOOKS)})
    if not stems:
        raise SiteError(f"no notebooks (NN_name.ipynb) in {executed} or {students}: run make course first, "
                        "or give --executed the folder of the executed solutions")
    mathjax = mathjax_source()
    with atomic_write(out) as tmp:
        tmp.mkdir()
        tmp.chmod(0o755)  # a site is for reading, whatever the umask
        (tmp / MARKER).write_text("A course site written by `python -m coursekit site`; the whole folder is "
                                  "rewritten by the next build.\n")
        shutil.copytree(mathjax, tmp / "static" / "mathjax")
        write_api(tmp / "api", api_modules)

        exporter = _exporter()
        notebooks = [_Notebook(stem) for stem in stems]
        pages: dict[tuple[str, str], str] = {}
        for nb in notebooks:
            solved, student = executed / f"{nb.stem}.ipynb", students / f"{nb.stem}.ipynb"
            if solved.is_file():
                source = nbformat.read(solved, as_version=4)
                nb.error = failed.get(solved.name) or notebook_errors(source)
            else:
                source = _placeholder(nb.stem, "solutions")
                nb.error, nb.missing = f"{solved} is missing; make course executes it", True
            banner = "" if not nb.error else (
                f'<div class="coursekit-error"><strong>This notebook was not executed</strong> for this site: '
                f"{html.escape(nb.error)}.</div>" if nb.missing else
                f'<div class="coursekit-error"><strong>This notebook failed to execute</strong> for this site: '
                f"{html.escape(nb.error)}. The outputs below stop there; run <code>make course</code> to see the "
                "whole error.</div>")
            pages["solutions", nb.stem] = _render(exporter, source, nb.stem, banner)
            source = nbformat.read(student, as_version=4) if student.is_file() else _placeholder(nb.stem, "notebooks")
            pages["notebooks", nb.stem] = _render(exporter, source, nb.stem, "")
            # the title and sections: from the solved page, or the student one where the solution is missing
            heads = notebook_headings(pages["solutions" if solved.is_file() else "notebooks", nb.stem])
            nb.title = next((text for level, _, text in heads if level == 1), nb.stem)
            nb.sections = [(text, anchor) for level, anchor, text in heads if level == 2]

        for kind in ("solutions", "notebooks"):
            (tmp / kind).mkdir()
            for i, nb in enumerate(notebooks):
                page = _finish(pages[kind, nb.stem], kind, i, notebooks)
                page = offline_icons(rewrite_links(page, stems, tmp / "api"))
                (tmp / kind / f"{nb.stem}.html").write_text(page, encoding="utf-8")
        (tmp / "index.html").write_text(_index(title, notebooks), encoding="utf-8")

        remote = {str(p.relative_to(tmp)): urls for p in sorted(tmp.rglob("*.html"))
                  if (urls := remote_resources(p.read_text(encoding="utf-8")))}
        if remote:
            raise SiteError("pages of the site would load resources from the network, and it must work offline: "
                            + "; ".join(f"{page}: {', '.join(sorted(set(urls)))}" for page, urls in remote.items()))
        if out.exists():
            check_site_dir(out)  # again: it may have changed during the build
            shutil.rmtree(out)
    return out / "index.html"
