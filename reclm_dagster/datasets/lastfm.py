"""HetRec 2011 Last.fm (hetrec2011-lastfm-2k): artists, play counts, tags, friends.

Mapping to the schema:
- artists.dat -> items (item_id = artist id, title = name, description "",
  domain 'audio', language 'en'; extra column ``url``);
- user_artists.dat -> interactions (weight = listening count, no timestamp);
- user_taggedartists.dat + tags.dat -> descriptions (kind 'tag', one row per
  assignment, timestamp = midnight UTC of its day/month/year). The graph's
  artist ``tagged_as`` tag triples are derived from these rows where they are
  used (``kg.build.user_tag_facts``), never stored as facts: they are users'
  words and must follow an evaluation's mask;
- user_friends.dat -> user_links ('friend_of', both directions as in the file).

Files are tab separated without quoting (names such as ``"Weird Al" Yankovic``
hold quote characters). Encodings differ per file (artists.dat UTF-8, tags.dat
Latin-1 in the original release; some copies re-encode them), so each file is
decoded as UTF-8 and falls back to Latin-1.

Tag assignments on artists missing from artists.dat (1,538 rows on 390 ids in
the original release) are **quarantined** rather than kept: such an artist has
no name, so nothing could be shown or embedded for it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from .readers import read_delimited
from .schema import Dataset, validate

FILES = ("artists.dat", "tags.dat", "user_artists.dat", "user_taggedartists.dat", "user_friends.dat")


def detect(folder: Path) -> bool:
    return (Path(folder) / "user_artists.dat").is_file()


def _read(folder: Path, name: str, bad: list) -> pd.DataFrame:
    df, q = read_delimited(folder / name, sep="\t", quoting=csv.QUOTE_NONE)
    bad.append(q)
    return df


def load(folder: Path, name: str | None = None) -> Dataset:
    folder = Path(folder)
    bad: list[pd.DataFrame] = []

    artists = _read(folder, "artists.dat", bad)
    items = artists.rename(columns={"id": "item_id", "name": "title"})
    items = items.assign(description="", domain="audio", language="en")
    items = items[["item_id", "title", "description", "domain", "language", "url", "_source", "_line"]]

    ua = _read(folder, "user_artists.dat", bad)
    interactions = ua.rename(columns={"userID": "user_id", "artistID": "item_id"})

    descriptions = _tags(folder, bad)

    links = _read(folder, "user_friends.dat", bad) if (folder / "user_friends.dat").is_file() else None
    if links is not None:
        links = links.rename(columns={"userID": "user_id", "friendID": "other_user_id"}).assign(relation="friend_of")

    quarantine = pd.concat([b for b in bad if len(b)], ignore_index=True) if any(len(b) for b in bad) else None
    ds = Dataset(name=name or folder.name, items=items, interactions=interactions,
                 descriptions=descriptions, user_links=links, quarantine=quarantine)
    return validate(ds)


def _tags(folder: Path, bad: list) -> pd.DataFrame | None:
    if not (folder / "user_taggedartists.dat").is_file():
        return None
    tags = _read(folder, "tags.dat", bad)
    names = dict(zip(tags["tagID"].str.strip(), tags["tagValue"]))
    uta = _read(folder, "user_taggedartists.dat", bad)
    date = pd.to_datetime(
        {"year": pd.to_numeric(uta["year"], errors="coerce"), "month": pd.to_numeric(uta["month"], errors="coerce"),
         "day": pd.to_numeric(uta["day"], errors="coerce")},
        errors="coerce", utc=True,
    )
    seconds = (date - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    desc = pd.DataFrame({
        "description_id": "lastfm-tag:" + uta["_line"].astype(str),
        "user_id": uta["userID"],
        "item_id": uta["artistID"].str.strip(),
        "kind": "tag",
        "text": uta["tagID"].str.strip().map(names).fillna(""),
        "rating": None,
        "timestamp": seconds.astype("Int64"),
        "_source": uta["_source"],
        "_line": uta["_line"],
    })
    return desc
