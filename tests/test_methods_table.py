"""The methods' one table (coursekit.methods.table): every list of methods is derived from it, and equals what
the course listed by hand before the table (the literal values below are copied from then)."""

import inspect

import pytest

import coursekit.methods as methods
from coursekit import photo_search
from coursekit.course import report
from coursekit.methods.table import TABLE, Method

METHOD_NAMES = ("color_hist", "color_inter", "gist", "sift_match", "sift_ransac", "bow", "bow_sv", "vlad", "fisher",
                "fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms", "gem_finetuned")
GLOBAL_METHODS = ("color_hist", "gist", "vlad", "fisher", "fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms",
                  "gem_finetuned")
WHITENED = ("vlad", "fisher", "fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms", "gem_finetuned")
PHOTO_METHODS = ("mac", "spoc", "gem", "rmac", "crow", "gem_ms", "fc")
CNN_METHODS = ("fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms", "gem_finetuned")   # the CLI's help listed these
DESCRIPTIONS = {
    "color_hist": "joint HSV colour histogram (16x16x16), Hellinger kernel  [notebook 01]",
    "color_inter": "HSV histogram of pixel counts (16x16x16), intersection, query as model  [notebook 01]",
    "gist": "GIST: Gabor energy, 4 scales x 8 orientations on a 4x4 grid, 512-D  [notebook 01]",
    "sift_match": "RootSIFT one-to-one ratio-test (0.7) match count, 500 keypoints (colour short list past 1000 images)  [notebook 02]",
    "sift_ransac": "sift_match, top 100 re-ranked by RANSAC homography inliers  [notebook 02]",
    "bow": "bag of 4000 visual words (RootSIFT), tf^0.5 idf, inverted file  [notebook 03]",
    "bow_sv": "bow, top 100 re-ranked by RANSAC homography inliers  [notebook 03]",
    "vlad": "VLAD of RootSIFT, 64 words, signed square root, intra + L2 normalised, 8192-D  [notebook 04]",
    "fisher": "improved Fisher vector, 64 Gaussians on PCA-64 RootSIFT, 8192-D  [notebook 04]",
    "fc": "EfficientNet-Lite0's pooled 1280-D vector of the image at 224 x 224 ('neural codes')  [notebook 07]",
    "mac": "MAC of EfficientNet-Lite0's last map, 480 px, 1280-D  [notebook 07]",
    "spoc": "SPoC (sum pooling, centring prior) of EfficientNet-Lite0's last map, 480 px  [notebook 07]",
    "rmac": "R-MAC (regional MACs on 3 scales, normalised, summed) of EfficientNet-Lite0, 480 px  [notebook 07]",
    "crow": "CroW (spatial and channel weights) of EfficientNet-Lite0's last map, 480 px  [notebook 07]",
    "gem": "GeM (p = 3) of EfficientNet-Lite0's last map, 480 px  [notebook 07]",
    "gem_ms": "GeM at 480, 339 and 240 px, combined  [notebook 07]",
    "gem_finetuned": "GeM, last two blocks and p fine-tuned on the training split (contrastive, hard negatives), "
                     "480 px  [notebook 08]",
}


def test_methods_maps_each_name_in_order_to_its_function_and_description():
    assert tuple(methods.METHODS) == METHOD_NAMES
    assert {name: line for name, (_, line) in methods.METHODS.items()} == DESCRIPTIONS
    assert all(fn is getattr(methods, name) for name, (fn, _) in methods.METHODS.items())
    assert methods.describe_methods() == DESCRIPTIONS


def test_global_methods_are_todays_in_todays_order():
    assert methods.GLOBAL_METHODS == GLOBAL_METHODS


def test_the_course_report_whitens_the_same_methods_as_before():
    assert report.WHITENED == methods.WHITENED_METHODS == WHITENED


def test_photo_search_indexes_the_same_methods_in_the_same_order():
    assert photo_search.PHOTO_METHODS == methods.PHOTO_METHODS == PHOTO_METHODS


def test_the_cnn_methods_are_those_that_take_a_backbone():
    assert methods.CNN_METHODS == CNN_METHODS


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.name)
def test_every_rows_function_exists_and_takes_ds_first(row: Method):
    assert callable(row.fn) and row.fn.__name__ == row.name and getattr(methods, row.name) is row.fn
    params = list(inspect.signature(row.fn).parameters.values())
    assert params[0].name == "ds" and params[0].default is inspect.Parameter.empty
    assert "progress" in inspect.signature(row.fn).parameters


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.name)
def test_every_row_is_consistent(row: Method):
    takes = inspect.signature(row.fn).parameters
    assert row.notebook.isdigit() and len(row.notebook) == 2
    assert row.global_ == ("with_train" in takes)            # run_method asks global methods for training vectors
    assert not row.whitenable or row.global_                 # whitening needs global vectors
    assert not row.photo or (row.global_ and row.cnn)        # a photo is embedded by a network, with no training


def test_names_and_photo_places_are_unique_and_rows_are_frozen():
    assert len({row.name for row in TABLE}) == len(TABLE)
    places = [row.photo for row in TABLE if row.photo]
    assert sorted(places) == list(range(1, len(places) + 1))
    with pytest.raises(AttributeError):
        TABLE[0].name = "renamed"
