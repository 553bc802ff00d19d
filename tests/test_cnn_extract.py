"""Extraction of pooled CNN vectors: shapes, batching by size, scales, and a cache that never serves stale vectors."""

import numpy as np
import pytest
import torch
from PIL import Image

from coursekit.cnn.backbones import load_backbone
from coursekit.cnn.extract import POOLINGS, dataset_descriptors, dataset_fc_codes, pooled_descriptors, resize_longer, to_tensor
from coursekit.datasets import Dataset, GroundTruth


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()   # ImageNet weights (random ones leave the last map of noise images all zero)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(60, 80, 3), (90, 120, 3), (80, 60, 3),
                                                                       (30, 40, 3)]]


def test_resize_longer_keeps_the_aspect():
    assert resize_longer(np.zeros((60, 80, 3), np.uint8), 160).shape == (120, 160, 3)
    assert resize_longer(np.zeros((80, 60, 3), np.uint8), 64).shape == (64, 48, 3)


def test_every_pooling_is_the_pooling_of_the_feature_map(backbone, images):
    out = pooled_descriptors(images, backbone, size=96)
    assert set(out) == set(POOLINGS) and all(v.shape == (4, 1280) and v.dtype == np.float32 for v in out.values())
    assert all((v > 0).mean() > 0.1 for v in out.values())             # not a map of zeros
    with torch.inference_mode():
        fmap = backbone.feature_map(to_tensor(resize_longer(images[2], 96), backbone)[None])
    for name, fn in POOLINGS.items():
        np.testing.assert_allclose(out[name][2], fn(fmap)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_batches_of_equal_shapes_give_the_same_vectors(backbone, images):
    one = pooled_descriptors(images, backbone, size=96, poolings=["gem"], batch_size=1)
    many = pooled_descriptors(images, backbone, size=96, poolings=["gem"], batch_size=8)   # images 0, 1, 3 share a shape
    np.testing.assert_allclose(one["gem"], many["gem"], rtol=1e-4, atol=1e-5)


def test_scales_sum_the_normalised_vector_of_each_scale(backbone, images):
    both = pooled_descriptors(images[:2], backbone, size=96, scales=(1.0, 0.5), poolings=["mac"])["mac"]
    a = pooled_descriptors(images[:2], backbone, size=96, poolings=["mac"])["mac"]
    b = pooled_descriptors(images[:2], backbone, size=48, poolings=["mac"])["mac"]
    l2 = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(both, l2(a) + l2(b), rtol=1e-4, atol=1e-5)


def test_a_boxed_image_is_resized_whole_then_cropped(backbone, images):
    im = images[1]                                      # 90 x 120 pixels
    box = np.array([[30.0, 15.0, 90.0, 75.0]])          # 60 x 60 pixels: 80 x 80 once the image is 160 wide
    got = pooled_descriptors([im], backbone, size=160, poolings=["gem"], boxes=box)["gem"]
    with torch.inference_mode():
        crop = resize_longer(im, 160)[20:100, 40:120]   # the object at the scale of the whole image
        fmap = backbone.feature_map(to_tensor(crop, backbone)[None])
    np.testing.assert_allclose(got[0], POOLINGS["gem"](fmap)[0].numpy(), rtol=1e-4, atol=1e-5)
    enlarged = pooled_descriptors([im[15:75, 30:90]], backbone, size=160, poolings=["gem"])["gem"]
    assert not np.allclose(got, enlarged, rtol=1e-2)    # the crop resized to 160 is another, larger, object
    with pytest.raises(ValueError, match="boxes must be"):
        pooled_descriptors([im], backbone, boxes=box[0])


def test_bad_arguments_are_named(backbone, images):
    with pytest.raises(ValueError, match="unknown pooling"):
        pooled_descriptors(images, backbone, poolings=["average"])
    with pytest.raises(ValueError, match="size must be >= 32"):
        pooled_descriptors(images, backbone, size=8)


def test_dataset_cache_reuses_and_invalidates(backbone, images, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    paths = []
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"im{i}.png")
        paths.append(tmp_path / f"im{i}.png")
    ds = Dataset("tiny", tmp_path, paths, paths[:1], [GroundTruth(np.array([0]))])
    first, saved = dataset_descriptors(ds, "db", backbone, size=64, progress=False)
    assert saved == 0.0 and set(first) == set(POOLINGS) and first["mac"].shape == (4, 1280)
    fc, saved = dataset_fc_codes(ds, "db", backbone, progress=False)
    assert saved == 0.0 and fc.shape == (4, 1280)
    assert dataset_fc_codes(ds, "db", backbone, progress=False)[1] > 0
    again, saved = dataset_descriptors(ds, "db", backbone, size=64, progress=False)
    assert saved > 0 and np.array_equal(again["gem"], first["gem"])
    bigger, saved = dataset_descriptors(ds, "db", backbone, size=96, progress=False)       # a changed parameter
    assert saved == 0.0 and not np.allclose(bigger["gem"], first["gem"])
    other = load_backbone("efficientnet_lite0", pretrained=False)                         # other weights
    _, saved = dataset_descriptors(ds, "db", other, size=64, progress=False)
    assert saved == 0.0
    Image.fromarray(images[0][::-1].copy()).save(paths[0])                               # a changed file
    changed, saved = dataset_descriptors(ds, "db", backbone, size=64, progress=False)
    assert saved == 0.0 and not np.allclose(changed["gem"][0], first["gem"][0])


def test_throughput_is_measured_against_the_plain_loop(backbone, images):
    from coursekit.cnn.extract import measure_throughput, plain_loop

    np.testing.assert_allclose(plain_loop(images, backbone, 64), pooled_descriptors(images, backbone, 64)["gem"],
                               rtol=1e-4, atol=1e-5)
    rows = measure_throughput(images, backbone, 64, batch_sizes=(1, 2), repeat=1)
    assert [r["batch_size"] for r in rows] == [1, 1, 2] and rows[0]["ratio"] == 1.0
    assert all(r["images_per_s"] > 0 for r in rows)


def test_a_crop_under_the_networks_smallest_side_is_enlarged_to_it(backbone, images, tmp_path, monkeypatch, capsys):
    """A query box that comes out under MIN_SIDE pixels (a small box in a large photo, or a thin one) cannot go
    through the network as it is: it is enlarged, aspect kept, until its shorter side is MIN_SIDE, and the
    queries it touched are counted and named."""
    from coursekit.cnn.extract import MIN_SIDE

    im = images[1]                                      # 90 x 120 pixels, resized to 120 x 160
    boxes = np.array([[30.0, 15.0, 90.0, 75.0],         # 80 x 80 once resized: as it is
                      [30.0, 15.0, 90.0, 30.0],         # 80 x 20: enlarged to 128 x 32
                      [10.0, 10.0, 14.0, 40.0]])        # a thin 1:7.5 box, 5.33 x 40 -> about 6 x 40: to 32 x 213
    upsampled = set()
    got = pooled_descriptors([im] * 3, backbone, size=160, poolings=["gem"], boxes=boxes, upsampled=upsampled)["gem"]
    assert upsampled == {1, 2} and np.isfinite(got).all() and (np.linalg.norm(got, axis=1) > 0).all()
    with torch.inference_mode():
        crop = resize_longer(im, 160)[20:40, 40:120]                                   # 20 x 80
        crop = np.asarray(Image.fromarray(crop).resize((128, MIN_SIDE), Image.BILINEAR))   # 32 x 128
        fmap = backbone.feature_map(to_tensor(crop, backbone)[None])
    np.testing.assert_allclose(got[1], POOLINGS["gem"](fmap)[0].numpy(), rtol=1e-4, atol=1e-5)
    # through the dataset cache: computed once, and the message names the queries
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    Image.fromarray(im).save(tmp_path / "photo.png")
    ds = Dataset("tiny", tmp_path, [tmp_path / "photo.png"], [tmp_path / "photo.png"] * 3,
                 [GroundTruth(np.array([0]))] * 3, bbx=boxes)
    X, _ = dataset_descriptors(ds, "queries", backbone, size=160, scales=(1.0, 0.25), progress=False)
    err = capsys.readouterr()
    assert "tiny: 3 of 3 query boxes came out under 32 px at 160 px" in err.out + err.err   # at scale 1/4, all
    assert "0 (photo.png), 1 (photo.png), 2 (photo.png)" in err.out + err.err
    dataset_descriptors(ds, "queries", backbone, size=160, scales=(1.0, 0.25), progress=False)   # cached: silent
    assert "came out under" not in "".join(capsys.readouterr())
