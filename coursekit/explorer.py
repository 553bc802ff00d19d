"""An interactive query explorer for the notebooks, that tests can drive headless.

>>> from coursekit.explorer import Explorer
>>> explorer = Explorer(method="gem")
>>> explorer                                # in a notebook: the widgets
>>> explorer.k.value = 5                    # from Python: set a widget ...
>>> explorer.result.ap                      # ... and read what it now shows

Pick a dataset, a method, a re-ranking, ``k`` and a query (by its
thumbnail); the explorer draws the query with its box, its top ``k``
results framed as in :mod:`coursekit.plot` (green a positive, grey junk, red
wrong) and the query's precision-recall curve with its AP. Each (dataset,
method) :class:`~coursekit.methods.Retrieval` and each re-ranking's
similarities are kept in memory, so changing ``k``, the query or going back
to a method already run computes nothing again (the features themselves are
also cached on disk by the methods).

AP and mAP are those of :func:`coursekit.evaluation.evaluate`: the trapezoid
AP with junk removed, on the dataset's ground truth (the Medium protocol on
revisited datasets).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape

import matplotlib.pyplot as plt
import numpy as np

from . import plot
from .cache import cache_root
from .datasets import Dataset, load_dataset, present_datasets
from .evaluation import average_precisions, pr_curve, ranks_from_similarities
from .images import load_image
from .methods import GLOBAL_METHODS, METHODS, RERANKINGS, rerank_settings, reranked, run_method
from .rerank_choice import describe

__all__ = ["Explorer", "ExplorerResult", "usable_methods", "query_scores", "query_curve"]

NO_RERANK = "none"
KIND_NAMES = {"correct": "positive", "junk": "junk", "wrong": "wrong"}   # plot.result_kinds -> ours
AP_KIND = "trapezoid"          # as coursekit.evaluation.evaluate
PAGE = 12                      # query thumbnails per page
THUMB = 64                     # pixels, longer side of a query thumbnail
MAX_K = 32                     # the largest k the slider offers


# --------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------

def usable_methods(ds: Dataset) -> dict[str, dict]:
    """The methods the explorer offers on ``ds``, each with the extra keywords of ``run_method``.

    Every method of :data:`~coursekit.methods.METHODS`, except
    ``gem_finetuned`` on a dataset without a labelled training split: it is
    then offered trained on the embedded set's (``train_on="embedded"``, as
    the course report does) only when a checkpoint fine-tuned on the
    embedded set is already in the cache, so that picking it does not start
    a training.
    """
    out = {name: {} for name in METHODS}
    if not ds.train or ds.train_labels is None:
        del out["gem_finetuned"]
        if any((cache_root() / "finetune").glob("embedded-*.pt")):
            out["gem_finetuned"] = {"train_on": "embedded"}
    return out


def query_scores(sims: np.ndarray, ds: Dataset, chunk: int = 256) -> np.ndarray:
    """AP of every query, ``(Q,) float64`` (NaN without positives), from ``sims (Q, N)``.

    As :func:`coursekit.evaluation.evaluate` computes them (trapezoid AP,
    junk removed); the ranking is made ``chunk`` queries at a time so that
    a large ``(Q, N)`` never needs its full ``int64`` ranking at once.
    """
    aps = np.empty(ds.n_queries)
    for start in range(0, ds.n_queries, chunk):
        stop = min(start + chunk, ds.n_queries)
        aps[start:stop] = average_precisions(ranks_from_similarities(sims[start:stop]), ds.gnd[start:stop], AP_KIND)
    return aps


def query_ranking(sims_row: np.ndarray) -> np.ndarray:
    """The database ranked for one query, ``(N,) int64``, best first, ties in database order
    (a row of :func:`coursekit.evaluation.ranks_from_similarities`)."""
    return np.argsort(-sims_row, kind="stable").astype(np.int64)


def query_curve(ranking: np.ndarray, ds: Dataset, q: int) -> tuple[np.ndarray, np.ndarray]:
    """``(precision, recall)`` of query ``q`` after each rank of ``ranking (N,) int64``, junk
    removed: two ``(N - junk,) float64`` arrays, empty when the query has no positive."""
    g = ds.gnd[q]
    pos = np.unique(g.positives)
    junk = np.setdiff1d(g.junk, pos)
    if pos.size == 0:
        return np.zeros(0), np.zeros(0)
    kept = ranking[~np.isin(ranking, junk)]
    recall, precision = pr_curve(np.isin(kept, pos), len(pos))
    return precision, recall


@lru_cache(maxsize=2048)
def _query_png(path: str, box: tuple[float, ...] | None, size: int = THUMB) -> bytes:
    """A ``size``-pixel PNG of a query, cropped to its box (what the methods search with)."""
    from PIL import Image

    from .images import crop

    image = load_image(path)
    if box is not None:
        image = crop(image, np.asarray(box, np.float32))
    thumb = Image.fromarray(image)
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    return buf.getvalue()


@lru_cache(maxsize=512)
def _db_thumb(path: str) -> np.ndarray:
    """A database image as ``(h, w, 3) uint8``, longer side as in :mod:`coursekit.plot`."""
    return load_image(path, max_size=plot._THUMB)


def _png_output(fig) -> dict:
    """A figure as one output of an ``ipywidgets.Output`` (PNG, base64)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                     "text/plain": f"<figure {fig.get_size_inches()[0]:.0f} x {fig.get_size_inches()[1]:.0f} in>"}}


def _error_output(text: str) -> dict:
    return {"output_type": "stream", "name": "stderr", "text": text + "\n"}


# --------------------------------------------------------------------------
# The explorer
# --------------------------------------------------------------------------

@dataclass
class ExplorerResult:
    """What the explorer shows after its last update.

    ``ranking (k,) int64``: database indices, best first. ``scores (k,)
    float32``: their similarities. ``kinds``: ``"positive"``, ``"junk"`` or
    ``"wrong"`` for each. ``ap``: this query's AP, ``map``: the mAP of the
    method (and re-ranking) on the dataset (NaN when unknown). ``precision``,
    ``recall``: ``(N - junk,) float64``, the query's PR curve over the whole
    ranking. ``computed``: the explorer's counters at that moment (see
    :attr:`Explorer.computed`). ``error``: the message shown instead, if the
    update failed (then the arrays are empty).
    """

    dataset: str
    method: str
    rerank: str | None
    query: int
    k: int
    ranking: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    kinds: list[str] = field(default_factory=list)
    ap: float = float("nan")
    map: float = float("nan")
    precision: np.ndarray = field(default_factory=lambda: np.zeros(0))
    recall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    computed: dict = field(default_factory=dict)
    error: str | None = None


class Explorer:
    """Widgets to browse the ranked results of any method on any dataset.

    ``datasets``: the names offered (default
    :func:`coursekit.datasets.present_datasets`); ``methods``: the methods
    offered where usable (default all, see :func:`usable_methods`);
    ``dataset``, ``method``, ``rerank`` (``None`` or one of
    :data:`~coursekit.methods.RERANKINGS`), ``k``, ``query``: the first
    state. ``draw=False`` computes :attr:`result` without drawing the
    figure; ``progress`` shows the methods' progress bars.

    Widgets: :attr:`dataset`, :attr:`method`, :attr:`rerank` (Dropdowns),
    :attr:`k` (IntSlider), :attr:`query` (BoundedIntText, also set by
    clicking a thumbnail), :attr:`output` (the figure, or an error),
    :attr:`message` (a status line); :attr:`widget` holds them all. Setting
    any widget's value updates :attr:`result` before it returns.
    """

    def __init__(self, datasets: list[str] | None = None, methods: list[str] | None = None,
                 dataset: str = "embedded", method: str = "gem", rerank: str | None = None, k: int = 8,
                 query: int = 0, draw: bool = True, progress: bool = False):
        import ipywidgets as w

        if datasets is None:
            datasets = present_datasets()
        unknown = set(methods or []) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
        if rerank is not None and rerank not in RERANKINGS:
            raise ValueError(f"unknown re-ranking {rerank!r}; known: {', '.join(RERANKINGS)}")
        self._methods = list(methods or METHODS)
        self._draw, self._progress = draw, progress
        self._datasets: dict[str, Dataset] = {}
        self._retrievals: dict[tuple[str, str], object] = {}          # (dataset, method) -> Retrieval
        self._sims: dict[tuple[str, str, str | None], np.ndarray] = {}  # + re-ranking -> (Q, N) float32
        self._aps: dict[tuple[str, str, str | None], np.ndarray] = {}   # -> (Q,) float64
        #: ``methods``: runs of a method; ``reranks``: re-rankings computed; ``from_memory``: updates
        #: served from memory; ``updates``: all updates.
        self.computed = {"methods": 0, "reranks": 0, "from_memory": 0, "updates": 0}
        #: ``(dataset, method, rerank) -> str``: each re-ranking's settings, chosen from the data as ``evaluate``
        #: chooses them (:func:`coursekit.methods.rerank_settings`), and from what
        self.settings: dict[tuple, str] = {}
        self.result: ExplorerResult | None = None
        self._busy = True
        self._page = 0
        self._shown_page: tuple[str, int] | None = None

        self.dataset = w.Dropdown(options=list(datasets), description="dataset")
        self.method = w.Dropdown(options=self._methods, description="method")
        self.rerank = w.Dropdown(options=[NO_RERANK, *RERANKINGS], description="re-ranking")
        self.k = w.IntSlider(min=1, max=MAX_K, value=1, description="k", continuous_update=False)
        self.query = w.BoundedIntText(min=0, max=0, value=0, description="query", layout=w.Layout(width="160px"))
        self.message = w.HTML()
        self.output = w.Output()
        self._prev = w.Button(description="◀", layout=w.Layout(width="36px"))
        self._next = w.Button(description="▶", layout=w.Layout(width="36px"))
        self._page_label = w.Label()
        self._thumbs = w.HBox()
        self._prev.on_click(lambda _: self._turn(-1))
        self._next.on_click(lambda _: self._turn(+1))
        self.widget = w.VBox([
            w.HBox([self.dataset, self.method, self.rerank]),
            w.HBox([self.k, self.query, self._prev, self._next, self._page_label]),
            self._thumbs, self.message, self.output,
        ])

        if dataset in datasets:
            self.dataset.value = dataset
        self._set_dataset(method, rerank, k, query)
        self._busy = False
        self.dataset.observe(self._on_dataset, "value")
        self.method.observe(self._on_method, "value")
        for widget in (self.rerank, self.k, self.query):
            widget.observe(self._on_change, "value")
        self.update()

    # -- state ---------------------------------------------------------------

    @property
    def state(self) -> dict:
        """``{"dataset", "method", "rerank", "k", "query"}``; ``rerank`` is ``None`` for none."""
        how = self.rerank.value
        return {"dataset": self.dataset.value, "method": self.method.value,
                "rerank": None if how == NO_RERANK else how, "k": int(self.k.value), "query": int(self.query.value)}

    @property
    def ds(self) -> Dataset | None:
        """The selected dataset, ``None`` if it could not be loaded."""
        return self._datasets.get(self.dataset.value)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # -- widget callbacks ------------------------------------------------------

    def _on_dataset(self, _change) -> None:
        if self._busy:
            return
        state = self.state
        self._busy = True
        try:
            self._set_dataset(state["method"], state["rerank"], state["k"], 0)
        finally:
            self._busy = False
        self.update()

    def _on_method(self, _change) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self._set_rerank_enabled()
        finally:
            self._busy = False
        self.update()

    def _on_change(self, _change) -> None:
        if not self._busy:
            self.update()

    def _set_dataset(self, method: str, rerank: str | None, k: int, query: int) -> None:
        """Load the selected dataset and fit the other widgets to it (no update)."""
        ds = self._load(self.dataset.value)
        if ds is None:
            return
        names = [m for m in self._methods if m in usable_methods(ds)]
        self.method.options = names
        self.method.value = method if method in names else ("gem" if "gem" in names else names[0])
        self.rerank.value = rerank if rerank in RERANKINGS else NO_RERANK
        self._set_rerank_enabled()
        self.k.max = min(MAX_K, ds.n_db)
        self.k.value = int(np.clip(k, 1, self.k.max))
        self.query.max = ds.n_queries - 1
        self.query.value = int(np.clip(query, 0, ds.n_queries - 1))

    def _set_rerank_enabled(self) -> None:
        """Re-ranking needs global vectors: off and disabled for the other methods."""
        is_global = self.method.value in GLOBAL_METHODS
        self.rerank.disabled = not is_global
        if not is_global:
            self.rerank.value = NO_RERANK

    def _load(self, name: str) -> Dataset | None:
        """The dataset ``name``, loaded once; ``None`` (and the message shown) when it is absent."""
        if name not in self._datasets:
            try:
                self._datasets[name] = load_dataset(name)
            except Exception as err:          # DatasetError names the file and `python data_scripts/get.py NAME`
                self._show_error(f"{type(err).__name__}: {err}")
                return None
        return self._datasets[name]

    # -- the query picker ------------------------------------------------------

    def _turn(self, step: int) -> None:
        ds = self.ds
        if ds is not None:
            self._page = int(np.clip(self._page + step, 0, (ds.n_queries - 1) // PAGE))
            self._show_thumbs()

    def _pick(self, q: int) -> None:
        self.query.value = q

    def _show_thumbs(self) -> None:
        """The current page of query thumbnails, each with a button that picks it (built once per
        page; a new query on the same page only restyles the buttons)."""
        import ipywidgets as w

        ds = self.ds
        first = self._page * PAGE
        last = min(first + PAGE, ds.n_queries)
        if self._shown_page != (ds.name, self._page):
            for cell in self._thumbs.children:
                cell.close()
            cells = []
            for q in range(first, last):
                box = None if ds.bbx is None else tuple(float(v) for v in ds.bbx[q])
                image = w.Image(value=_query_png(str(ds.queries[q]), box), format="png",
                                layout=w.Layout(width=f"{THUMB}px", height=f"{THUMB}px", object_fit="contain"))
                button = w.Button(description=str(q), layout=w.Layout(width=f"{THUMB}px"))
                button.on_click(lambda _, q=q: self._pick(q))
                cells.append(w.VBox([image, button]))
            self._thumbs.children = cells
            self._shown_page = (ds.name, self._page)
            self._page_label.value = f"queries {first}-{last - 1} of {ds.n_queries}"
        for q, cell in zip(range(first, last), self._thumbs.children):
            cell.children[1].button_style = "info" if q == self.query.value else ""

    # -- computing -------------------------------------------------------------

    def _similarities(self, ds: Dataset, method: str, how: str | None) -> np.ndarray:
        """``(Q, N) float32`` similarities of ``method`` (re-ranked by ``how``), each computed once."""
        key = (ds.name, method, how)
        if key in self._sims:
            return self._sims[key]
        base = (ds.name, method)
        if base not in self._retrievals:
            self._status(f"running <b>{escape(method)}</b> on <b>{escape(ds.name)}</b> (the first run of a "
                         "method extracts its features, which can take minutes; later runs read the disk cache)…")
            self._retrievals[base] = run_method(method, ds, progress=self._progress, **usable_methods(ds)[method])
            self.computed["methods"] += 1
        result = self._retrievals[base]
        if how is None:
            sims = result.sims
        else:
            self._status(f"re-ranking <b>{escape(method)}</b> with <b>{escape(how)}</b>…")
            if result.X_train is None and ds.train and ds.train_labels is not None and method in GLOBAL_METHODS:
                result = self._retrievals[base] = run_method(method, ds, progress=self._progress, with_train=True,
                                                             **usable_methods(ds)[method])   # to choose on
            settings, chosen = rerank_settings(how, result, ds)        # as evaluate: never the test queries
            sims = reranked(result, how, **settings).sims
            self.settings[key] = describe(settings, chosen)
            self.computed["reranks"] += 1
        self._sims[key] = sims
        self._aps[key] = query_scores(sims, ds)
        return sims

    def update(self) -> ExplorerResult:
        """Recompute :attr:`result` for the widgets' values and redraw; returns it.

        Called by every widget change; an error (a method that fails, an
        absent dataset) is shown in the output and kept in ``result.error``.
        """
        state = self.state
        self.computed["updates"] += 1
        ds = self._load(state["dataset"])
        if ds is None:
            return self.result
        key = (ds.name, state["method"], state["rerank"])
        try:
            if key in self._sims:
                self.computed["from_memory"] += 1
            sims = self._similarities(ds, *key[1:])
            self.result = self._result(ds, state, sims, self._aps[key])
        except Exception as err:                    # shown, never raised: the widget keeps working
            self._show_error(f"{state['method']} on {ds.name} failed: {type(err).__name__}: {err}", state)
            return self.result
        self._page = state["query"] // PAGE
        self._show_thumbs()
        title = f"{ds.name}, {state['method']}" + (f" + {state['rerank']}" if state["rerank"] else "")
        chosen = self.settings.get(key)
        self._status(f"{escape(title)}: mAP {self.result.map:.3f}; query {state['query']}: AP {self.result.ap:.3f}"
                     + (f"<br>{escape(state['rerank'])}: {escape(chosen)}" if chosen else ""))
        if self._draw:
            self._draw_figure(ds, title)
        return self.result

    def _result(self, ds: Dataset, state: dict, sims: np.ndarray, aps: np.ndarray) -> ExplorerResult:
        q, k = state["query"], state["k"]
        ranking = query_ranking(sims[q])
        top = ranking[:k]
        precision, recall = query_curve(ranking, ds, q)
        return ExplorerResult(**state, ranking=top, scores=sims[q, top].astype(np.float32),
                              kinds=[KIND_NAMES[x] for x in plot.result_kinds(ds, q, top)],
                              ap=float(aps[q]), map=float(np.nanmean(aps)) if not np.isnan(aps).all() else np.nan,
                              precision=precision, recall=recall, computed=dict(self.computed))

    # -- showing ---------------------------------------------------------------

    def _status(self, html: str) -> None:
        self.message.value = html

    def _show_error(self, text: str, state: dict | None = None) -> None:
        """Show ``text`` in place of the figure, and keep it in :attr:`result`."""
        state = state or self.state
        self.result = ExplorerResult(**state, error=text, computed=dict(self.computed))
        self.message.value = f"<span style='color:{plot.WRONG}'>{escape(text)}</span>"
        self.output.outputs = (_error_output(text),)

    def _draw_figure(self, ds: Dataset, title: str) -> None:
        fig = draw_result(ds, self.result, title)
        try:
            self.output.outputs = (_png_output(fig),)
        finally:
            plt.close(fig)


def draw_result(ds: Dataset, result: ExplorerResult, title: str = ""):
    """The query with its box, its top ``k`` framed by kind, and its PR curve; returns the figure."""
    k = len(result.ranking)
    cols = min(k, 8)
    rows = -(-k // cols)
    fig = plt.figure(figsize=(2.4 + 1.5 * cols + 3.2, max(2.8, 1.6 * rows + 0.6)))
    left, middle, right = fig.subfigures(1, 3, width_ratios=[2.4, 1.5 * cols, 3.2])
    _draw_query(left.subplots(), ds, result.query)
    colour = {"positive": plot.CORRECT, "junk": plot.JUNK, "wrong": plot.WRONG}
    for r, ax in enumerate(np.ravel(middle.subplots(rows, cols, squeeze=False))):
        if r >= k:
            ax.axis("off")
            continue
        ax.imshow(_db_thumb(str(ds.db[result.ranking[r]])))
        plot.frame(ax, colour[result.kinds[r]], 3.0)
        ax.set_title(f"{r + 1}: {result.scores[r]:.3g}", fontsize=7, color=colour[result.kinds[r]])
    ax = right.subplots()
    if result.recall.size:
        plot.plot_pr_curves({"": (result.recall, result.precision)}, ax=ax, title=f"AP {result.ap:.3f}")
        at = k - result.kinds.count("junk") - 1           # the k-th result on the curve, junk removed
        if at >= 0:
            ax.plot(result.recall[at], result.precision[at], "o", color=plot.QUERY)
    else:
        ax.set_title("no positive for this query")
    fig.suptitle(f"{title}: mAP {result.map:.3f}", fontsize=10)
    return fig


def _draw_query(ax, ds: Dataset, q: int) -> None:
    """Query ``q`` with its box (when the dataset has boxes), framed in the query colour."""
    thumb, scale = plot.thumbnail(ds.queries[q])
    ax.imshow(thumb)
    if ds.bbx is not None:
        x1, y1, x2, y2 = ds.bbx[q] * scale
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=plot.QUERY, linewidth=2))
    plot.frame(ax, plot.QUERY)
    ax.set_title(f"query {q}", fontsize=9, color=plot.QUERY)
