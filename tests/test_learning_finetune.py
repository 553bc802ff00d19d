"""Fine-tuning the last blocks for retrieval: the split, the cached trunk maps, training, seeds and checkpoints."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from coursekit.cnn.backbones import load_backbone
from coursekit.cnn.extract import resize_longer, to_tensor
from coursekit.cnn.pooling import gem
from coursekit.datasets import Dataset, GroundTruth
from coursekit.learning.finetune import (RetrievalHead, dataset_trunk_maps, finetune, finetuned_descriptors,
                                         head_descriptors, load_finetuned, split_backbone)
from coursekit.learning.losses import contrastive_loss

SIZE = 64          # pixels: trunk maps of 2 x 2 cells, so that every training step is cheap
FAST = dict(n_trainable=1, size=SIZE, queries_per_epoch=12, pool_size=18, n_negatives=3, batch_size=4,
            progress=False)


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()   # ImageNet weights: random ones give maps of zeros on such images


def _images(rng, n_labels=6, per_label=3):
    """``per_label`` views (shifted, flipped, noisy) of each of ``n_labels`` random colour patterns."""
    out, labels = [], []
    for label in range(n_labels):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((96, 72), Image.BILINEAR)).astype(np.float64)
        base += rng.normal(0, 25, base.shape)                            # the pattern's own fine texture
        for v in range(per_label):
            dy, dx = rng.integers(0, 16, 2)
            im = base[dy:dy + 56, dx:dx + 72]
            im = im[:, ::-1] if v % 2 else im
            out.append(np.clip(im + rng.normal(0, 10, im.shape), 0, 255).astype(np.uint8))
            labels.append(100 + label)
    return out, np.array(labels)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A labelled training split of 18 images (6 objects x 3 views), and 6 database images and 2 queries."""
    root = tmp_path_factory.mktemp("tiny")
    images, labels = _images(np.random.default_rng(0))
    paths = []
    for i, im in enumerate(images):
        paths.append(root / f"im{i:02d}.png")
        Image.fromarray(im).save(paths[-1])
    test, _ = _images(np.random.default_rng(1), n_labels=2)
    tpaths = []
    for i, im in enumerate(test):
        tpaths.append(root / f"test{i}.png")
        Image.fromarray(im).save(tpaths[-1])
    gnd = [GroundTruth(np.array([1, 2])), GroundTruth(np.array([4, 5]))]
    return Dataset("tiny", root, tpaths, [tpaths[0], tpaths[3]], gnd, bbx=np.array([[4, 4, 60, 50], [0, 8, 72, 56]]),
                   train=paths, train_labels=labels)


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """One cache for the module's tests (the trunk maps are shared), never the user's; module-scoped, so that it
    is set before the module-scoped fixtures that train."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSEKIT_CACHE", str(tmp_path_factory.mktemp("finetune-cache")))
        yield


def _same_history(a, b):
    drop = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    return drop(a) == drop(b)


@pytest.mark.parametrize("name, ns", [("efficientnet_lite0", (0, 2, 16)), ("vgg16", (0, 1, 3, 13)),
                                      ("resnet50", (0, 1, 3))])
def test_the_head_of_the_trunk_is_the_feature_map(name, ns, backbone):
    net = backbone if name == "efficientnet_lite0" else load_backbone(name, pretrained=False)
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = net.feature_map(x)
        for n in ns:
            trunk, head = split_backbone(net, n)
            assert not head.training
            torch.testing.assert_close(head(trunk(x)), ref, rtol=1e-5, atol=1e-5)
    trunk, head = split_backbone(net, ns[-1])
    mine = {p.data_ptr() for p in head.parameters()}
    assert mine and not mine & {p.data_ptr() for p in net.model.parameters()}     # a copy, not the backbone's
    with pytest.raises(ValueError, match="n_trainable must be"):
        split_backbone(net, 99)


def test_the_untrained_head_is_gem_of_the_feature_map(backbone):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(60, 80, 3), (80, 60, 3), (45, 60, 3)]]
    trunk, module = split_backbone(backbone, 2)
    head = RetrievalHead(module, 2)
    with torch.inference_mode():
        xs = [to_tensor(resize_longer(im, 96), backbone)[None] for im in images]
        maps = [trunk(x)[0] for x in xs]
        want = torch.cat([torch.nn.functional.normalize(gem(backbone.feature_map(x)), dim=1) for x in xs])
    order = [0, 1, 2, 0]                                    # two shapes interleaved, and a repeat
    got = head_descriptors(head, [maps[i] for i in order])
    assert got.shape == (4, 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, want[order].numpy(), rtol=1e-4, atol=1e-5)


def test_trunk_maps_are_cached_and_a_changed_parameter_recomputes_them(backbone, tiny, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    train = [shutil.copy(p, tmp_path / p.name) for p in tiny.train]              # its own files: one is changed
    tiny = dataclasses.replace(tiny, train=train)
    maps, saved = dataset_trunk_maps(tiny, "train", backbone, 2, SIZE, progress=False)
    assert saved == 0.0 and len(maps) == 18 and maps[0].dtype == np.float16 and maps[0].shape == (192, 1, 2)
    trunk, _ = split_backbone(backbone, 2)
    with torch.inference_mode():
        x = to_tensor(resize_longer(np.asarray(Image.open(tiny.train[5]).convert("RGB")), SIZE), backbone)
        np.testing.assert_allclose(maps[5], trunk(x[None])[0].numpy(), rtol=2e-3, atol=2e-3)
    again, saved = dataset_trunk_maps(tiny, "train", backbone, 2, SIZE, progress=False)
    assert saved > 0 and all(np.array_equal(a, b) for a, b in zip(maps, again))
    other, saved = dataset_trunk_maps(tiny, "train", backbone, 1, SIZE, progress=False)     # another cut
    assert saved == 0.0 and not np.array_equal(other[5], maps[5])
    bigger, saved = dataset_trunk_maps(tiny, "train", backbone, 2, 96, progress=False)      # another size
    assert saved == 0.0 and bigger[0].shape == (192, 2, 3)
    queries, saved = dataset_trunk_maps(tiny, "queries", backbone, 2, SIZE, progress=False)  # cropped to the boxes
    assert saved == 0.0 and queries[0].shape[1:] != maps[0].shape[1:]
    Image.fromarray(np.zeros((56, 72, 3), np.uint8)).save(tiny.train[0])                   # a changed file
    changed, saved = dataset_trunk_maps(tiny, "train", backbone, 2, SIZE, progress=False)
    assert saved == 0.0 and not np.array_equal(changed[0], maps[0])


@pytest.fixture(scope="module")
def trained(backbone, tiny):
    """Three epochs from the untrained head, with the backbone's weights before training."""
    before = copy.deepcopy(backbone.model.state_dict())
    head, history = finetune(tiny, backbone, epochs=3, lr=1e-3, **FAST)
    return head, history, before


def _loss_over_every_pair(head, maps, labels):
    V = torch.from_numpy(head_descriptors(head, maps))
    i, j = np.triu_indices(len(labels), 1)
    return float(contrastive_loss(V[i], V[j], torch.from_numpy((labels[i] == labels[j]).astype(np.float32))))


def test_training_lowers_the_loss_and_leaves_the_backbone_alone(backbone, tiny, trained):
    head, history, before = trained
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "loss", "seconds", "positive_similarity", "negative_similarity", "p", "lr"}
    maps, _ = dataset_trunk_maps(tiny, "train", backbone, 1, SIZE, progress=False)
    untrained = RetrievalHead(split_backbone(backbone, 1)[1], 1)
    after_loss, before_loss = (_loss_over_every_pair(h, maps, tiny.train_labels) for h in (head, untrained))
    assert after_loss < 0.8 * before_loss
    assert history[-1]["p"] != 3.0                          # GeM's p is learned
    after = backbone.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    bn = [m for m in head.head.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    bn0 = [m for m in untrained.head.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    assert torch.equal(bn.running_mean, bn0.running_mean) and not torch.equal(bn.weight, bn0.weight)
    X = finetuned_descriptors(tiny, "db", head, backbone, progress=False)
    assert X.shape == (6, 1280) and X.dtype == np.float32 and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)


def test_the_same_seed_gives_the_same_history_and_another_seed_another(backbone, tiny, trained):
    head, history, _ = trained
    head2, history2 = finetune(tiny, backbone, epochs=3, lr=1e-3, **FAST)
    assert _same_history(history, history2)
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), head2.state_dict().values()))
    _, other = finetune(tiny, backbone, epochs=1, lr=1e-3, seed=1, **FAST)
    assert other[0]["loss"] != history[0]["loss"]


def test_resuming_a_checkpoint_is_training_straight_through(backbone, tiny, trained, tmp_path):
    head, history, _ = trained
    path = tmp_path / "ft.pt"
    _, first = finetune(tiny, backbone, epochs=1, lr=1e-3, checkpoint=path, **FAST)
    assert len(first) == 1 and path.is_file()
    resumed, rest = finetune(tiny, backbone, epochs=3, lr=1e-3, checkpoint=path, **FAST)
    assert _same_history(rest, history)
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), resumed.state_dict().values()))
    loaded = load_finetuned(path, backbone)
    assert loaded.meta["epochs"] == 3 and loaded.meta["size"] == SIZE and loaded.n_trainable == 1
    np.testing.assert_array_equal(finetuned_descriptors(tiny, "queries", loaded, backbone, progress=False),
                                  finetuned_descriptors(tiny, "queries", head, backbone, progress=False))
    again, same = finetune(tiny, backbone, epochs=3, lr=1e-3, checkpoint=path, **FAST)    # done: only loaded
    assert same == rest and again.meta["loaded_epochs"] == 3


def test_an_automatic_checkpoint_lives_in_the_cache_and_is_loaded(backbone, tiny):
    import os
    from pathlib import Path

    _, history = finetune(tiny, backbone, epochs=1, lr=1e-3, checkpoint="auto", **FAST)
    files = list((Path(os.environ["COURSEKIT_CACHE"]) / "finetune").glob("tiny-*.pt"))
    assert len(files) == 1
    head, again = finetune(tiny, backbone, epochs=1, lr=1e-3, checkpoint="auto", **FAST)
    assert again == history and head.meta["loaded_epochs"] == 1
    finetune(tiny, backbone, epochs=1, lr=2e-3, checkpoint="auto", **FAST)              # other parameters, other file
    assert len(list(files[0].parent.glob("tiny-*.pt"))) == 2


def test_a_checkpoint_trained_otherwise_is_refused_and_kept(backbone, tiny, tmp_path):
    path = tmp_path / "ft.pt"
    finetune(tiny, backbone, epochs=1, lr=1e-3, checkpoint=path, **FAST)
    saved = path.read_bytes()
    with pytest.raises(ValueError, match=r"lr: 0\.001 in the checkpoint, 0\.0001 now.*another checkpoint path"):
        finetune(tiny, backbone, epochs=2, lr=1e-4, checkpoint=path, **FAST)
    with pytest.raises(ValueError, match="loss: 'contrastive' in the checkpoint, 'triplet' now"):
        finetune(tiny, backbone, epochs=2, lr=1e-3, loss="triplet", checkpoint=path, **FAST)
    assert path.read_bytes() == saved
    with pytest.raises(ValueError, match="trained on efficientnet_lite0"):
        load_finetuned(path, load_backbone("resnet50", pretrained=False))


def test_the_triplet_loss_trains_too(backbone, tiny):
    head, history = finetune(tiny, backbone, epochs=2, lr=1e-3, loss="triplet", **FAST)
    assert head.meta["margin"] == 0.1 and len(history) == 2 and np.isfinite(history[-1]["loss"])
    with pytest.raises(ValueError, match="loss must be"):
        finetune(tiny, backbone, epochs=1, loss="hinge", **FAST)


def test_the_gem_finetuned_method_trains_once_then_loads(tiny):
    from coursekit.methods import GLOBAL_METHODS, METHODS, gem_finetuned

    assert METHODS["gem_finetuned"][0] is gem_finetuned and "gem_finetuned" in GLOBAL_METHODS
    settings = {k: v for k, v in FAST.items() if k not in ("size", "progress")} | {"epochs": 2, "lr": 1e-3, "seed": 7}
    first = gem_finetuned(tiny, size=SIZE, progress=False, settings=settings)
    assert first.X_db.shape == (6, 1280) and first.X_q.shape == (2, 1280) and first.cached_seconds == 0
    np.testing.assert_allclose(first.sims, first.X_q @ first.X_db.T, rtol=1e-6)
    again = gem_finetuned(tiny, size=SIZE, progress=False, settings=settings, with_train=True)
    assert again.cached_seconds > 0 and again.X_train.shape == (18, 1280)       # the checkpoint was loaded
    np.testing.assert_allclose(again.X_db, first.X_db, atol=1e-6)
    untrained = finetuned_descriptors(tiny, "db", RetrievalHead(split_backbone(load_backbone(), 1)[1], 1),
                                      load_backbone(), SIZE, progress=False)
    assert np.abs(untrained - first.X_db).max() > 1e-3                          # it is not off-the-shelf GeM
    no_labels = copy.copy(tiny)
    no_labels.train_labels = None
    with pytest.raises(ValueError, match="labelled training split"):
        gem_finetuned(no_labels, size=SIZE, progress=False, settings=settings)


def test_gem_finetuned_can_learn_on_another_dataset(tiny, monkeypatch):
    import coursekit.datasets
    from coursekit.methods import evaluate_method

    settings = {k: v for k, v in FAST.items() if k not in ("size", "progress")} | {"epochs": 1, "lr": 1e-3}
    untrained = copy.copy(tiny)
    untrained.name, untrained.train, untrained.train_labels = "untrained", [], None
    monkeypatch.setattr(coursekit.datasets, "load_dataset", lambda name, root=None: tiny)
    out = evaluate_method("gem_finetuned", untrained, progress=False, train_on="tiny", size=SIZE, settings=settings)
    assert out["method"] == "gem_finetuned(trained on tiny)" and out["dataset"] == "untrained"
    with pytest.raises(ValueError, match="--train-on embedded"):
        evaluate_method("gem_finetuned", untrained, progress=False, size=SIZE, settings=settings)
