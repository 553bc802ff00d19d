"""The CNN methods of notebook 07 end to end on the tiny photo dataset of test_encodings."""

import numpy as np
import pytest

from coursekit.evaluation import ranks_from_similarities
from coursekit.methods import GLOBAL_METHODS, METHODS, evaluate_method, gem, gem_ms, mac
from test_encodings import dataset, private_cache  # noqa: F401  (fixtures)

CNN = ["fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms"]


def test_cnn_methods_are_global_and_registered():
    for name in CNN:
        assert name in METHODS and name in GLOBAL_METHODS


@pytest.mark.parametrize("name", CNN)
def test_every_cnn_method_finds_the_warped_image(dataset, name):
    result = METHODS[name][0](dataset, progress=False)
    assert result.X_db.shape == (5, 1280) and result.X_q.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(result.X_db, axis=1), 1.0, rtol=1e-5)
    assert ranks_from_similarities(result.sims)[:, 0].tolist() == [1, 3]


def test_methods_share_one_extraction_and_multi_scale_differs(dataset):
    a, b = mac(dataset, progress=False), gem(dataset, progress=False)
    assert b.cached_seconds > 0                       # gem read what mac's run extracted and cached
    assert not np.allclose(a.X_db, b.X_db)
    assert not np.allclose(gem_ms(dataset, progress=False).X_db, b.X_db)


def test_cnn_vectors_can_be_whitened_and_indexed(dataset):
    out = evaluate_method("gem", dataset, progress=False, whiten=True, dim=3, index="exact")
    assert out["dim"] == 3 and out["method"] == "gem+whiten" and out["recall@1"] == 1.0


def test_rmac_whiten_whitens_each_region_before_the_sum(dataset):
    import torch

    from coursekit.cnn import pooling
    from coursekit.cnn.backbones import load_backbone
    from coursekit.cnn.extract import dataset_regional_macs, feature_maps
    from coursekit.images import load_image
    from coursekit.methods import rmac, run_method
    from coursekit.whitening import fit_pca_whitening

    out = run_method("rmac", dataset, progress=False, whiten=True, dim=3)
    assert out.X_db.shape == (5, 3) and out.X_q.shape == (2, 3) and out.X_train.shape == (len(dataset.train), 3)
    # the same vectors from the pooling function, given the whitening learned on the training regions
    net = load_backbone()
    V, _, _ = dataset_regional_macs(dataset, "train", net, progress=False)
    W = fit_pca_whitening(V, 3)
    whitening = (torch.from_numpy(W.mean), torch.from_numpy(W.P))
    with torch.inference_mode():
        for rows, fmap in feature_maps([lambda p=p: load_image(p) for p in dataset.db], net, 480):
            v = pooling.rmac(fmap.double(), whitening=(whitening[0].double(), whitening[1].double()))[0].numpy()
            np.testing.assert_allclose(out.X_db[rows[0]], v / np.linalg.norm(v), atol=2e-3)   # regions cached in float16
    with pytest.raises(ValueError, match="pass it with whiten_regions"):
        rmac(dataset, progress=False, dim=3)
