"""Every method of the course on query boxes as revisited Oxford and Paris give them (small, thin, whole),
through the real loader: a revisited-format folder made of the SMVS DVD covers by data_scripts/make_revisited.py
(built in a temporary folder, never committed; skipped where ../shared/datasets is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_data_script
from coursekit.datasets import load_dataset
from coursekit.methods import METHODS, evaluate_method

REPO = Path(__file__).resolve().parents[1]
SMVS = REPO.parent / "shared" / "datasets" / "smvs_dvd_covers"
pytestmark = pytest.mark.skipif(not SMVS.is_dir(), reason="../shared/datasets/smvs_dvd_covers is not here")


@pytest.fixture(scope="module")
def mk():
    return load_data_script("make_revisited")


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory, mk):
    root = tmp_path_factory.mktemp("revisited") / "roxford5k"
    mk.make_revisited(SMVS, root, covers=6, distractors=6, tiny=24)
    return root


def test_the_folder_loads_as_roxford5k_with_small_and_thin_boxes(fixture_root, mk):
    ds = load_dataset("roxford5k", fixture_root)
    assert ds.protocol == "revisited" and ds.n_queries == 6 and ds.n_db == 6 * 4 + 6
    w, h = ds.bbx[0, 2] - ds.bbx[0, 0], ds.bbx[0, 3] - ds.bbx[0, 1]
    assert w == h == 24                                                      # tiny
    assert (ds.bbx[1, 2] - ds.bbx[1, 0]) == pytest.approx(8 * (ds.bbx[1, 3] - ds.bbx[1, 1]), rel=1e-4)   # 1:8
    assert (ds.bbx[2, 3] - ds.bbx[2, 1]) == pytest.approx(8 * (ds.bbx[2, 2] - ds.bbx[2, 0]), rel=1e-4)   # 8:1
    g = ds.gnd[3]
    assert [Path(ds.db[i]).name for i in g.easy] == [f"reference_{Path(ds.queries[3]).stem[6:]}.jpg"]
    assert len(g.hard) == 2 and len(g.junk) == 1
    with pytest.raises(mk.MakeError, match="exists"):
        mk.make_revisited(SMVS, fixture_root)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_on_it(fixture_root, method, capsys):
    """Every method of `evaluate --help` gives a revisited Easy / Medium / Hard mAP on it, the 24-pixel and the
    thin query boxes included (gem_finetuned fine-tuned on the embedded set's split, as the report runs it)."""
    ds = load_dataset("roxford5k", fixture_root)
    row = evaluate_method(method, ds, progress=False, **({"train_on": "embedded"} if method == "gem_finetuned" else {}))
    for protocol in ("easy", "medium", "hard"):
        assert 0 <= row[f"map_{protocol}"] <= 1
    assert row["map"] == row["map_medium"]


def test_a_small_box_is_enlarged_and_said(fixture_root, monkeypatch, tmp_path, capsys):
    """At 480 pixels the 24-pixel box of query 0 is 18 px: enlarged to the network's 32, and the extraction says
    which queries it touched (at gem_ms's scale 1/2, the thin ones too)."""
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))                 # computed here, not read from a cache
    ds = load_dataset("roxford5k", fixture_root)
    evaluate_method("gem_ms", ds, progress=False)
    said = "".join(capsys.readouterr())
    assert "roxford5k: 3 of 6 query boxes came out under 32 px at 480 px" in said
    assert "0 (canon_001.jpg), 1 (canon_002.jpg), 2 (canon_003.jpg)" in said


def test_whitening_learned_on_another_dataset_runs_on_it(fixture_root):
    """Oxford and Paris have no training split: --whiten-on learns the whitening elsewhere (the embedded set's
    training split here), for the global methods whose vectors do not depend on the dataset (not VLAD's
    vocabulary, the Fisher vector's GMM or a network fine-tuned on each dataset's split)."""
    from coursekit.methods import GLOBAL_METHODS

    ds = load_dataset("roxford5k", fixture_root)
    for method in ("gem", "rmac", "color_hist"):
        assert method in GLOBAL_METHODS
        row = evaluate_method(method, ds, progress=False, whiten_on="embedded")
        assert row["method"] == f"{method}+whiten[on embedded]" and 0 <= row["map_medium"] <= 1
    for method in ("vlad", "fisher", "gem_finetuned"):     # vectors in each dataset's own space: refused
        with pytest.raises(ValueError, match="depend on what it learns from each dataset"):
            evaluate_method(method, ds, progress=False, whiten_on="embedded")
