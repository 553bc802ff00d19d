"""The one table of the methods: each declared once, in :data:`TABLE`, with what it is and where it is taught.

Everything else that lists methods derives from it: :data:`METHODS` and :data:`GLOBAL_METHODS` (here),
:data:`WHITENED_METHODS` (the course report's whitened runs), :data:`PHOTO_METHODS` (what
:mod:`coursekit.photo_search` can index), :data:`CNN_METHODS` (what takes ``backbone=``), and from those the
command line's choices and help, the explorer's menu and the report's plan. Adding a method is adding its
function and one row.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from .cnn import crow, fc, gem, gem_finetuned, gem_ms, mac, rmac, spoc
from .features import Retrieval
from .handcrafted import bow, bow_sv, color_hist, color_inter, fisher, gist, sift_match, sift_ransac, vlad

__all__ = ["Method", "TABLE", "METHODS", "GLOBAL_METHODS", "WHITENED_METHODS", "PHOTO_METHODS", "CNN_METHODS",
           "describe_methods"]


@dataclass(frozen=True)
class Method:
    """One row of :data:`TABLE`.

    ``name``: what the command line, the report and :func:`~coursekit.methods.run_method` call it.
    ``fn(ds, ...) -> Retrieval``: the method. ``description``: one line for ``python -m coursekit methods``.
    ``notebook``: the notebook that teaches it (``"07"``). ``global_``: it makes one global vector per
    image, so it can be whitened, indexed and re-ranked (``fn`` then takes ``with_train``).
    ``whitenable``: the course report also measures it whitened (a global method). ``photo``: its place
    in photo search's list of methods, 1 first, for a method that embeds a single photo with no
    training; 0 for one that needs a vocabulary or a dataset to learn from. ``learns``: it learns from the
    dataset it runs on (a vocabulary, a GMM, a fine-tuned network), so its vectors of two datasets are not
    in one space, and a whitening learned on another dataset's does not apply to them.
    """

    name: str
    fn: Callable[..., Retrieval]
    description: str
    notebook: str
    global_: bool = False
    whitenable: bool = False
    photo: int = 0
    learns: bool = False

    @property
    def line(self) -> str:
        """The description with its notebook, as ``python -m coursekit methods`` prints it."""
        return f"{self.description}  [notebook {self.notebook}]"

    @property
    def cnn(self) -> bool:
        """Whether it runs a network, that is takes a ``backbone`` (and ``weights``)."""
        return "backbone" in inspect.signature(self.fn).parameters


# in the order the course teaches them, which is the order of every list derived from it (but PHOTO_METHODS')
TABLE: tuple[Method, ...] = (
    Method("color_hist", color_hist, "joint HSV colour histogram (16x16x16), Hellinger kernel", "01", global_=True),
    Method("color_inter", color_inter, "HSV histogram of pixel counts (16x16x16), intersection, query as model",
           "01"),
    Method("gist", gist, "GIST: Gabor energy, 4 scales x 8 orientations on a 4x4 grid, 512-D", "01", global_=True),
    Method("sift_match", sift_match,
           "RootSIFT one-to-one ratio-test (0.7) match count, 500 keypoints (colour short list past 1000 images)", "02"),
    Method("sift_ransac", sift_ransac, "sift_match, top 100 re-ranked by RANSAC homography inliers", "02"),
    Method("bow", bow, "bag of 4000 visual words (RootSIFT), tf^0.5 idf, inverted file", "03", learns=True),
    Method("bow_sv", bow_sv, "bow, top 100 re-ranked by RANSAC homography inliers", "03", learns=True),
    Method("vlad", vlad, "VLAD of RootSIFT, 64 words, signed square root, intra + L2 normalised, 8192-D", "04",
           global_=True, whitenable=True, learns=True),
    Method("fisher", fisher, "improved Fisher vector, 64 Gaussians on PCA-64 RootSIFT, 8192-D", "04",
           global_=True, whitenable=True, learns=True),
    Method("fc", fc, "EfficientNet-Lite0's pooled 1280-D vector of the image at 224 x 224 ('neural codes')", "07",
           global_=True, whitenable=True, photo=7),
    Method("mac", mac, "MAC of EfficientNet-Lite0's last map, 480 px, 1280-D", "07",
           global_=True, whitenable=True, photo=1),
    Method("spoc", spoc, "SPoC (sum pooling, centring prior) of EfficientNet-Lite0's last map, 480 px", "07",
           global_=True, whitenable=True, photo=2),
    Method("rmac", rmac, "R-MAC (regional MACs on 3 scales, normalised, summed) of EfficientNet-Lite0, 480 px", "07",
           global_=True, whitenable=True, photo=4),
    Method("crow", crow, "CroW (spatial and channel weights) of EfficientNet-Lite0's last map, 480 px", "07",
           global_=True, whitenable=True, photo=5),
    Method("gem", gem, "GeM (p = 3) of EfficientNet-Lite0's last map, 480 px", "07",
           global_=True, whitenable=True, photo=3),
    Method("gem_ms", gem_ms, "GeM at 480, 339 and 240 px, combined", "07", global_=True, whitenable=True, photo=6),
    Method("gem_finetuned", gem_finetuned, "GeM, last two blocks and p fine-tuned on the training split "
           "(contrastive, hard negatives), 480 px", "08", global_=True, whitenable=True, learns=True),
)

#: name -> (function, one line for ``python -m coursekit methods``)
METHODS: dict[str, tuple[Callable[..., Retrieval], str]] = {m.name: (m.fn, m.line) for m in TABLE}

#: the methods that make one global vector per image: these can be whitened, indexed and re-ranked
GLOBAL_METHODS: tuple[str, ...] = tuple(m.name for m in TABLE if m.global_)

#: the global methods the course report also measures whitened (every dimension kept)
WHITENED_METHODS: tuple[str, ...] = tuple(m.name for m in TABLE if m.whitenable)

#: the methods that make one vector per photo with no training (the CNN poolings of notebook 07), in their order
PHOTO_METHODS: tuple[str, ...] = tuple(m.name for m in sorted((m for m in TABLE if m.photo), key=lambda m: m.photo))

#: the methods that run a network: they take ``backbone`` and ``weights``
CNN_METHODS: tuple[str, ...] = tuple(m.name for m in TABLE if m.cnn)


def describe_methods() -> dict[str, str]:
    """Each method name with its one-line description."""
    return {name: line for name, (_, line) in METHODS.items()}
