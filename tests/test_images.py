"""coursekit.images: every kind of file a user will meet, made in a temporary folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from coursekit.images import (
    IMAGE_SUFFIXES,
    ImageError,
    LoadedImages,
    crop,
    find_images,
    load_image,
    load_images,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def rgb_image(height: int = 40, width: int = 60, colour=BLUE) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = colour
    return image


def assert_colour(pixel, expected, tolerance: int = 0) -> None:
    difference = np.abs(np.asarray(pixel, int) - np.asarray(expected, int))
    assert difference.max() <= tolerance, f"{tuple(pixel)} != {expected} (tolerance {tolerance})"


def stored_mode(path: Path) -> str:
    """The mode Pillow opens ``path`` in (checks the test wrote what it meant to)."""
    with Image.open(path) as image:
        return image.mode


def assert_rgb_uint8(image: np.ndarray, height: int, width: int) -> None:
    assert image.shape == (height, width, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous and image.flags.writeable


# --- formats and colour modes ------------------------------------------------


def test_jpeg_exif_orientation_6_is_applied(tmp_path):
    stored = rgb_image(40, 60, BLUE)
    stored[:12, :12] = RED  # top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)

    image = load_image(path)

    assert_rgb_uint8(image, 60, 40)  # H and W swapped
    assert_colour(image[2, -3], RED, tolerance=20)  # stored top-left is now top-right
    assert_colour(image[2, 2], BLUE, tolerance=20)
    assert_colour(image[-3, -3], BLUE, tolerance=20)


def test_png_rgb_is_exact(tmp_path):
    stored = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(stored).save(path)
    image = load_image(path)
    assert_rgb_uint8(image, 7, 9)
    np.testing.assert_array_equal(image, stored)


def test_load_image_accepts_str_and_path(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb_image(5, 6, GREEN)).save(path)
    np.testing.assert_array_equal(load_image(str(path)), load_image(path))
    assert_colour(load_image(str(path))[0, 0], GREEN)


def test_grayscale_l_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 100, 255]], np.uint8), mode="L").save(path)
    image = load_image(path)
    assert_rgb_uint8(image, 1, 3)
    np.testing.assert_array_equal(image[0], [[0, 0, 0], [100, 100, 100], [255, 255, 255]])


def test_bilevel_mode_1(tmp_path):
    bilevel = Image.new("1", (3, 2), 0)
    bilevel.putpixel((1, 0), 1)
    path = tmp_path / "bilevel.png"
    bilevel.save(path)
    image = load_image(path)
    assert_rgb_uint8(image, 2, 3)
    assert_colour(image[0, 1], WHITE)
    assert_colour(image[0, 0], (0, 0, 0))


def test_la_transparent_becomes_white(tmp_path):
    la = np.array([[[50, 0], [50, 255]]], np.uint8)  # (gray, alpha)
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    image = load_image(path)
    assert_rgb_uint8(image, 1, 2)
    assert_colour(image[0, 0], WHITE)
    assert_colour(image[0, 1], (50, 50, 50))


def test_rgba_composited_on_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    image = load_image(path)
    assert_rgb_uint8(image, 1, 3)
    assert_colour(image[0, 0], WHITE)  # fully transparent: white, not red or black
    assert_colour(image[0, 1], BLUE)  # opaque keeps its colour
    assert_colour(image[0, 2], (127, 127, 127), tolerance=1)  # half-transparent black over white


def test_palette_with_transparency(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)  # index 0 (red) is transparent

    image = load_image(path)

    assert_rgb_uint8(image, 1, 2)
    assert_colour(image[0, 0], WHITE)
    assert_colour(image[0, 1], GREEN)


def test_palette_without_transparency_gif(tmp_path):
    path = tmp_path / "plain.gif"
    Image.fromarray(rgb_image(4, 5, RED)).convert("P").save(path)
    image = load_image(path)
    assert_rgb_uint8(image, 4, 5)
    assert_colour(image[2, 2], RED, tolerance=5)


@pytest.mark.parametrize("cmyk, rgb", [((0, 255, 255, 0), RED), ((255, 0, 0, 0), (0, 255, 255))])
def test_cmyk_jpeg(tmp_path, cmyk, rgb):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 8), cmyk).save(path, quality=95)
    assert stored_mode(path) == "CMYK"
    image = load_image(path)
    assert_rgb_uint8(image, 8, 16)
    assert_colour(image[4, 8], rgb, tolerance=10)


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "gray16.png"
    Image.fromarray(np.array([[0, 32768, 65535, 1000]], np.uint16)).save(path)
    assert stored_mode(path).startswith("I;16")
    image = load_image(path)
    assert_rgb_uint8(image, 1, 4)
    np.testing.assert_array_equal(image[0, :, 0], [0, 128, 255, 4])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_16bit_grayscale_png_written_by_cv2(tmp_path):
    path = tmp_path / "gray16_cv2.png"
    assert cv2.imwrite(str(path), np.array([[0, 32768, 65535]], np.uint16))
    np.testing.assert_array_equal(load_image(path)[0, :, 1], [0, 128, 255])


def test_16bit_big_endian_tiff(tmp_path):
    path = tmp_path / "gray16b.tif"
    Image.fromarray(np.array([[0, 32768, 65535]], ">u2")).save(path)
    assert stored_mode(path) == "I;16B"
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 128, 255])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_written_by_cv2_is_scaled_and_red_stays_red(tmp_path, suffix):
    bgr = np.zeros((3, 4, 3), np.uint16)
    bgr[..., 2] = 65535  # pure red in OpenCV's BGR order
    bgr[0, 0] = (0, 32768, 0)  # half green
    path = tmp_path / f"colour16{suffix}"
    assert cv2.imwrite(str(path), bgr)
    image = load_image(path)
    assert_rgb_uint8(image, 3, 4)
    assert_colour(image[2, 3], RED)
    assert_colour(image[0, 0], (0, 128, 0))


def test_int32_mode_i_tiff_holding_16bit_values(tmp_path):
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[1000, 32768, 40000]], np.int32)).save(path)
    assert stored_mode(path) == "I"
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [4, 128, 156])  # not stretched


def test_int32_mode_i_tiff_outside_16bit_range_is_stretched(tmp_path):
    path = tmp_path / "int32_wide.tif"
    Image.fromarray(np.array([[-100_000, 0, 100_000]], np.int32)).save(path)
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 128, 255])


def test_float_tiff_in_unit_range_is_multiplied_by_255(tmp_path):
    path = tmp_path / "float01.tif"
    Image.fromarray(np.array([[0.0, 0.25, 0.5]], np.float32)).save(path)  # dark: must not be stretched
    assert stored_mode(path) == "F"
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 64, 128])


def test_float_tiff_outside_unit_range_is_stretched(tmp_path):
    path = tmp_path / "depth.tif"
    Image.fromarray(np.array([[10.0, 60.0, 110.0]], np.float32)).save(path)
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 128, 255])


def test_float_colour_tiff_with_alpha_falls_back_to_opencv(tmp_path):
    bgra = np.zeros((1, 2, 4), np.float32)
    bgra[0, 0] = (1.0, 0.0, 0.0, 1.0)  # opaque blue
    bgra[0, 1] = (0.0, 0.0, 1.0, 0.0)  # transparent red
    path = tmp_path / "float_alpha.tif"
    assert cv2.imwrite(str(path), bgra)
    image = load_image(path)
    assert_rgb_uint8(image, 1, 2)
    assert_colour(image[0, 0], BLUE)
    assert_colour(image[0, 1], WHITE)


def test_float_colour_tiff_falls_back_to_opencv(tmp_path):
    bgr = np.zeros((2, 3, 3), np.float32)
    bgr[..., 2] = 1.0  # red
    bgr[0, 0] = (0.0, 0.5, 0.0)
    path = tmp_path / "float_colour.tif"
    assert cv2.imwrite(str(path), bgr)
    image = load_image(path)
    assert_rgb_uint8(image, 2, 3)
    assert_colour(image[1, 2], RED)
    assert_colour(image[0, 0], (0, 128, 0))


@pytest.mark.parametrize("suffix, options", [(".webp", {"lossless": True}), (".bmp", {}), (".ppm", {})])
def test_other_formats(tmp_path, suffix, options):
    stored = rgb_image(6, 8, GREEN)
    stored[:, 4:] = RED
    path = tmp_path / f"image{suffix}"
    Image.fromarray(stored).save(path, **options)
    image = load_image(path)
    assert_rgb_uint8(image, 6, 8)
    np.testing.assert_array_equal(image, stored)


def test_result_is_a_new_writable_array(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb_image(3, 3)).save(path)
    first = load_image(path)
    first[:] = 0
    assert_colour(load_image(path)[1, 1], BLUE)


# --- max_size ----------------------------------------------------------------


def test_max_size_shrinks_longer_side_and_keeps_aspect(tmp_path):
    stored = rgb_image(100, 200, RED)
    stored[:, 100:] = BLUE
    path = tmp_path / "wide.png"
    Image.fromarray(stored).save(path)
    image = load_image(path, max_size=50)
    assert_rgb_uint8(image, 25, 50)
    assert_colour(image[12, 5], RED, tolerance=2)
    assert_colour(image[12, 45], BLUE, tolerance=2)


def test_max_size_never_enlarges(tmp_path):
    stored = np.random.default_rng(1).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    path = tmp_path / "small.png"
    Image.fromarray(stored).save(path)
    np.testing.assert_array_equal(load_image(path, max_size=500), stored)
    np.testing.assert_array_equal(load_image(path, max_size=30), stored)


def test_max_size_applies_after_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(rgb_image(40, 80)).save(path, exif=exif)
    assert load_image(path, max_size=20).shape == (20, 10, 3)


def test_max_size_must_be_positive(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(rgb_image(4, 4)).save(path)
    with pytest.raises(ValueError, match="max_size"):
        load_image(path, max_size=0)


# --- broken files ------------------------------------------------------------


def write_good_jpeg(path: Path) -> bytes:
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    return path.read_bytes()


def assert_image_error(path: Path, *words: str, max_size: int | None = None) -> ImageError:
    with pytest.raises(ImageError) as caught:
        load_image(path, max_size=max_size)
    message = str(caught.value)
    assert str(path) in message
    without_path = message.replace(str(path), "")  # tmp_path holds the test's name: don't match words in it
    for word in words:
        assert word.lower() in without_path.lower(), f"{word!r} not in {without_path!r}"
    assert caught.value.path == path
    assert caught.value.problem and caught.value.problem in message
    return caught.value


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)
    assert str(ImageError("plain message")) == "plain message"


def test_missing_file(tmp_path):
    assert_image_error(tmp_path / "nowhere.jpg", "no such file")


def test_folder_instead_of_file(tmp_path):
    assert_image_error(tmp_path, "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert_image_error(path, "empty", "0 bytes", "re-download")


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    data = write_good_jpeg(path)
    path.write_bytes(data[: len(data) // 2])
    assert_image_error(path, "truncated JPEG", "ends early")


@pytest.mark.parametrize("fmt, name", [("PNG", "PNG"), ("WEBP", "WebP"), ("GIF", "GIF"), ("TIFF", "TIFF")])
@pytest.mark.parametrize("kept", [0.1, 0.5])
def test_truncated_other_formats(tmp_path, fmt, name, kept):
    path = tmp_path / f"cut.{fmt.lower()}"
    noise = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * kept)])
    assert_image_error(path, f"truncated {name}", "ends early")


def test_corrupt_png_data_with_intact_ending(tmp_path):
    path = tmp_path / "scrambled.png"
    noise = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 40] = bytes(b ^ 0x5A for b in data[middle : middle + 40])
    path.write_bytes(bytes(data))
    error = assert_image_error(path, "corrupt PNG")
    assert "truncated" not in error.problem


def test_corrupt_jpeg_header(tmp_path):
    path = tmp_path / "garbled.jpg"
    data = write_good_jpeg(path)
    path.write_bytes(data[:4] + b"\x00" * 400 + data[404:])  # header destroyed, end marker intact
    assert_image_error(path, "corrupt JPEG")


def test_random_bytes_named_jpg(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(4).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    assert_image_error(path, "not an image", "unrecognised")


def test_html_named_jpg(tmp_path):
    path = tmp_path / "download.jpg"
    path.write_text("<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body></body></html>\n")
    assert_image_error(path, "not an image", "HTML", "re-download")


def test_text_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 5)
    assert_image_error(path, "not an image", "text")


def test_git_lfs_pointer(tmp_path):
    path = tmp_path / "lfs.jpg"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12345\n")
    assert_image_error(path, "Git LFS", "git lfs pull")


def test_pdf_named_jpg(tmp_path):
    path = tmp_path / "scan.jpg"
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    assert_image_error(path, "not an image", "PDF")


def test_svg_is_unsupported(tmp_path):
    path = tmp_path / "logo.png"
    path.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>\n')
    assert_image_error(path, "unsupported format", "SVG")


def test_decompression_bomb_becomes_image_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(rgb_image(40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels > 2 x limit
    assert_image_error(path, "too large", "MAX_IMAGE_PIXELS")


# --- crop ----------------------------------------------------------------------


def numbered_image(height: int = 10, width: int = 12) -> np.ndarray:
    values = np.arange(height * width * 3, dtype=np.int64).reshape(height, width, 3)
    return (values % 251).astype(np.uint8)


def test_crop_integer_box_is_exact():
    image = numbered_image()
    np.testing.assert_array_equal(crop(image, (2, 3, 7, 8)), image[3:8, 2:7])


def test_crop_rounds_fractional_box_outward():
    image = numbered_image()
    result = crop(image, (1.5, 2.2, 4.1, 5.9))
    np.testing.assert_array_equal(result, image[2:6, 1:5])


def test_crop_clips_to_image():
    image = numbered_image(10, 12)
    np.testing.assert_array_equal(crop(image, (-5.5, -3, 3, 4)), image[0:4, 0:3])
    np.testing.assert_array_equal(crop(image, (9, 8, 40, 30.5)), image[8:10, 9:12])


def test_crop_returns_a_copy_and_works_on_grayscale():
    image = numbered_image()
    result = crop(image, (0, 0, 2, 2))
    result[:] = 0
    assert image[0, 1, 0] != 0
    gray = image[..., 0]
    np.testing.assert_array_equal(crop(gray, (1, 1, 3, 3)), gray[1:3, 1:3])


@pytest.mark.parametrize(
    "box, word",
    [
        ((20, 20, 30, 30), "outside"),
        ((-10, 0, -1, 5), "outside"),
        ((5, 5, 3, 8), "reversed"),
        ((4, 4, 4, 9), "empty"),
    ],
)
def test_crop_rejects_bad_boxes(box, word):
    with pytest.raises(ValueError, match=word) as caught:
        crop(numbered_image(10, 12), box)
    message = str(caught.value)
    assert "width 12" in message and "height 10" in message
    assert f"{box[0]:g}, {box[1]:g}, {box[2]:g}, {box[3]:g}" in message


# --- find_images -------------------------------------------------------------


def make_tree(root: Path, names: list[str]) -> None:
    for name in reversed(names):  # created in reverse so the order must come from sorting
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_image_suffixes():
    assert set(IMAGE_SUFFIXES) == {
        ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm",
    }


def test_find_images_recursive_sorted_skipping_hidden_and_non_images(tmp_path):
    make_tree(
        tmp_path,
        [
            "z.webp", "b2.png", "b10.PNG", "a/x.png", "a/b/c.JPG", "a.jpeg",
            ".hidden.jpg", ".git/y.jpg", "a/.cache/thumb.png", "notes.txt", "a/readme.md", "scan.TIFF",
        ],
    )
    found = find_images(tmp_path)
    relative = [path.relative_to(tmp_path).as_posix() for path in found]
    assert relative == ["a.jpeg", "a/b/c.JPG", "a/x.png", "b10.PNG", "b2.png", "scan.TIFF", "z.webp"]
    assert all(path.parent == tmp_path or tmp_path in path.parents for path in found)
    assert find_images(str(tmp_path)) == found  # str works and the order is stable


def test_find_images_not_recursive(tmp_path):
    make_tree(tmp_path, ["top.png", "sub/deep.png"])
    assert find_images(tmp_path, recursive=False) == [tmp_path / "top.png"]


def test_find_images_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder") as caught:
        find_images(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value)


def test_find_images_folder_without_images(tmp_path):
    make_tree(tmp_path, ["notes.txt", ".hidden.jpg", "sub/readme.md"])
    with pytest.raises(ValueError, match="contains no images") as caught:
        find_images(tmp_path)
    assert str(tmp_path) in str(caught.value) and ".jpg" in str(caught.value)


def test_find_images_on_a_file(tmp_path):
    path = tmp_path / "one.png"
    path.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        find_images(path)


# --- load_images -------------------------------------------------------------


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    Image.fromarray(rgb_image(4, 6, RED)).save(tmp_path / "a_good.png")
    (tmp_path / "b_empty.png").write_bytes(b"")
    data = write_good_jpeg(tmp_path / "c_cut.jpg")
    (tmp_path / "c_cut.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(rgb_image(5, 3, GREEN)).save(tmp_path / "d_good.bmp")
    return tmp_path


def test_load_images_skip_returns_good_lists_failures_and_warns(mixed_folder):
    with pytest.warns(UserWarning, match="loaded 2 images, skipped 2") as caught:
        loaded = load_images(mixed_folder, errors="skip")
    assert isinstance(loaded, LoadedImages)
    assert loaded.paths == [mixed_folder / "a_good.png", mixed_folder / "d_good.bmp"]
    assert [image.shape for image in loaded.images] == [(4, 6, 3), (5, 3, 3)]
    assert_colour(loaded.images[1][0, 0], GREEN)
    assert [path.name for path, _ in loaded.failures] == ["b_empty.png", "c_cut.jpg"]
    assert "empty" in loaded.failures[0][1] and "truncated JPEG" in loaded.failures[1][1]
    summary = loaded.summary()
    assert "b_empty.png (file is empty" in summary and "c_cut.jpg (truncated JPEG" in summary
    assert len(caught) == 1 and str(caught[0].message) == summary


def test_load_images_raise_stops_at_first_bad_file(mixed_folder):
    with pytest.raises(ImageError, match="empty") as caught:
        load_images(mixed_folder)  # errors="raise" is the default
    assert caught.value.path == mixed_folder / "b_empty.png"


def test_load_images_from_paths_keeps_order_and_applies_max_size(tmp_path):
    paths = []
    for name, size in [("z.png", (40, 80)), ("a.png", (30, 10))]:
        Image.fromarray(rgb_image(*size)).save(tmp_path / name)
        paths.append(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: no warning
        loaded = load_images([str(p) for p in paths], max_size=20, progress=True)
    assert loaded.paths == paths and loaded.failures == []
    assert [image.shape for image in loaded.images] == [(10, 20, 3), (20, 7, 3)]
    assert loaded.summary() == "loaded 2 images"


def test_load_images_rejects_unknown_errors_mode(tmp_path):
    with pytest.raises(ValueError, match="raise"):
        load_images([], errors="ignore")


def test_summary_lists_at_most_a_few_failures():
    failures = [(Path(f"f{i}.jpg"), "file is empty (0 bytes)") for i in range(12)]
    loaded = LoadedImages(images=[np.zeros((1, 1, 3), np.uint8)], paths=[Path("ok.jpg")], failures=failures)
    summary = loaded.summary()
    assert summary.startswith("loaded 1 image, skipped 12: f0.jpg (file is empty (0 bytes))")
    assert summary.endswith("and 2 more") and "f10.jpg" not in summary


# --- link loops and large images ---------------------------------------------


def test_walk_images_follows_links_once_and_never_loops(tmp_path):
    from coursekit.images import walk_images

    for rel in ("a/1.jpg", "b/2.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "a" / "loop").symlink_to(".")
    (tmp_path / "a" / "up").symlink_to("..")
    (tmp_path / "b" / "dangling").symlink_to(tmp_path / "nowhere")
    assert [p.relative_to(tmp_path).as_posix() for p in walk_images(tmp_path)] == ["a/1.jpg", "b/2.png"]
    assert find_images(tmp_path) == walk_images(tmp_path)  # find_images does not follow links at all


def test_a_huge_jpeg_is_decoded_at_reduced_size(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (200, 30, 40)).save(path, quality=90)
    sizes = []
    real_load = Image.Image.load

    def load(self):
        out = real_load(self)
        sizes.append(self.size)
        return out

    monkeypatch.setattr(Image.Image, "load", load)
    small = load_image(path, max_size=200)
    assert small.shape == (150, 200, 3)
    assert max(max(s) for s in sizes) <= 1000  # the 1/4 draft (>= 2 x 200), never 4000 x 3000
    assert np.abs(small.astype(int) - [200, 30, 40]).max() <= 3


@pytest.mark.parametrize("mode,orientation", [("RGB", 1), ("RGBA", 1), ("L", 6), ("P", 1)])
def test_a_large_png_is_reduced_at_once_and_looks_like_a_full_resize(tmp_path, monkeypatch, mode, orientation):
    rng = np.random.default_rng(0)
    base = Image.fromarray(np.repeat(np.repeat(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), 50, 0), 50, 1))
    image = base.convert(mode) if mode != "P" else base.quantize(16)
    path = tmp_path / "big.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)
    reduced = []
    real_reduce = Image.Image.reduce
    monkeypatch.setattr(Image.Image, "reduce", lambda self, f, *a: reduced.append(f) or real_reduce(self, f, *a))
    got = load_image(path, max_size=100)
    assert reduced[:1] == ([] if mode == "P" else [10])  # 2000 // (2 x 100); palette indices are not averaged
    monkeypatch.undo()
    reference = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    reference.thumbnail((100, 100), Image.Resampling.LANCZOS, reducing_gap=None)
    want = np.asarray(reference)
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want).mean() < 4
