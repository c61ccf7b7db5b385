"""Dataset registry: a name -> the source that can read that folder -> a validated Dataset.

'demo' is the catalogue bundled in assets/demo/. Any other name is a folder
under the data directory (RECLM_DATA_DIR); its layout picks the source. To add
a source, append a ``Source`` to ``SOURCES`` (first match wins, so put
specific layouts before the generic folder one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import demo, douban, folder, lastfm, movielens, movielens_dat
from .schema import (
    COLUMNS,
    DESCRIPTION_KINDS,
    DOMAINS,
    Dataset,
    DatasetError,
    DatasetNotFound,
    empty_frame,
    validate,
)

__all__ = [
    "COLUMNS", "DESCRIPTION_KINDS", "DOMAINS", "INGEST_INFO_TABLE", "LOADER_VERSION", "Dataset", "DatasetError", "DatasetNotFound",
    "SOURCES", "Source", "available_datasets", "dataset_folder", "empty_frame", "load_dataset", "source_for", "validate",
]

DEMO = "demo"
# What the loaders store changes meaning between versions; tables stored by an older one are
# refused by the fits (training.DatasetTables.load) until the raw tables are rebuilt.
# 2: users' tags are no longer stored as ``tagged_as`` facts (they must follow an evaluation's mask).
LOADER_VERSION = 2
INGEST_INFO_TABLE = "ingest_info"


@dataclass(frozen=True)
class Source:
    name: str
    detect: Callable[[Path], bool]  # does this folder have the source's layout?
    load: Callable[[Path, str], Dataset]
    layout: str  # shown in error messages


SOURCES: list[Source] = [
    Source("lastfm", lastfm.detect, lastfm.load, "HetRec Last.fm: user_artists.dat, artists.dat, ..."),
    Source("douban", douban.detect, douban.load, "Douban movies: movies.csv with MOVIE_ID, NAME (+ ratings.csv, comments.csv)"),
    Source("movielens", movielens.detect, movielens.load, "MovieLens csv: ratings.csv + movies.csv"),
    Source("movielens-100k", movielens_dat.detect_100k, movielens_dat.load_100k, "MovieLens 100k: u.data + u.item"),
    Source("movielens-dat", movielens_dat.detect_dat, movielens_dat.load_dat, "MovieLens 1m/10m: '::'-separated ratings.dat + movies.dat"),
    Source("folder", folder.detect, folder.load, "reclm folder: items + interactions (.csv/.tsv/.parquet)"),
]


def _data_dir(data_dir: Path | str | None) -> Path:
    if data_dir is None:
        from reclm_dagster.settings import data_dir as default_data_dir

        return default_data_dir()
    return Path(data_dir).expanduser()


def source_for(path: Path) -> Source | None:
    """The first source whose layout the folder matches, or None."""
    return next((s for s in SOURCES if s.detect(path)), None)


def available_datasets(data_dir: Path | str | None = None) -> list[str]:
    """'demo' plus every folder of data_dir that some source can read, sorted."""
    root = _data_dir(data_dir)
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and source_for(p)) if root.is_dir() else []
    return [DEMO] + [n for n in found if n != DEMO]


def dataset_folder(name: str, data_dir: Path | str | None = None) -> Path:
    """The folder of a (non-demo) dataset; DatasetNotFound, listing what is there, when it is missing."""
    root = _data_dir(data_dir)
    # A name is one folder under the data directory, never a path that could lead out of it.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise DatasetError(f"dataset name {name!r} is not a folder name (no '/', '..' or empty names)")
    path = root / name
    if not path.is_dir():
        raise DatasetNotFound(
            f"dataset {name!r} not found: no folder {path}. Available: {', '.join(available_datasets(root))}. "
            f"Put the dataset folder under the data directory, or point RECLM_DATA_DIR at the directory that holds it."
        )
    return path


def load_dataset(name: str, data_dir: Path | str | None = None) -> Dataset:
    """Load and validate a dataset by name ('demo' or a folder of data_dir)."""
    if name == DEMO:
        return demo.load()
    path = dataset_folder(name, data_dir)
    source = source_for(path)
    if source is None:
        layouts = "; ".join(s.layout for s in SOURCES)
        raise DatasetError(f"{path}: no source recognises this folder's files. Known layouts: {layouts}")
    return source.load(path, name)
