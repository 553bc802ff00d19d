"""Build a UKBench-format folder (groups of 4 photos of one object) from COIL-100 and the SMVS DVD covers.

UKBench (Nister and Stewenius, "Scalable recognition with a vocabulary tree", CVPR 2006) is the simplest test
of instance retrieval on real photos: every image is a query, the 3 other photos of its group are its positives,
and the N-S score counts how many of the group's 4 are in the top 4. Two datasets that the course can load give
such groups:

- ``smvs``: the 4 phone photos (Canon, Droid, E63, Palm) of each DVD cover of the Stanford Mobile Visual
  Search set: real photos under perspective, clutter, glare and blur, one group per cover;
- ``coil100``: 4 views of each COIL-100 object, ``--coil-step`` degrees apart on the turntable from an angle
  drawn with ``--seed``: one group per object.

    python data_scripts/make_ukbench.py OUT [--sources smvs,coil100] [--coil-step 30] [--max-groups N]
    python -m coursekit evaluate --dataset ukbench --root OUT --method gem

``OUT/ukbench00000.jpg ...`` are hard links to the originals where the file system allows it, copies
elsewhere; ``OUT/groups.json`` names each group's source files. ``OUT`` must not exist yet: nothing is
overwritten. The sources are found where ``coursekit`` finds them (``$COURSEKIT_DATA``), or at ``--coil-root``
and ``--smvs-root``. The folder is a derivative of research datasets: keep it out of any repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

PHONES = ("Canon", "Droid", "E63", "Palm")
SOURCES = ("smvs", "coil100")
_COIL = re.compile(r"^obj(\d+)__(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_SMVS = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)


class MakeError(Exception):
    """A source that cannot give groups, or an output folder that already exists."""


def smvs_groups(root: Path) -> list[list[Path]]:
    """One group per DVD cover: its photo from each of the 4 phones (``root/{phone}/NNN.jpg``), by cover number.

    Covers without a photo from every phone are left out. ``root`` may also hold the phone folders one level
    down (``root/dvd_covers/Canon``).
    """
    root = Path(root)
    base = next((d for d in [root, *sorted(p for p in root.glob("*") if p.is_dir())]
                 if all((d / phone).is_dir() for phone in PHONES)), None)
    if base is None:
        raise MakeError(f"smvs: no folders {', '.join(PHONES)} under {root}; fetch the set with "
                        "`python data_scripts/get.py smvs` or give its folder with --smvs-root")
    by_phone = [{int(m.group(1)): p for p in (base / phone).iterdir() if (m := _SMVS.match(p.name))}
                for phone in PHONES]
    covers = sorted(set.intersection(*(set(photos) for photos in by_phone)))
    return [[photos[c] for photos in by_phone] for c in covers]


def coil_groups(root: Path, step: int = 30, seed: int = 0) -> list[list[Path]]:
    """One group per COIL-100 object: its views at ``a, a + step, a + 2 step, a + 3 step`` degrees.

    ``a`` is drawn per object from the angles it has (``np.random.default_rng(seed)``); where a view is
    missing (17 objects miss a few), the nearest angle it has stands in. Objects with fewer than 4 views are
    left out.
    """
    views: dict[int, dict[int, Path]] = {}
    for p in (Path(root).iterdir() if Path(root).is_dir() else ()):
        if m := _COIL.match(p.name):
            views.setdefault(int(m.group(1)), {})[int(m.group(2))] = p
    if not views:
        raise MakeError(f"coil100: no files obj{{N}}__{{angle}}.jpg in {root}; fetch the set with "
                        "`python data_scripts/get.py coil100` or give its folder with --coil-root")
    rng = np.random.default_rng(seed)
    groups = []
    for obj in sorted(views):
        angles = np.array(sorted(views[obj]))
        if len(angles) < 4:
            continue
        start = int(rng.choice(angles))
        chosen: list[int] = []
        for k in range(4):
            want = (start + k * step) % 360
            gap = np.abs((angles - want + 180) % 360 - 180)            # circular distance to every angle it has
            gap[np.isin(angles, chosen)] = 10 ** 6                     # each view once
            chosen.append(int(angles[gap.argmin()]))
        groups.append([views[obj][a] for a in chosen])
    return groups


def _place(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:                                                     # another file system, or no links
        shutil.copyfile(src, dst)


def make_ukbench(out: Path, groups: list[list[Path]], sources: list[str]) -> Path:
    """Write ``groups`` (each 4 paths) as ``out/ukbench{NNNNN}.jpg`` and ``out/groups.json``; return ``out``.

    Written into a temporary sibling folder that is renamed at the end, so an interrupted run leaves no
    half-made set.
    """
    out = Path(out)
    if out.exists():
        raise MakeError(f"{out} already exists: remove it or give another folder (nothing is overwritten)")
    if not groups:
        raise MakeError("no groups to write: the sources gave none")
    if any(len(g) != 4 for g in groups):
        raise MakeError("every group needs exactly 4 photos")
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, path in enumerate(p for group in groups for p in group):
        if path.suffix.lower() not in (".jpg", ".jpeg"):
            raise MakeError(f"{path}: UKBench's files are JPEGs; convert the source first")
        _place(path, tmp / f"ukbench{i:05d}.jpg")
    record = {"format": "ukbench", "sources": sources,
              "groups": [[str(p) for p in group] for group in groups]}
    (tmp / "groups.json").write_text(json.dumps(record, indent=1))
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to create (must not exist)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated: smvs, coil100")
    parser.add_argument("--coil-step", type=int, default=30, help="degrees between a COIL group's views")
    parser.add_argument("--seed", type=int, default=0, help="draws each COIL object's first view")
    parser.add_argument("--max-groups", type=int, default=None, help="at most this many groups per source")
    parser.add_argument("--coil-root", type=Path, default=None)
    parser.add_argument("--smvs-root", type=Path, default=None)
    args = parser.parse_args(argv)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown or not sources:
        parser.error(f"--sources: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SOURCES)}")
    from coursekit.datasets.base import data_root

    groups: list[list[Path]] = []
    try:
        for source in sources:
            if source == "smvs":
                found = smvs_groups(args.smvs_root or data_root() / "smvs_dvd_covers")
            else:
                found = coil_groups(args.coil_root or data_root() / "coil100", args.coil_step, args.seed)
            groups += found[:args.max_groups]
            print(f"{source}: {len(found[:args.max_groups])} groups of 4")
        out = make_ukbench(args.out, groups, sources)
    except MakeError as err:
        print(f"make_ukbench: {err}", file=sys.stderr)
        return 2
    print(f"wrote {4 * len(groups)} images in {len(groups)} groups to {out}; evaluate with "
          f"`python -m coursekit evaluate --dataset ukbench --root {out} --method gem`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
