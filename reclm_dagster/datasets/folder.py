"""reclm's own folder format: one table per schema frame (see datasets/README.md).

A folder is a dataset when it holds ``items`` and ``interactions`` tables
(.csv, .tsv or .parquet); ``descriptions``, ``facts`` and ``user_links`` are
optional. Columns are the schema's (schema.COLUMNS); only those in
schema.REQUIRED must be present, the rest get defaults. Extra item columns
(price, year, url...) are kept.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .readers import find_table, numeric_extras, read_table, table_paths
from .schema import COLUMNS, Dataset, DatasetError, validate

KINDS = ("items", "interactions", "descriptions", "facts", "user_links")
REQUIRED_TABLES = ("items", "interactions")


def detect(folder: Path) -> bool:
    # table_paths, not find_table: an ambiguous folder is still this layout (load() then says
    # which files clash) and must not break listing the other datasets.
    return all(table_paths(folder, k) for k in REQUIRED_TABLES)


def read_frames(folder: Path, kinds=KINDS) -> tuple[dict[str, pd.DataFrame | None], pd.DataFrame]:
    """Read whichever of the tables exist; returns ({kind: frame or None}, read-time quarantine)."""
    frames: dict[str, pd.DataFrame | None] = {}
    bad = []
    for kind in kinds:
        path = find_table(folder, kind)
        if path is None:
            frames[kind] = None
            continue
        df, q = read_table(path)
        frames[kind] = df
        bad.append(q)
    if frames.get("items") is not None:
        frames["items"] = numeric_extras(frames["items"], COLUMNS["items"])
    quarantine = pd.concat([b for b in bad if len(b)], ignore_index=True) if any(len(b) for b in bad) else None
    return frames, quarantine


def load(folder: Path, name: str | None = None) -> Dataset:
    folder = Path(folder)
    missing = [k for k in REQUIRED_TABLES if find_table(folder, k) is None]
    if missing:
        raise DatasetError(f"{folder}: no {missing[0]}.csv / .tsv / .parquet (a reclm folder dataset needs items and interactions)")
    frames, quarantine = read_frames(folder)
    return validate(Dataset(name=name or folder.name, quarantine=quarantine, **frames))
