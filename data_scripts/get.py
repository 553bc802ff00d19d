#!/usr/bin/env python
"""Fetch a public dataset of the course from its official source.

    python data_scripts/get.py NAME [--root DIR] [--keep-archives]
    python data_scripts/get.py --list

Each dataset lands in ``ROOT/FOLDER`` in the layout the loaders of
:mod:`coursekit.datasets` read; ROOT is ``--root``, else ``$COURSEKIT_DATA``,
else ``~/coursekit-data``. Archives are downloaded to ``ROOT/.downloads``
(resumable: run the command again after an interruption), checked, unpacked
safely and then deleted (``--keep-archives`` keeps them). Running it again on
a complete dataset downloads nothing.

``--mirror URL`` (or ``$COURSEKIT_MIRROR``) replaces the scheme and host of
every download URL, keeping its path: for a local copy of the files, or for
the tests, which serve fixture archives on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from coursekit.datasets.download import (CorruptArchiveError, DownloadError, ExtractError, download, extract,
                                         extracted, link_extracted, move_aside, wrong_kind)

# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Remote:
    """One file to fetch, and where its content goes inside the dataset folder.

    ``urls``: the official address first, then mirrors, tried in turn.
    ``sha256``/``md5``/``size``: only values published by a source (else None;
    the size is then taken from the server's Content-Length). ``approx``: a
    size quoted by a source, shown to the user, never used to check.
    ``into``: sub-folder of the dataset folder; ``unpack``: an archive to
    unpack there (else the file itself is stored there); ``flatten``: drop the
    archive's folders; ``only``: keep only members under this folder;
    ``shared_with``: datasets that unpack the same archive into the same
    sub-folder, whose copy is reused by hard link instead of downloading.
    """

    urls: tuple[str, ...]
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    approx: str | None = None
    into: str = "."
    unpack: bool = True
    flatten: bool = False
    only: str | None = None
    shared_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """A dataset: its folder under the root, its official page, its files."""

    title: str
    folder: str
    page: str
    files: tuple[Remote, ...]
    note: str = ""


_VGG_OX = "https://www.robots.ox.ac.uk/~vgg/data/oxbuildings"
_VGG_PA = "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings"
_REVISITOP = "https://cmp.felk.cvut.cz/revisitop/data/datasets"
_INRIA_FTP = "ftp://ftp.inrialpes.fr/pub/lear/douze/data"
_INRIA_HTTP = "http://pascal.inrialpes.fr/data/holidays"

_OXFORD_IMAGES = dict(urls=(f"{_VGG_OX}/oxbuild_images-v1.tgz",), filename="oxbuild_images-v1.tgz",
                      into="jpg", flatten=True)
_PARIS_IMAGES = [dict(urls=(f"{_VGG_PA}/paris_{i}-v1.tgz",), filename=f"paris_{i}-v1.tgz",
                      into="jpg", flatten=True) for i in (1, 2)]

RECIPES: dict[str, Recipe] = {
    "coil100": Recipe(
        "COIL-100 (Nene, Nayar and Murase 1996)", "coil100",
        "https://www.cs.columbia.edu/CAVE/software/softlib/coil-100.php",
        (Remote(("https://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/coil-100/"
                 "coil-100.zip",), "coil-100.zip",
                # size and sha256 as recorded by TensorFlow Datasets (coil100/checksums.tsv)
                size=130688843,
                sha256="fcb4b8b01c0778f416d8d7a09f45082c4f7075cc74743dcddd5c44307bd4afe7"),),
    ),
    "smvs": Recipe(
        "Stanford Mobile Visual Search, DVD covers (Chandrasekhar et al. 2011)", "smvs_dvd_covers",
        "https://purl.stanford.edu/rb470rw0983",
        (Remote(("https://stacks.stanford.edu/file/druid:rb470rw0983/dvd_covers.zip",),
                "dvd_covers.zip", approx="439 MB"),),
        note="hosted by the Stanford Digital Repository; if the file moved, the landing page "
             "https://purl.stanford.edu/rb470rw0983 lists the current files",
    ),
    "ukbench": Recipe(
        "UKBench (Nister and Stewenius 2006)", "ukbench",
        "https://archive.org/details/ukbench",
        (Remote(("https://archive.org/download/ukbench/ukbench.zip",), "ukbench.zip",
                approx="2 GB", only="full/"),),
        note="the original host (vis.uky.edu/~stewe/ukbench) is gone; this is the Internet "
             "Archive's copy of its ukbench.zip. Only full/ is unpacked (thumbnails/ is skipped)",
    ),
    "holidays": Recipe(
        "INRIA Holidays (Jegou, Douze and Schmid 2008)", "holidays",
        "https://lear.inrialpes.fr/people/jegou/data.php",
        (Remote((f"{_INRIA_FTP}/jpg1.tar.gz", f"{_INRIA_HTTP}/jpg1.tar.gz"), "jpg1.tar.gz",
                approx="1.1 GB"),
         Remote((f"{_INRIA_FTP}/jpg2.tar.gz", f"{_INRIA_HTTP}/jpg2.tar.gz"), "jpg2.tar.gz",
                approx="1.6 GB")),
        note="INRIA serves the images by FTP, which cannot resume; the HTTP address is tried "
             "when FTP fails",
    ),
    "oxford5k": Recipe(
        "Oxford Buildings 5k (Philbin et al. 2007)", "oxford5k", f"{_VGG_OX}/",
        (Remote(**_OXFORD_IMAGES, shared_with=("roxford5k",)),
         Remote((f"{_VGG_OX}/gt_files_170407.tgz",), "gt_files_170407.tgz", into="gt",
                flatten=True)),
        note="the images are VGG's 2022 release with faces blurred (the '-v1' archives)",
    ),
    "paris6k": Recipe(
        "Paris 6k (Philbin et al. 2008)", "paris6k", f"{_VGG_PA}/",
        (*(Remote(**p, shared_with=("rparis6k",)) for p in _PARIS_IMAGES),
         Remote((f"{_VGG_PA}/paris_120310.tgz",), "paris_120310.tgz", into="gt", flatten=True)),
        note="the images are VGG's 2022 release with faces blurred (the '-v1' archives)",
    ),
    "roxford5k": Recipe(
        "Revisited Oxford (Radenovic et al. 2018)", "roxford5k", "https://cmp.felk.cvut.cz/revisitop/",
        (Remote(**_OXFORD_IMAGES, shared_with=("oxford5k",)),
         Remote((f"{_REVISITOP}/roxford5k/gnd_roxford5k.pkl",), "gnd_roxford5k.pkl",
                unpack=False)),
        note="the images are those of oxford5k: reused by hard link when oxford5k is there",
    ),
    "rparis6k": Recipe(
        "Revisited Paris (Radenovic et al. 2018)", "rparis6k", "https://cmp.felk.cvut.cz/revisitop/",
        (*(Remote(**p, shared_with=("paris6k",)) for p in _PARIS_IMAGES),
         Remote((f"{_REVISITOP}/rparis6k/gnd_rparis6k.pkl",), "gnd_rparis6k.pkl", unpack=False)),
        note="the images are those of paris6k: reused by hard link when paris6k is there",
    ),
}

DOWNLOADS = ".downloads"  # under the root: archives and partial downloads


# --------------------------------------------------------------------------- helpers


def default_root() -> Path:
    """``$COURSEKIT_DATA``, else ``~/coursekit-data`` (as :func:`coursekit.datasets.base.data_root`)."""
    try:
        from coursekit.datasets.base import data_root
    except ImportError:  # keep the fetcher usable even if a loader does not import
        env = os.environ.get("COURSEKIT_DATA")
        return Path(env).expanduser() if env else Path.home() / "coursekit-data"
    return data_root()


def with_mirror(url: str, mirror: str | None) -> str:
    """``url`` with its scheme and host replaced by ``mirror`` (which may carry a path prefix)."""
    if not mirror:
        return url
    return mirror.rstrip("/") + urllib.parse.urlsplit(url).path


def human(n: int) -> str:
    """A byte count for people: ``124.6 MiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def is_done(remote: Remote, ds_dir: Path) -> bool:
    """Whether ``remote``'s content is already in place in ``ds_dir``."""
    where = ds_dir / remote.into
    if remote.unpack:
        return extracted(remote.filename, where) is not None
    return (where / remote.filename).is_file()


def reusable_from(remote: Remote, root: Path) -> str | None:
    """The dataset whose already unpacked copy of ``remote`` can be reused, if any."""
    for other in remote.shared_with:
        if extracted(remote.filename, root / RECIPES[other].folder / remote.into) is not None:
            return other
    return None


def fetch_file(remote: Remote, dest: Path, mirror: str | None, progress: bool) -> Path:
    """Download ``remote`` to ``dest``, trying its URLs in turn."""
    urls = [with_mirror(u, mirror) for u in remote.urls]
    if dest.exists():  # verifies (and returns) or refuses to overwrite: no need to try mirrors
        return download(urls[0], dest, sha256=remote.sha256, md5=remote.md5, size=remote.size,
                        progress=progress)
    errors = []
    for i, url in enumerate(urls):
        try:
            return download(url, dest, sha256=remote.sha256, md5=remote.md5, size=remote.size,
                            progress=progress)
        except DownloadError as e:
            errors.append(str(e))
            if i + 1 < len(urls):
                print(f"  {url} failed; trying {urls[i + 1]}", file=sys.stderr)
    raise DownloadError(errors[0] if len(errors) == 1 else
                        "every address failed:\n  " + "\n  ".join(errors))


def retry_command(name: str, root: Path | None, mirror: str | None) -> str:
    """The command that runs this fetch again, for the error messages."""
    return " ".join(["python data_scripts/get.py", name]
                    + (["--root", str(root)] if root is not None else [])
                    + (["--mirror", mirror] if mirror else []))


def plan_lines(name: str, recipe: Recipe, todo: list[Remote], root: Path,
               mirror: str | None) -> list[str]:
    """What :func:`fetch` will do, for people."""
    lines = [f"{name}: {recipe.title}", f"  into {root / recipe.folder}"]
    fetched = []
    for r in todo:
        other = reusable_from(r, root) if r.unpack else None
        if other:
            lines.append(f"  {r.filename}: already unpacked for {other}, reused (no download)")
            continue
        fetched.append(r)
        size = human(r.size) if r.size is not None else (f"about {r.approx}" if r.approx else
                                                          "size unknown until the server answers")
        lines.append(f"  {with_mirror(r.urls[0], mirror)}  ({size})")
    sizes = [r.size for r in fetched]
    if all(s is not None for s in sizes):
        lines.append(f"  total: {human(sum(sizes))}")
    if recipe.note:
        lines.append(f"  note: {recipe.note}")
    return lines


def fetch(name: str, root: Path, *, keep_archives: bool = False, mirror: str | None = None,
          progress: bool = True) -> Path:
    """Fetch dataset ``name`` into ``root / folder`` and return that folder.

    Raises :class:`KeyError` for an unknown name, and
    :class:`~coursekit.datasets.download.DownloadError` or
    :class:`~coursekit.datasets.download.ExtractError` when a step fails.
    """
    recipe = RECIPES[name]
    root = Path(root).expanduser()
    ds_dir = root / recipe.folder
    todo = [r for r in recipe.files if not is_done(r, ds_dir)]
    if not todo:
        print(f"{name}: already present in {ds_dir}; nothing to download")
        return ds_dir
    print("\n".join(plan_lines(name, recipe, todo, root, mirror)))
    downloads = root / DOWNLOADS
    try:
        _fetch_all(todo, root, ds_dir, downloads, keep_archives, mirror, progress)
    finally:
        if downloads.is_dir() and not any(downloads.iterdir()):
            downloads.rmdir()
    print(f"{name}: done, in {ds_dir}")
    return ds_dir


def _fetch_all(todo: list[Remote], root: Path, ds_dir: Path, downloads: Path,
               keep_archives: bool, mirror: str | None, progress: bool) -> None:
    for r in todo:
        where = ds_dir / r.into
        if not r.unpack:
            fetch_file(r, where / r.filename, mirror, progress)
            continue
        other = reusable_from(r, root)
        if other is not None:
            reused = link_extracted(r.filename, root / RECIPES[other].folder / r.into, where)
            print(f"  {r.filename}: reused {len(reused)} files from {other} (hard links)")
            continue
        archive = downloads / r.filename
        if archive.is_file() and (problem := wrong_kind(archive)) is not None:
            aside = move_aside(archive)  # an earlier run kept an error page: out of the way, not lost
            print(f"  {archive}: {problem}; moved aside to {aside}, downloading it again",
                  file=sys.stderr)
        archive = fetch_file(r, archive, mirror, progress)
        only = r.only
        try:
            files = extract(archive, where, flatten=r.flatten, progress=progress,
                            include=(lambda n: n.replace("\\", "/").lstrip("./").startswith(only))
                            if only else None)
        except CorruptArchiveError as err:  # never left in the way of the next run
            aside = move_aside(archive)
            raise CorruptArchiveError(f"{err}. It was moved aside to {aside} (delete it when you "
                                      f"like); the next run downloads it again") from None
        print(f"  {r.filename}: {len(files)} files in {where}")
        if not keep_archives:
            archive.unlink()


def list_datasets(root: Path) -> list[str]:
    """One line per dataset: name, folder, whether it is present, official page."""
    out = []
    for name, recipe in RECIPES.items():
        ds_dir = Path(root).expanduser() / recipe.folder
        state = "present" if all(is_done(r, ds_dir) for r in recipe.files) else "missing"
        out.append(f"{name:10s} {state:8s} {ds_dir}  ({recipe.page})")
    return out


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="get.py", description="Fetch a dataset of the course from its official source.")
    parser.add_argument("name", nargs="?", metavar="NAME", help=", ".join(RECIPES))
    parser.add_argument("--root", type=Path, default=None,
                        help="folder that holds the datasets (default: $COURSEKIT_DATA or "
                             "~/coursekit-data)")
    parser.add_argument("--keep-archives", action="store_true",
                        help=f"keep the downloaded archives in ROOT/{DOWNLOADS}")
    parser.add_argument("--list", action="store_true", help="list the datasets and exit")
    parser.add_argument("--mirror", default=os.environ.get("COURSEKIT_MIRROR"),
                        help="replace the scheme and host of every URL (default: "
                             "$COURSEKIT_MIRROR)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    root = args.root.expanduser() if args.root is not None else default_root()
    if root.exists() and not root.is_dir():
        where = "--root" if args.root is not None else "$COURSEKIT_DATA"
        print(f"get.py: the data root {root} ({where}) is a file, not a folder. Point {where} at a "
              f"folder (it is created if missing)", file=sys.stderr)
        return 2

    if args.list:
        print("\n".join(list_datasets(root)))
        return 0
    if args.name is None:
        print(f"get.py: give a dataset name ({', '.join(RECIPES)}) or --list", file=sys.stderr)
        return 2
    if args.name not in RECIPES:
        print(f"get.py: unknown dataset {args.name!r}; known: {', '.join(RECIPES)}",
              file=sys.stderr)
        return 2
    try:
        fetch(args.name, root, keep_archives=args.keep_archives, mirror=args.mirror,
              progress=not args.no_progress)
    except (DownloadError, ExtractError) as e:
        print(f"error: {e}", file=sys.stderr)
        print(f"to retry: {retry_command(args.name, args.root, args.mirror)}", file=sys.stderr)
        print(f"(dataset page: {RECIPES[args.name].page})", file=sys.stderr)
        return 1
    except OSError as e:  # the root is a file, a folder we may not write, a full disk
        print(f"error: cannot write the dataset under {root}: {e}. Point --root or $COURSEKIT_DATA "
              f"at a folder you can write to", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
