"""Local features: SIFT extraction against known geometry, RootSIFT against the
Hellinger kernel, matching against brute-force loops, the disk cache, and the
methods built on them (sift_match, sift_ransac) on a tiny dataset."""

import cv2
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from skimage import data as skdata

from coursekit import geometry, local
from coursekit.datasets import Dataset, GroundTruth
from coursekit.evaluation import ranks_from_similarities
from coursekit.methods import METHODS, sift_match, sift_ransac


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def photo():
    return skdata.astronaut()  # (512, 512, 3) uint8


H_WARP = np.array([[0.9, 0.15, 30.0], [-0.1, 0.95, 40.0], [2e-4, 1e-4, 1.0]])


def warped(image, H=H_WARP):
    return cv2.warpPerspective(image, H, (image.shape[1], image.shape[0]))


def correct_fraction(kp1, kp2, matches, H, tol=3.0):
    err = geometry.transfer_errors(H, kp1[matches[:, 0], :2], kp2[matches[:, 1], :2])
    return float((err < tol).mean())


# --------------------------------------------------------------------------- one image

def test_sift_shapes_order_and_cap(photo):
    kp, desc = local.sift(photo, max_features=300)
    assert kp.shape == (300, 4) and kp.dtype == np.float32
    assert desc.shape == (300, 128) and desc.dtype == np.float32
    assert np.array_equal(desc, np.round(desc)) and desc.min() >= 0 and desc.max() <= 255
    assert np.all(np.diff(kp[:, 1]) >= 0)                      # sorted by y
    assert (kp[:, 2] > 0).all() and ((kp[:, 3] >= 0) & (kp[:, 3] < 360)).all()
    kp_all, _ = local.sift(photo, max_features=None)
    assert len(kp_all) > 300
    # the cap keeps the strongest, as OpenCV's own nfeatures does (up to which of two equally
    # strong orientations of one point is kept)
    cv_kp = cv2.SIFT_create(nfeatures=300).detect(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), None)
    theirs = np.array([(k.pt[0], k.pt[1], k.size) for k in cv_kp], np.float32)
    theirs = theirs[np.lexsort((theirs[:, 2], theirs[:, 0], theirs[:, 1]))]
    ours = kp[np.lexsort((kp[:, 2], kp[:, 0], kp[:, 1])), :3]
    assert np.allclose(ours, theirs, atol=1e-4)


def test_sift_does_not_depend_on_opencv_threads(photo):
    threads = cv2.getNumThreads()
    try:
        results = []
        for n in (1, threads, 4):
            cv2.setNumThreads(n)
            results.append(local.sift(photo, max_features=150))
    finally:
        cv2.setNumThreads(threads)
    for kp, desc in results[1:]:
        assert np.array_equal(kp, results[0][0]) and np.array_equal(desc, results[0][1])


def test_sift_on_grey_and_blank_images(photo):
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    kp_rgb, d_rgb = local.sift(photo)
    kp_grey, d_grey = local.sift(grey)
    assert np.array_equal(kp_rgb, kp_grey) and np.array_equal(d_rgb, d_grey)
    kp, desc = local.sift(np.full((64, 64, 3), 128, np.uint8))
    assert kp.shape == (0, 4) and desc.shape == (0, 128)
    with pytest.raises(ValueError, match="uint8"):
        local.sift(photo.astype(np.float32))


def test_matches_follow_a_known_homography(photo):
    kp1, d1 = local.sift(photo)
    kp2, d2 = local.sift(warped(photo))
    m = local.ratio_test(local.rootsift(d1), local.rootsift(d2))
    assert len(m) > 100
    assert correct_fraction(kp1, kp2, m, H_WARP) > 0.9


def test_shrunk_extraction_maps_keypoints_back(photo):
    """With max_size below the image size, x, y and size are still in the image's own pixels."""
    big = cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    S = np.diag([2.0, 2.0, 1.0]) @ H_WARP @ np.diag([0.5, 0.5, 1.0])   # the warp in the big image's pixels
    kp1, d1 = local.sift(big, max_size=512)
    kp2, d2 = local.sift(warped(big, S), max_size=512)
    assert kp1[:, :2].max() > 700                                      # coordinates of the 1024-px image
    m = local.ratio_test(local.rootsift(d1), local.rootsift(d2))
    assert len(m) > 100 and correct_fraction(kp1, kp2, m, S, tol=5.0) > 0.9
    # and the same keypoints as extracted from the shrunk image, mapped with the pixel-centre rule
    small = cv2.resize(cv2.cvtColor(big, cv2.COLOR_RGB2GRAY), (512, 512), interpolation=cv2.INTER_AREA)
    kp_small, _ = local.sift(small, max_size=None)
    mapped = np.c_[(kp_small[:, :2] + 0.5) * 2 - 0.5, kp_small[:, 2] * 2]
    assert np.allclose(np.sort(mapped[:, 0]), np.sort(kp1[:, 0]), atol=1e-3)
    assert np.allclose(np.sort(mapped[:, 2]), np.sort(kp1[:, 2]), atol=1e-3)


def test_angle_is_clockwise_on_screen(photo):
    """np.rot90 turns the picture 90 degrees anticlockwise on screen: every angle drops by 90."""
    kp1, d1 = local.sift(photo)
    rotated = np.ascontiguousarray(np.rot90(photo))
    kp2, d2 = local.sift(rotated)
    m = local.ratio_test(local.rootsift(d1), local.rootsift(d2))
    W = photo.shape[1]
    R = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, W - 1.0], [0.0, 0.0, 1.0]])   # (x, y) -> (y, W - 1 - x)
    good = geometry.transfer_errors(R, kp1[m[:, 0], :2], kp2[m[:, 1], :2]) < 2
    assert good.sum() > 100
    turn = (kp2[m[good, 1], 3] - kp1[m[good, 0], 3] + 90 + 180) % 360 - 180   # expected 0
    assert np.median(np.abs(turn)) < 5


# --------------------------------------------------------------------------- RootSIFT

def hellinger_kernel(x, y):
    """sum_i sqrt(x_i y_i) / sqrt(|x|_1 |y|_1), one pair at a time."""
    return sum(np.sqrt(float(a) * float(b)) for a, b in zip(x, y)) / np.sqrt(float(sum(x)) * float(sum(y)))


def test_rootsift_distance_is_the_hellinger_kernel(photo):
    _, desc = local.sift(photo, max_features=40)
    r = local.rootsift(desc)
    assert r.dtype == np.float32 and np.allclose(np.linalg.norm(r, axis=1), 1, atol=1e-5)
    for i, j in [(0, 1), (3, 7), (10, 39), (5, 5)]:
        k = hellinger_kernel(desc[i], desc[j])
        assert np.sum((r[i] - r[j]) ** 2) == pytest.approx(2 - 2 * k, abs=1e-5)
        assert float(r[i] @ r[j]) == pytest.approx(k, abs=1e-5)


def test_rootsift_zero_row_and_input_untouched():
    desc = np.array([[0, 0, 0, 0], [1, 0, 3, 0]], np.float32)
    before = desc.copy()
    r = local.rootsift(desc)
    assert np.array_equal(desc, before)
    assert np.allclose(r, [[0, 0, 0, 0], [0.5, 0, np.sqrt(0.75), 0]])


# --------------------------------------------------------------------------- matching

def brute_force(X, Y):
    """For each row of X: (nearest j, distance to it, distance to the second nearest), by loops."""
    out = []
    for x in X.astype(np.float64):
        d = [np.sqrt(((x - y) ** 2).sum()) for y in Y.astype(np.float64)]
        order = np.argsort(d, kind="stable")
        out.append((int(order[0]), d[order[0]], d[order[1]] if len(d) > 1 else np.inf))
    return out


@pytest.fixture
def descriptors():
    rng = np.random.default_rng(3)
    Y = rng.integers(0, 200, size=(60, 128)).astype(np.float32)
    X = np.vstack([Y[rng.integers(0, 60, 25)] + rng.normal(0, 30, (25, 128)),
                   rng.integers(0, 200, size=(15, 128))]).astype(np.float32)
    return X, Y


def test_squared_distances(descriptors):
    X, Y = descriptors
    assert np.allclose(local.squared_distances(X, Y), cdist(X, Y, "sqeuclidean"), rtol=1e-4, atol=1e-1)


def test_two_nearest_match_nn_and_ratio_test(descriptors):
    X, Y = descriptors
    truth = brute_force(X, Y)
    j1, d1, d2 = local.two_nearest(X, Y)
    assert j1.tolist() == [t[0] for t in truth]
    assert np.allclose(d1, [t[1] for t in truth], rtol=1e-4) and np.allclose(d2, [t[2] for t in truth], rtol=1e-4)
    assert local.match_nn(X, Y).tolist() == [[i, t[0]] for i, t in enumerate(truth)]
    for ratio in (0.6, 0.8, 0.9):
        expected = [[i, t[0]] for i, t in enumerate(truth) if t[1] < ratio * t[2]]
        got = local.ratio_test(X, Y, ratio)
        assert got.dtype == np.int64 and got.shape == (len(expected), 2) and got.tolist() == expected


def test_ratio_test_edge_cases(descriptors):
    X, Y = descriptors
    assert local.ratio_test(X, Y[:1]).shape == (0, 2)      # no second neighbour, no match
    assert local.ratio_test(X[:0], Y).shape == (0, 2)
    assert local.ratio_test(X, Y, ratio=1e-6).shape == (0, 2)


def test_mutual_nn(descriptors):
    X, Y = descriptors
    D = cdist(X, Y)
    expected = [[i, int(D[i].argmin())] for i in range(len(X)) if D[:, D[i].argmin()].argmin() == i]
    assert local.mutual_nn(X, Y).tolist() == expected
    assert local.mutual_nn(X, Y[:0]).shape == (0, 2)


def test_ratio_matches_many_equals_ratio_test_per_image():
    rng = np.random.default_rng(5)
    counts = [0, 1, 2, 3, 17, 40, 5, 40, 9]
    desc = rng.integers(0, 120, size=(sum(counts), 128)).astype(np.uint8)
    feats = local.LocalFeatures(np.zeros((sum(counts), 4), np.float32), desc,
                                np.cumsum([0] + counts).astype(np.int64))
    X = local.rootsift(np.vstack([desc[5:20] + rng.integers(0, 9, (15, 128)), rng.integers(0, 120, (10, 128))]))
    blocks = local.pad_features(feats, np.arange(len(counts)), max_rows=64)
    assert len(blocks) > 2
    ids, nn, ok = local.ratio_matches_many(X, blocks, ratio=0.8, one_to_one=False)
    assert sorted(ids.tolist()) == [i for i, c in enumerate(counts) if c >= 2]
    for col, i in enumerate(ids):
        expected = local.ratio_test(X, feats.descriptors(i), 0.8)
        rows = np.flatnonzero(ok[:, col])
        assert np.stack([rows, nn[rows, col]], axis=1).tolist() == expected.tolist()
    # the same matches split per image, in the order asked, images without descriptors empty
    asked = [7, 0, 4, 1, 5]
    for image, m in zip(asked, local.matches_per_image(ids, nn, ok, asked)):
        assert m.dtype == np.int64 and m.shape[1] == 2
        expected = local.ratio_test(X, feats.descriptors(image), 0.8) if counts[image] >= 2 else np.zeros((0, 2))
        assert m.tolist() == expected.tolist()


def _repeated_texture(seed: int):
    """Features of 9 images and query descriptors of which many are near copies of a few database ones."""
    rng = np.random.default_rng(seed)
    counts = [0, 1, 2, 3, 17, 40, 5, 40, 9]
    desc = rng.integers(0, 120, size=(sum(counts), 128)).astype(np.uint8)
    feats = local.LocalFeatures(np.zeros((sum(counts), 4), np.float32), desc,
                                np.cumsum([0] + counts).astype(np.int64))
    picks = rng.choice(np.arange(5, 20), 40)                     # repeats: several query rows near one db row
    X = local.rootsift(np.vstack([desc[picks] + rng.integers(0, 9, (40, 128)), rng.integers(0, 120, (10, 128))]))
    return counts, feats, X


def test_nearest_many_equals_two_nearest_per_image():
    counts, feats, X = _repeated_texture(2)
    ids, nn, d1, d2 = local.nearest_many(X, local.pad_features(feats, np.arange(len(counts)), max_rows=64))
    assert nn.shape == d1.shape == d2.shape == (len(X), len(ids)) and d1.dtype == np.float32
    for col, i in enumerate(ids):
        j1, e1, e2 = local.two_nearest(X, local.rootsift(feats.desc[feats.offsets[i]:feats.offsets[i + 1]]))
        assert np.array_equal(nn[:, col], j1)
        assert np.allclose(d1[:, col], e1, atol=1e-3) and np.allclose(d2[:, col], e2, atol=1e-3)


def test_ratio_matches_many_one_to_one_equals_one_to_one_per_image():
    counts, feats, X = _repeated_texture(3)
    blocks = local.pad_features(feats, np.arange(len(counts)), max_rows=64)
    ids, nn, ok = local.ratio_matches_many(X, blocks, ratio=0.8)                    # one_to_one is the default
    _, _, many = local.ratio_matches_many(X, blocks, ratio=0.8, one_to_one=False)
    assert many.sum() > ok.sum()                                                   # the repeats were there
    for col, i in enumerate(ids):
        Y = local.rootsift(feats.desc[feats.offsets[i]:feats.offsets[i + 1]])
        pairs = local.ratio_test(X, Y, 0.8)
        _, d1, _ = local.two_nearest(X, Y)
        expected = local.one_to_one(pairs, d1[pairs[:, 0]])
        rows = np.flatnonzero(ok[:, col])
        assert np.stack([rows, nn[rows, col]], axis=1).tolist() == expected.tolist()
        assert len(set(nn[rows, col].tolist())) == len(rows)                       # each db keypoint once


# --------------------------------------------------------------------------- many images, cached

@pytest.fixture
def image_files(tmp_path, photo):
    paths = []
    for k, (y, x) in enumerate([(0, 0), (0, 200), (200, 0), (200, 200), (100, 100)]):
        p = tmp_path / f"img{k}.png"
        cv2.imwrite(str(p), cv2.cvtColor(photo[y:y + 300, x:x + 300], cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def counting(monkeypatch):
    calls = []
    original = local._sift_file_star

    def spy(job):
        calls.append(job[0].name)
        return original(job)
    monkeypatch.setattr(local, "_sift_file_star", spy)
    return calls


def test_extract_sift_matches_sift_and_caches_per_block(image_files, monkeypatch, photo):
    monkeypatch.setattr(local, "_BLOCK", 2)
    calls = counting(monkeypatch)
    feats, saved = local.extract_sift(image_files, max_features=200, workers=0, progress=False)
    assert len(feats) == 5 and saved == 0.0 and len(calls) == 5
    assert feats.desc.dtype == np.uint8 and feats.offsets[-1] == len(feats.kp) == len(feats.desc)
    kp, desc = local.sift(photo[200:500, 200:500], max_features=200)
    assert np.array_equal(feats.keypoints(3), kp) and np.array_equal(feats.descriptors(3, root=False), desc)
    assert np.allclose(feats.descriptors(3), local.rootsift(desc))

    again, saved = local.extract_sift(image_files, max_features=200, workers=0, progress=False)
    assert len(calls) == 5 and saved > 0                    # all from the cache
    assert all(np.array_equal(getattr(feats, a), getattr(again, a)) for a in ("kp", "desc", "offsets"))

    image_files[4].write_bytes(image_files[4].read_bytes())   # touched: a new mtime
    local.extract_sift(image_files, max_features=200, workers=0, progress=False)
    assert calls[5:] == ["img4.png"]                       # only its block is recomputed
    local.extract_sift(image_files, max_features=100, workers=0, progress=False)
    assert len(calls) == 11                                # a new parameter recomputes all


def test_extract_sift_crops_to_boxes(image_files, photo):
    boxes = np.array([[10, 20, 110, 220]] * len(image_files), np.float32)
    feats, _ = local.extract_sift(image_files, boxes, workers=0, progress=False)
    kp, _ = local.sift(photo[20:220, 10:110])
    assert np.array_equal(feats.keypoints(0), kp)


@pytest.mark.slow
def test_worker_processes_give_the_same_features(image_files):
    serial, _ = local.extract_sift(image_files, workers=0, progress=False, cache=False)
    pooled, _ = local.extract_sift(image_files, workers=2, progress=False, cache=False)
    assert all(np.array_equal(getattr(serial, a), getattr(pooled, a)) for a in ("kp", "desc", "offsets"))


def test_a_broken_pool_falls_back_to_this_process(image_files, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *a, **k):
            pass

        def map(self, *a, **k):
            raise BrokenProcessPool("no")

        def shutdown(self, **k):
            pass
    monkeypatch.setattr(local, "ProcessPoolExecutor", Broken)
    with pytest.warns(UserWarning, match="extracting in this process instead"):
        feats, _ = local.extract_sift(image_files, workers=2, progress=False, cache=False)
    serial, _ = local.extract_sift(image_files, workers=0, progress=False, cache=False)
    assert np.array_equal(feats.desc, serial.desc)


def test_concatenate():
    a = local.LocalFeatures(np.ones((3, 4), np.float32), np.ones((3, 128), np.uint8), np.array([0, 1, 3]))
    b = local.LocalFeatures(np.zeros((2, 4), np.float32), np.zeros((2, 128), np.uint8), np.array([0, 2]))
    c = local.LocalFeatures.concatenate([a, b])
    assert c.offsets.tolist() == [0, 1, 3, 5] and c.counts.tolist() == [1, 2, 2] and len(c) == 3
    assert c.keypoints(2).sum() == 0 and c.keypoints(1).sum() == 8


# --------------------------------------------------------------------------- the methods

@pytest.fixture
def tiny_dataset(tmp_path):
    """Five database images of different photos; two queries, warped views of db 1 and db 3."""
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket(),
              np.repeat(skdata.camera()[:, :, None], 3, axis=2)]
    db = []
    for k, img in enumerate(photos):
        p = tmp_path / f"db{k}.png"
        cv2.imwrite(str(p), cv2.cvtColor(np.ascontiguousarray(img[:300, :400]), cv2.COLOR_RGB2BGR))
        db.append(p)
    queries = []
    for k in (1, 3):
        p = tmp_path / f"q{k}.png"
        cv2.imwrite(str(p), warped(cv2.imread(str(db[k]))))
        queries.append(p)
    gnd = [GroundTruth(np.array([1])), GroundTruth(np.array([3]))]
    return Dataset("tiny", tmp_path, db, queries, gnd)


def test_methods_are_registered():
    assert METHODS["sift_match"][0] is sift_match and METHODS["sift_ransac"][0] is sift_ransac


def test_sift_match_and_ransac_find_the_warped_image(tiny_dataset):
    for method in (sift_match, sift_ransac):
        result = method(tiny_dataset, progress=False)
        assert result.sims.shape == (2, 5) and result.X_db is None
        assert ranks_from_similarities(result.sims)[:, 0].tolist() == [1, 3]


def test_sift_match_counts_one_to_one_ratio_test_matches(tiny_dataset):
    sims = sift_match(tiny_dataset, progress=False).sims
    fdb, _ = local.extract_sift(tiny_dataset.db, max_features=500, progress=False)
    fq, _ = local.extract_sift(tiny_dataset.queries, max_features=500, progress=False)
    for q in range(2):
        for i in range(5):
            X, Y = fq.descriptors(q), fdb.descriptors(i)
            _, d1, _ = local.two_nearest(X, Y)
            pairs = local.ratio_test(X, Y, 0.7)                       # sift_match's ratio
            assert sims[q, i] == len(local.one_to_one(pairs, d1[pairs[:, 0]]))


@pytest.mark.parametrize("model", [None, "affine"])
def test_sift_ransac_verifies_one_to_one_matches_with_plausible_models(tiny_dataset, model):
    """The definition: each image of the short list scores the inliers of geometry.spatial_verification on its
    one-to-one ratio-test matches at verify_ratio (0.8), a homography by default or the model asked for,
    degenerate models refused (max_scale=8)."""
    result = sift_ransac(tiny_dataset, top=3, progress=False, **({"model": model} if model else {}))
    fdb, _ = local.extract_sift(tiny_dataset.db, max_features=500, progress=False)
    fq, _ = local.extract_sift(tiny_dataset.queries, max_features=500, progress=False)
    for q in range(2):
        short = np.argsort(-result.first_stage[q], kind="stable")[:3]
        matches = []
        for i in short:
            X, Y = fq.descriptors(q), fdb.descriptors(i)
            pairs = local.ratio_test(X, Y, 0.8)
            _, d1, _ = local.two_nearest(X, Y)
            matches.append(local.one_to_one(pairs, d1[pairs[:, 0]]))
        _, inliers = geometry.spatial_verification(short, fq.keypoints(q), [fdb.keypoints(i) for i in short],
                                                   matches, model or "homography", rng=q, max_scale=8.0)
        assert inliers.max() > 0
        assert np.floor(result.sims[q, short]).astype(int).tolist() == inliers.tolist()


def test_sift_ransac_reranks_only_the_top(tiny_dataset):
    first = ranks_from_similarities(sift_match(tiny_dataset, progress=False).sims)
    second = ranks_from_similarities(sift_ransac(tiny_dataset, top=3, progress=False).sims)
    assert (np.sort(first[:, :3], axis=1) == np.sort(second[:, :3], axis=1)).all()
    assert (first[:, 3:] == second[:, 3:]).all()


def test_sift_match_on_a_short_list(tiny_dataset):
    """With a database larger than the short list, only the colour short list is matched."""
    from coursekit.methods import color_hist

    colour = ranks_from_similarities(color_hist(tiny_dataset, progress=False).sims)
    ranks = ranks_from_similarities(sift_match(tiny_dataset, shortlist=3, progress=False).sims)
    for q in range(2):
        assert set(ranks[q, :3]) == set(colour[q, :3])
        assert ranks[q, 3:].tolist() == colour[q, 3:].tolist()


def test_sift_ransac_is_cached_under_what_made_it(tiny_dataset, monkeypatch, tmp_path):
    from coursekit import geometry

    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    first = sift_ransac(tiny_dataset, top=3, progress=False)

    def verified_again(*args, **kwargs):
        raise AssertionError("verified again")

    monkeypatch.setattr(geometry, "spatial_verification", verified_again)
    again = sift_ransac(tiny_dataset, top=3, progress=False)
    assert np.array_equal(first.sims, again.sims) and np.array_equal(first.first_stage, again.first_stage)
    assert again.cached_seconds > 0        # what verifying took, so that a timing adds it back
    with pytest.raises(AssertionError, match="verified again"):
        sift_ransac(tiny_dataset, top=3, threshold=4.0, progress=False)      # another setting: verified anew


def test_bow_sv_is_cached_under_its_short_lists(tiny_dataset, monkeypatch, tmp_path):
    from coursekit import geometry
    from coursekit.methods import bow_sv

    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    first = bow_sv(tiny_dataset, k=16, top=3, progress=False)

    def verified_again(*args, **kwargs):
        raise AssertionError("verified again")

    monkeypatch.setattr(geometry, "spatial_verification", verified_again)
    again = bow_sv(tiny_dataset, k=16, top=3, progress=False)
    assert np.array_equal(first.sims, again.sims) and again.cached_seconds > 0
    with pytest.raises(AssertionError, match="verified again"):
        bow_sv(tiny_dataset, k=16, top=2, progress=False)


def test_one_to_one_keeps_the_nearest_match_of_each_database_keypoint():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 30))
        pairs = np.stack([np.arange(n), rng.integers(0, 8, n)], axis=1)
        dist = rng.random(n)
        want = sorted(min((i for i in range(n) if pairs[i, 1] == j), key=lambda i: dist[i])
                      for j in set(pairs[:, 1].tolist()))                  # the definition, one keypoint at a time
        got = local.one_to_one(pairs, dist)
        assert got.dtype == np.int64 and got.tolist() == pairs[want].tolist()
        assert len(set(got[:, 1].tolist())) == len(got)
    first = local.one_to_one(np.array([[0, 5], [1, 5], [2, 4]]))            # no distances: the first pair wins
    assert first.tolist() == [[0, 5], [2, 4]]
