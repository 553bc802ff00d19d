"""Build a folder in the revisited Oxford format (``gnd_roxford5k.pkl`` and ``jpg/``) from the SMVS DVD covers.

The revisited Oxford and Paris datasets (Radenovic, Iscen, Tolias, Avrithis and Chum, CVPR 2018) give each
query as a photo and a box around the landmark, with easy, hard and junk database images. Their boxes range
from most of the photo to thin strips and small patches, which a method must survive: a box of 124 x 281
pixels in a 1024-pixel photo is 30 x 66 once the photo is resized to 240 pixels. This script makes a small
set of that shape from real photos, to run every method of the course through the real loader:

- queries: the Canon phone photo of each of the first ``--covers`` DVD covers, each with a box around the
  whole photo, except query 0, a ``--tiny``-pixel square at the photo's centre, query 1, a thin horizontal
  strip (height : width = 1 : 8, across the middle), and query 2, a thin vertical one (8 : 1);
- database: for each of those covers its reference scan (easy), its Droid and E63 photos (hard) and its Palm
  photo (junk); then the reference scans of ``--distractors`` other covers, no query's object.

    python data_scripts/make_revisited.py OUT [--covers 8] [--distractors 8] [--tiny 24]
    python -m coursekit evaluate --dataset roxford5k --root OUT --method gem

``OUT/jpg/*.jpg`` are hard links to the originals where the file system allows it, copies elsewhere. ``OUT``
must not exist yet: nothing is overwritten. The SMVS folder is found where ``coursekit`` finds it
(``$COURSEKIT_DATA/smvs_dvd_covers``) or at ``--smvs-root``. The folder is a derivative of a research dataset:
keep it out of any repository.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PHONES = ("Canon", "Droid", "E63", "Palm")
ROLES = {"Reference": "easy", "Droid": "hard", "E63": "hard", "Palm": "junk"}


class MakeError(Exception):
    """A source folder that cannot give the set, or an output folder that already exists."""


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def query_box(i: int, width: int, height: int, tiny: int) -> list[float]:
    """The box of query ``i`` in a ``width x height`` photo: a ``tiny`` square at the centre (query 0), a 1:8
    horizontal strip (1), an 8:1 vertical one (2), the whole photo (the others). ``[x1, y1, x2, y2]``."""
    cx, cy = width / 2, height / 2
    if i == 0:
        return [cx - tiny / 2, cy - tiny / 2, cx + tiny / 2, cy + tiny / 2]
    if i == 1:
        w = 0.8 * width
        return [cx - w / 2, cy - w / 16, cx + w / 2, cy + w / 16]
    if i == 2:
        h = 0.8 * height
        return [cx - h / 16, cy - h / 2, cx + h / 16, cy + h / 2]
    return [0.0, 0.0, float(width), float(height)]


def make_revisited(smvs: Path, out: Path, covers: int = 8, distractors: int = 8, tiny: int = 24) -> dict:
    """Write ``out/jpg/*.jpg`` and ``out/gnd_roxford5k.pkl`` (see the module's docstring); returns the
    pickled dict (``imlist``, ``qimlist``, ``gnd``)."""
    smvs, out = Path(smvs), Path(out)
    if out.exists():
        raise MakeError(f"{out} exists: give a new folder (nothing is overwritten)")
    folders = ("Reference", *PHONES)
    if not all((smvs / f).is_dir() for f in folders):
        raise MakeError(f"smvs: no folders {', '.join(folders)} under {smvs}; fetch the set with "
                        "`python data_scripts/get.py smvs` or give its folder with --smvs-root")
    numbers = sorted(set.intersection(*({p.stem for p in (smvs / f).glob("*.jpg")} for f in folders)))
    if len(numbers) < covers + distractors or covers < 3:
        raise MakeError(f"smvs: {len(numbers)} covers with every photo under {smvs}; need at least 3 query covers "
                        f"and {covers} + {distractors} in all")
    (out / "jpg").mkdir(parents=True)
    imlist, qimlist, gnd = [], [], []
    for c, number in enumerate(numbers[:covers]):
        lists = {"easy": [], "hard": [], "junk": []}
        for folder, role in ROLES.items():
            lists[role].append(len(imlist))
            imlist.append(f"{folder.lower()}_{number}")
            _link(smvs / folder / f"{number}.jpg", out / "jpg" / f"{imlist[-1]}.jpg")
        qimlist.append(f"canon_{number}")
        _link(smvs / "Canon" / f"{number}.jpg", out / "jpg" / f"{qimlist[-1]}.jpg")
        with Image.open(smvs / "Canon" / f"{number}.jpg") as im:
            width, height = im.size
        gnd.append({"bbx": np.array(query_box(c, width, height, tiny)), **{k: np.array(v, np.int64)
                                                                           for k, v in lists.items()}})
    for number in numbers[covers:covers + distractors]:
        imlist.append(f"reference_{number}")
        _link(smvs / "Reference" / f"{number}.jpg", out / "jpg" / f"{imlist[-1]}.jpg")
    cfg = {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}
    with open(out / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump(cfg, f)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder to create (must not exist)")
    parser.add_argument("--covers", type=int, default=8, help="query covers (default 8; at least 3)")
    parser.add_argument("--distractors", type=int, default=8, help="other covers' scans in the database (default 8)")
    parser.add_argument("--tiny", type=int, default=24, help="side of query 0's box in pixels (default 24)")
    parser.add_argument("--smvs-root", type=Path, help="the SMVS DVD covers folder (default: $COURSEKIT_DATA's)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from coursekit.datasets.base import data_root

    try:
        cfg = make_revisited(args.smvs_root or data_root() / "smvs_dvd_covers", args.out, args.covers,
                             args.distractors, args.tiny)
    except MakeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(cfg['qimlist'])} queries, {len(cfg['imlist'])} database images; "
          f"evaluate with `python -m coursekit evaluate --dataset roxford5k --root {args.out} --method gem`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
