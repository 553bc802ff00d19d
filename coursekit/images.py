"""Images in: every method of the course starts by turning a file into pixels.

:func:`load_image` returns one thing for any image file a user will meet: an
``(H, W, 3) uint8`` RGB array. Getting this right matters for retrieval more
than it seems. A phone photo stored sideways with an EXIF orientation tag, a
CMYK JPEG from a print workflow, a 16-bit scan or a PNG with a transparent
background all *look* fine in an image viewer; read naively they become a
rotated, colour-inverted, clipped-to-white or black-backgrounded image, and
every descriptor computed from them (colour histograms, SIFT, CNN features)
silently describes the wrong picture. Broken files (empty, truncated, an HTML
error page saved as ``.jpg``) raise one exception type, :class:`ImageError`,
whose message names the file, the problem and, where there is one, the fix.

:func:`find_images` and :func:`load_images` do the same for whole folders.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "LoadedImages",
    "crop",
    "find_images",
    "is_image_name",
    "load_image",
    "load_images",
    "walk_images",
]

#: File suffixes (lower case) that :func:`find_images` treats as images; matched case-insensitively.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm",
)


class ImageError(ValueError):
    """A file that cannot be read as an image.

    ``str(error)`` is the full message, ``"<path>: <problem>; <fix>"``.
    ``error.path`` and ``error.problem`` (the short middle part, e.g.
    ``"truncated JPEG (the file ends early)"``) are set when the error comes
    from this module, else ``None``.
    """

    def __init__(self, message: str, path: Path | None = None, problem: str | None = None):
        super().__init__(message)
        self.path = path
        self.problem = problem


def _error(path: Path, problem: str, fix: str = "") -> ImageError:
    message = f"{path}: {problem}" + (f"; {fix}" if fix else "")
    return ImageError(message, path=path, problem=problem)


# ---------------------------------------------------------------------------
# Pixel conversions: numpy arrays in, (H, W, 3) or (H, W) uint8 out
# ---------------------------------------------------------------------------


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """0..65535 integers -> 0..255 uint8, rounded (65535 -> 255, 32768 -> 128)."""
    values = values.astype(np.uint32)
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    """Map the finite range [min, max] of ``values`` linearly onto 0..255 (float64 out)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.max() == finite.min():
        return np.zeros(values.shape)
    low, high = finite.min(), finite.max()
    return (values - low) / (high - low) * 255.0


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    """Float pixels -> uint8.

    Values already in [0, 1] are taken as a normalised image and multiplied by
    255; anything else (0..255 floats, depth maps, HDR) is stretched from its
    own min..max onto 0..255. NaN becomes 0, +inf 255, -inf 0.
    """
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
        scaled = values * 255.0
    else:
        scaled = _stretch(values)
    scaled[np.isnan(scaled)] = 0.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _int32_to_uint8(values: np.ndarray) -> np.ndarray:
    """Pillow mode ``I`` (int32) -> uint8.

    In practice ``I`` carries 16-bit samples (older Pillow opened 16-bit PNGs
    as ``I``), so values within 0..65535 are scaled as 16-bit; anything
    outside that range is stretched from its min..max.
    """
    if values.size and (values.min() < 0 or values.max() > 65535):
        return np.clip(np.rint(_stretch(values)), 0, 255).astype(np.uint8)
    return _scale_16bit(values)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3) by repeating the channel."""
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 RGB over a white background."""
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:].astype(np.uint16)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> (H, W, 3) uint8 RGB."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _gray_to_rgb(_scale_16bit(np.asarray(image)))
    if mode == "I":
        return _gray_to_rgb(_int32_to_uint8(np.asarray(image)))
    if mode == "F":
        return _gray_to_rgb(_float_to_uint8(np.asarray(image)))
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        return _composite_on_white(np.asarray(image.convert("RGBA")))
    # L, 1, P, RGB, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, ...
    return np.asarray(image.convert("RGB"))


def _cv2_to_rgb(array: np.ndarray) -> np.ndarray | None:
    """An OpenCV ``IMREAD_UNCHANGED`` array (BGR/BGRA, any depth) -> (H, W, 3) uint8 RGB.

    ``None`` when the depth or channel count is one we do not handle.
    """
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = _scale_16bit(array)
    elif array.dtype in (np.float16, np.float32, np.float64):
        pixels = _float_to_uint8(array)
    else:
        return None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        return _gray_to_rgb(pixels)
    if pixels.shape[2] == 3:
        return pixels[:, :, ::-1]
    if pixels.shape[2] == 4:
        return _composite_on_white(pixels[:, :, [2, 1, 0, 3]])
    return None


# ---------------------------------------------------------------------------
# Naming what is wrong with a file
# ---------------------------------------------------------------------------

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _image_format(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or ``None``."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _ends_early(path: Path, fmt: str | None) -> bool:
    """Whether a JPEG/PNG/GIF/WebP file lacks its end marker (i.e. was cut short)."""
    data = path.read_bytes()
    if fmt == "JPEG":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" not in data[-16:]
    if fmt == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if fmt == "WebP":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    return False


def _describe_unrecognised(path: Path, head: bytes) -> tuple[str, str]:
    """(problem, fix) for a file that Pillow (and OpenCV) cannot identify; ``head``: its first bytes."""
    text = head.lstrip().lower()
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the image itself", "run `git lfs pull` to fetch the image"
    if text.startswith((b"<!doctype html", b"<html")) or b"<head" in text or b"<body" in text:
        return (
            "not an image (looks like HTML, e.g. an error page saved by a download)",
            "re-download it",
        )
    if b"<svg" in text:
        return "unsupported format SVG (a vector drawing)", "convert it to PNG"
    if head.startswith(b"%PDF"):
        return "not an image (a PDF document)", ""
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "unsupported format HEIC/AVIF", "convert it to JPEG or PNG"
    fmt = _image_format(head)
    if fmt is not None and _ends_early(path, fmt):
        return f"truncated {fmt} (the file ends early)", "re-download it"
    if fmt is not None:
        return f"corrupt {fmt} (its header cannot be decoded)", "re-download it"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and all(c.isprintable() or c.isspace() for c in decoded):
        return "not an image (looks like text)", ""
    return "not an image (unrecognised contents: corrupt, or an unsupported format)", ""


def _describe_broken(path: Path, fmt: str | None, error: Exception) -> tuple[str, str]:
    """(problem, fix) for a file whose format is known but whose decoding failed."""
    fmt = fmt or "image"
    message = str(error)
    if "truncat" in message.lower() or isinstance(error, EOFError):
        return f"truncated {fmt} (the file ends early)", "re-download it"
    if _ends_early(path, fmt):
        return f"truncated {fmt} (the file ends early: {message})", "re-download it"
    return f"corrupt {fmt} ({type(error).__name__}: {message})", "re-download it"


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


#: Decoding at reduced size keeps at least this many times the final size (as Pillow's ``thumbnail``
#: does), so that the Lanczos resize that follows still has the detail it needs.
REDUCING_GAP = 2
_REDUCIBLE = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"})


def _decode_with_pil(path: Path, max_size: int | None = None) -> Image.Image:
    """Decode with Pillow and apply the EXIF orientation; decoder errors propagate.

    With ``max_size``, a large image is decoded smaller when it is going to be
    shrunk anyway: a JPEG through ``draft`` (its decoder skips to 1/2, 1/4 or
    1/8 scale, so a 12000 x 12000 photo never exists at full size), other
    formats through ``reduce`` right after decoding, before any copy is made.
    Either keeps the longer side at least ``REDUCING_GAP * max_size``.
    """
    with Image.open(path) as image:
        keep = None if max_size is None else REDUCING_GAP * max_size
        if keep is not None and max(image.size) > keep and image.format == "JPEG":
            scale = keep / max(image.size)
            image.draft(None, (math.ceil(image.size[0] * scale), math.ceil(image.size[1] * scale)))
        image.load()  # decode now, inside the caller's try: truncated files raise here
        # modes whose samples may be averaged (not palette indices, not bilevel): box-reduce them now
        if keep is not None and (factor := max(image.size) // keep) >= 2 and image.mode in _REDUCIBLE \
                and "transparency" not in image.info:
            reduced = image.reduce(int(factor))
            reduced.info.update(image.info)  # transparency, as _pil_to_rgb reads it
            return _transposed(reduced, image.getexif().get(0x0112, 1))
        return ImageOps.exif_transpose(image)  # always a new image, usable after the file closes


def _transposed(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` turned upright for an EXIF ``orientation`` (1..8), as ``ImageOps.exif_transpose`` does."""
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return image.transpose(method) if method is not None else image.copy()


def _read_with_cv2(path: Path) -> np.ndarray | None:
    """Decode with OpenCV (e.g. 3-channel float TIFF, which Pillow cannot open); ``None`` on failure."""
    data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: that fails on non-ASCII paths on Windows
    try:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    return None if array is None else _cv2_to_rgb(array)


def _downscale(rgb: np.ndarray, max_size: int) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is ``max_size``, keeping the aspect ratio."""
    height, width = rgb.shape[:2]
    longer = max(height, width)
    if longer <= max_size:
        return rgb
    scale = max_size / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def load_image(path: str | os.PathLike, max_size: int | None = None) -> np.ndarray:
    """Load any image file as an ``(H, W, 3) uint8`` RGB array.

    - EXIF orientation is applied (phone photos come out upright).
    - Grayscale, bilevel and palette images are expanded to RGB; images with
      transparency (RGBA, LA, palette or PNG ``tRNS``) are composited on white;
      CMYK is converted to RGB.
    - 16-bit images (grayscale or colour, PNG or TIFF) are scaled from
      0..65535 to 0..255, not clipped. Float images with values in [0, 1] are
      multiplied by 255; other float ranges are stretched from min..max.
    - TIFF/PNG variants Pillow cannot open (e.g. 3-channel float TIFF) are
      read with OpenCV instead.

    Args:
        path: the file (``str`` or ``Path``).
        max_size: if given, shrink (never enlarge) so that the longer side is
            ``max_size`` pixels, keeping the aspect ratio (Lanczos filter). A
            large image is then decoded at reduced size (JPEG ``draft``, else
            ``reduce``; see :func:`_decode_with_pil`), so a huge photo costs
            little memory.

    Returns:
        A new, writable, C-contiguous ``(H, W, 3) uint8`` array.

    Raises:
        ImageError: the file is missing, empty, truncated, corrupt, not an
            image, an unsupported format, or too large for Pillow's
            decompression-bomb limit. The message names the path and the problem.
    """
    path = Path(path)
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be a positive number of pixels, got {max_size}")
    if not path.exists():
        raise _error(path, "no such file")
    if path.is_dir():
        raise _error(path, "is a folder, not an image file", "use load_images() for folders")
    if path.stat().st_size == 0:
        raise _error(path, "file is empty (0 bytes)", "re-download or delete it")
    try:
        with open(path, "rb") as file:
            head = file.read(1024)
    except PermissionError as error:
        raise _error(path, "cannot be read (permission denied)") from error

    try:
        decoded = _decode_with_pil(path, max_size)
    except MemoryError:
        raise
    except Image.DecompressionBombError as error:
        raise _error(
            path,
            f"image is too large to decode safely ({error})",
            "if you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS",
        ) from error
    except UnidentifiedImageError as error:
        # OpenCV reads some TIFF/PNG variants Pillow cannot (e.g. 3-channel float TIFF).
        rgb = _read_with_cv2(path) if _image_format(head) in ("TIFF", "PNG") else None
        if rgb is None:
            raise _error(path, *_describe_unrecognised(path, head)) from error
    except Exception as error:  # decoders raise OSError, SyntaxError, ValueError, EOFError, ... on bad data
        raise _error(path, *_describe_broken(path, _image_format(head), error)) from error
    else:
        rgb = _pil_to_rgb(decoded)

    if max_size is not None:
        rgb = _downscale(rgb, max_size)
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def crop(image: np.ndarray, box: Iterable[float]) -> np.ndarray:
    """Cut ``box = (x1, y1, x2, y2)`` out of an ``(H, W)`` or ``(H, W, C)`` image.

    Coordinates are pixel positions, possibly fractional (as in the Oxford and
    Paris ground truth): the box is rounded outward (floor of x1/y1, ceiling
    of x2/y2) and clipped to the image, so the crop always covers the box and
    is never empty.

    Returns:
        A new array ``(h, w[, C])`` with the image's dtype.

    Raises:
        ValueError: the box is reversed, has no area, or lies outside the image;
            the message names the box and the image size.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    height, width = image.shape[:2]
    where = (
        f"box (x1, y1, x2, y2) = ({x1:g}, {y1:g}, {x2:g}, {y2:g}) "
        f"on an image of width {width}, height {height}"
    )
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"{where}: the box is empty or reversed (need x2 > x1 and y2 > y1)")
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    if right <= left or bottom <= top:
        raise ValueError(f"{where}: the box lies outside the image")
    return image[top:bottom, left:right].copy()


# ---------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------


def is_image_name(name: str) -> bool:
    """Whether a file name is an image by its suffix (any case, :data:`IMAGE_SUFFIXES`) and not hidden."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def walk_images(root: str | os.PathLike, *, follow_links: bool = True, recursive: bool = True,
                seen: set[tuple[int, int]] | None = None) -> list[Path]:
    """Every image file under ``root``, sorted by its path relative to ``root`` (written with ``/``).

    The one folder walk of the course (datasets and photo indexes): image
    suffixes are :data:`IMAGE_SUFFIXES`; hidden files and folders are skipped.
    With ``follow_links``, symbolic links to folders are followed, but each
    *real* folder, known by its ``(device, inode)``, is visited once: a link
    back up the tree (``ln -s . loop``, ``ln -s .. up``) or a second link to
    the same folder adds nothing, so no image is counted twice. ``seen`` (a
    set of ``(st_dev, st_ino)``, updated) lets several walks share what they
    visited; a folder already in it is not entered. Costs one ``stat`` per
    folder; never opens a file.
    """
    root = Path(root)
    seen = set() if seen is None else seen
    st = os.stat(root)
    if (st.st_dev, st.st_ino) in seen:
        return []
    seen.add((st.st_dev, st.st_ino))
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_links):
        keep = []
        for d in sorted(dirnames) if recursive else []:
            if d.startswith("."):
                continue
            try:
                st = os.stat(os.path.join(dirpath, d))  # follows a link: the real folder
            except OSError:  # a dangling link or a folder we may not read
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                keep.append(d)
        dirnames[:] = keep
        rel = Path(dirpath).relative_to(root)
        found.extend(((rel / f).as_posix(), Path(dirpath) / f) for f in filenames if is_image_name(f))
    found.sort(key=lambda t: t[0])
    return [p for _, p in found]


def find_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (and its subfolders when ``recursive``).

    Images are files whose suffix is in :data:`IMAGE_SUFFIXES` (any case).
    Hidden files and folders (names starting with ``"."``) are skipped, and
    symbolic links to folders are not followed. The order is stable: sorted by
    the path relative to ``folder``, written with ``/``.

    Returns:
        ``folder / relative_path`` for each image.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is a file.
        ValueError: no images were found.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: is a file, not a folder (use load_image() for one file)")

    found = walk_images(folder, follow_links=False, recursive=recursive)
    if not found:
        where = "" if recursive else " (subfolders not searched)"
        raise ValueError(
            f"{folder} contains no images{where} (looked for {', '.join(IMAGE_SUFFIXES)}, "
            "any case; hidden files and folders are skipped)"
        )
    return found


@dataclass
class LoadedImages:
    """What :func:`load_images` returns.

    ``images[i]`` is the ``(H, W, 3) uint8`` RGB array of ``paths[i]``;
    ``failures`` lists ``(path, problem)`` for every file that was skipped.
    """

    images: list[np.ndarray] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self, max_listed: int = 10) -> str:
        """E.g. ``"loaded 98 images, skipped 2: a.jpg (truncated JPEG ...), b.png (file is empty ...)"``."""
        count = len(self.images)
        text = f"loaded {count} image{'' if count == 1 else 's'}"
        if not self.failures:
            return text
        listed = [f"{path.name} ({problem})" for path, problem in self.failures[:max_listed]]
        more = len(self.failures) - max_listed
        if more > 0:
            listed.append(f"and {more} more")
        return f"{text}, skipped {len(self.failures)}: " + ", ".join(listed)


def load_images(
    paths_or_folder: str | os.PathLike | Iterable[str | os.PathLike],
    errors: str = "raise",
    max_size: int | None = None,
    progress: bool = False,
) -> LoadedImages:
    """Load many images with :func:`load_image`.

    Args:
        paths_or_folder: a folder (searched with :func:`find_images`) or a
            list of image paths (loaded in the given order).
        errors: ``"raise"``: the first unreadable file raises its
            :class:`ImageError`. ``"skip"``: unreadable files are left out,
            listed in ``failures``, and one warning with the summary is issued.
        max_size: passed to :func:`load_image`.
        progress: show a ``tqdm`` progress bar.

    Returns:
        :class:`LoadedImages` with the images, their paths and the failures.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f'errors must be "raise" or "skip", got {errors!r}')
    if isinstance(paths_or_folder, (str, os.PathLike)):
        paths = find_images(paths_or_folder)
    else:
        paths = [Path(p) for p in paths_or_folder]

    loaded = LoadedImages()
    for path in tqdm(paths, desc="loading images", unit="image", disable=not progress):
        try:
            image = load_image(path, max_size=max_size)
        except ImageError as error:
            if errors == "raise":
                raise
            loaded.failures.append((path, error.problem or str(error)))
            continue
        loaded.images.append(image)
        loaded.paths.append(path)

    if loaded.failures:
        warnings.warn(loaded.summary(), stacklevel=2)
    return loaded
