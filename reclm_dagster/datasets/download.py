"""Download a public dataset from its official home into the data directory, verified by sha256.

    download_dataset("ml-latest-small", data_dir)  ->  data_dir/ml-latest-small/

The archive is streamed to a temporary file inside ``data_dir`` (hashing as it
arrives), checked against the pinned sha256, unpacked into a temporary folder
there, and only then renamed to ``data_dir/<name>``: a failed or interrupted
download leaves nothing behind. A zip whose members sit in one top folder
(``ml-10M100K/...``) gets that folder renamed to ``<name>``; one without
(the HetRec zips) has its files placed in ``<name>/``.

Hashes are pinned only where we know them for certain: taken from the
SOURCE.md files of the copies in /work/shared/data. Entries without one
(``sha256=None``) are refused unless ``allow_unverified=True``; never fill one
in from a first download you have not checked independently.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

GROUPLENS = "https://files.grouplens.org/datasets"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The dataset could not be downloaded, verified or put in place (nothing was left behind)."""


@dataclass(frozen=True)
class Archive:
    url: str
    sha256: str | None  # of the archive file; None = not known for certain
    note: str = ""


REGISTRY: dict[str, Archive] = {
    # sha256 from /work/shared/data/ml-latest-small/SOURCE.md (zip of 994,178 bytes, members dated 2018-09-26)
    "ml-latest-small": Archive(f"{GROUPLENS}/movielens/ml-latest-small.zip",
                               "859da233c6929ebc9202e9516cdefa8a3c695aef67d1878249d6036c3513c023"),
    "ml-100k": Archive(f"{GROUPLENS}/movielens/ml-100k.zip", None),
    "ml-1m": Archive(f"{GROUPLENS}/movielens/ml-1m.zip", None),
    "ml-10m": Archive(f"{GROUPLENS}/movielens/ml-10m.zip", None, "unpacks as ml-10M100K/"),
    "ml-25m": Archive(f"{GROUPLENS}/movielens/ml-25m.zip", None),
    "ml-32m": Archive(f"{GROUPLENS}/movielens/ml-32m.zip", None),
    "hetrec2011-lastfm-2k": Archive(f"{GROUPLENS}/hetrec2011/hetrec2011-lastfm-2k.zip", None),
    "hetrec2011-movielens-2k-v2": Archive(f"{GROUPLENS}/hetrec2011/hetrec2011-movielens-2k-v2.zip", None,
                                          "metadata that enriches a MovieLens dataset in the same folder"),
    # the author's own sample (research use only, do not redistribute); sha256 from its SOURCE.md
    "douban-moviedata-small": Archive(
        "https://raw.githubusercontent.com/csuldw/AntSpider/d5fac11379c471079f13a1f159a3377a7eec27d6/"
        "docs/dataset/moviedata_small.tar.gz",
        "d220ad8eb45ad1c7d0835b3a664b27d5889399a923095416a6a7e08c4cab233b", "an uncompressed tar despite its name"),
}


def known_datasets() -> list[str]:
    return sorted(REGISTRY)


def download_dataset(name: str, data_dir: Path | str, base_url: str | None = None, progress: bool = True, *,
                     overwrite: bool = False, allow_unverified: bool = False, timeout: float = 60) -> Path:
    """Fetch, verify and unpack one dataset to ``data_dir/name``; returns that folder.

    base_url replaces the scheme and host of the official URL (the path is kept),
    for a mirror or a test server. Raises DownloadError on any failure.
    """
    if name not in REGISTRY:
        raise DownloadError(f"unknown dataset {name!r}; known: {', '.join(known_datasets())}")
    archive = REGISTRY[name]
    data_dir = Path(data_dir).expanduser()
    target = data_dir / name
    if target.exists() and not overwrite:
        raise DownloadError(f"{target} already exists; remove it or pass overwrite=True")
    if archive.sha256 is None and not allow_unverified:
        raise DownloadError(f"no pinned sha256 for {name}, so the download cannot be verified; "
                            f"pass allow_unverified=True to accept it anyway")
    url = archive_url(archive.url, base_url)

    created = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=data_dir, prefix=f".{name}-", suffix=".part")
    os.close(fd)
    unpack_dir = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{name}-unpack-"))
    old = data_dir / f".{name}-old-{os.getpid()}"
    try:
        got = _fetch(url, Path(part), timeout, name if progress else None)
        if archive.sha256 is not None and got != archive.sha256:
            raise DownloadError(f"{name}: sha256 mismatch for {url}: expected {archive.sha256}, got {got}")
        root = _unpack(Path(part), unpack_dir)
        if target.exists():  # overwrite: move the old copy aside first, drop it only once the new one is in place
            target.rename(old)
        root.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return target
    except BaseException:
        if old.exists() and not target.exists():
            old.rename(target)
        raise
    finally:
        Path(part).unlink(missing_ok=True)
        shutil.rmtree(unpack_dir, ignore_errors=True)
        if created and not any(data_dir.iterdir()):
            data_dir.rmdir()


def archive_url(official: str, base_url: str | None) -> str:
    if not base_url:
        return official
    return base_url.rstrip("/") + urlsplit(official).path


def _fetch(url: str, dest: Path, timeout: float, label: str | None) -> str:
    """Stream url to dest; returns the sha256 of what was written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if label and done >> 23 != shown:  # a line every 8 MiB is enough
                    shown = done >> 23
                    of = f" of {total / 1e6:.1f}" if total else ""
                    print(f"\r{label}: {done / 1e6:.1f}{of} MB", end="", file=sys.stderr, flush=True)
            if label:
                print(file=sys.stderr)
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"could not download {url}: {err}") from err
    return digest.hexdigest()


def _unpack(archive: Path, into: Path) -> Path:
    """Extract a zip or tar into ``into``; return the folder that becomes the dataset."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if _wanted(m)]
            for m in members:
                _check_member(m)
            zf.extractall(into, members)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if _wanted(m.name)]
            try:
                tf.extractall(into, members, filter="data")  # 'data' refuses links and paths outside `into`
            except tarfile.FilterError as err:  # one line for the user, like a zip's bad member
                raise DownloadError(f"refusing archive member outside the target folder: {err}") from None
    else:
        raise DownloadError(f"{archive.name}: neither a zip nor a tar archive")
    entries = list(into.iterdir())
    if not entries:
        raise DownloadError("the archive is empty")
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    into.chmod(0o755)  # mkdtemp made it private; it is about to become the dataset folder
    return into


def _wanted(member: str) -> bool:
    """Skip macOS metadata (__MACOSX/, ._ resource forks) that archives made on a Mac carry."""
    parts = PurePosixPath(member).parts
    return bool(parts) and parts[0] != "__MACOSX" and not parts[-1].startswith("._")


def _check_member(member: str) -> None:
    p = PurePosixPath(member.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise DownloadError(f"refusing archive member outside the target folder: {member}")
