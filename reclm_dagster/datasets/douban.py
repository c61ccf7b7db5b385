"""Douban movie data (AntSpider "Moviedata-10M" and its sample douban-moviedata-small), Chinese.

Mapping to the schema:
- movies.csv -> items (item_id = MOVIE_ID, title = NAME, description =
  STORYLINE, domain 'video', language 'zh'; extra columns ``alias``, ``year``,
  ``imdb_id``, ``languages``, ``douban_score``, ``douban_votes``, ``mins``,
  ``douban_url`` and ``catalogued`` = True);
- facts: ACTORS -> ``starring`` person, DIRECTORS -> ``directed_by`` person,
  GENRES -> ``has_genre``, REGIONS -> ``from_region`` region, TAGS ->
  ``tagged_as`` tag (all '/'-separated). People are keyed by name: the schema
  has no entity id column, and ACTOR_IDS lacks ids for some names;
- ratings.csv -> interactions (user = USER_MD5, weight = RATING 1-5);
- comments.csv -> descriptions (kind 'review', text = content, rating 1-5 or
  empty, item = the movie).

Privacy: users are keyed by their md5 only. users.csv is never read, and of
comments.csv only content, rating, time, movie and user_md5 are kept; the
nicknames, avatar and profile URLs and the numeric/slug user_id are dropped.

Times are Beijing time without a zone ('2018-09-05 19:42:07'); they are read as
UTC+8 (China has had no daylight saving since 1991).

The published sample draws each file independently: none of the 111 movies
that are rated or commented on is in its movies.csv. Such movies become
**stub items** (title '豆瓣电影 <id>', empty description, ``catalogued`` =
False) so their ratings and Chinese reviews stay usable; pass
``stub_items=False`` to quarantine those rows as unknown items instead.

Files are UTF-8 with a BOM, every field quoted, comments may span lines.
Column names are matched case-insensitively so the full release's documented
names (COMMENT_ID, MOVIE_ID, CONTENT, RATING...) work too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .movielens import concat_quarantine
from .readers import first_line, read_delimited
from .schema import Dataset, DatasetError, validate

STUB_TITLE = "豆瓣电影 {}"
MOVIE_URL = "https://movie.douban.com/subject/{}/"
BEIJING = pd.Timedelta(hours=8)
# schema column -> accepted spellings in the files (sample first, then the full release's README)
COMMENT_COLUMNS = {
    "user_id": ("user_md5",), "item_id": ("douban_id", "movie_id"), "text": ("content",),
    "rating": ("rating", "ratings"), "timestamp": ("comment_time",),
}
RATING_COLUMNS = {"user_id": ("user_md5",), "item_id": ("movie_id",), "weight": ("rating",), "timestamp": ("rating_time",)}
FACT_COLUMNS = [  # (column, relation, entity_type)
    ("ACTORS", "starring", "person"), ("DIRECTORS", "directed_by", "person"), ("GENRES", "has_genre", "genre"),
    ("REGIONS", "from_region", "region"), ("TAGS", "tagged_as", "tag"),
]


def detect(folder: Path) -> bool:
    movies = Path(folder) / "movies.csv"
    if not movies.is_file():
        return False
    header = {h.strip().strip('"').upper() for h in first_line(movies).split(",")}
    return {"MOVIE_ID", "NAME"} <= header


def load(folder: Path, name: str | None = None, stub_items: bool = True) -> Dataset:
    folder = Path(folder)
    bad: list[pd.DataFrame] = []

    movies, q = read_delimited(folder / "movies.csv")
    bad.append(q)
    movies.columns = [c if c.startswith("_") else c.upper() for c in movies.columns]
    items = _items(movies)
    facts = _facts(movies)

    interactions = descriptions = None
    if (folder / "ratings.csv").is_file():
        ratings, q = read_delimited(folder / "ratings.csv")
        bad.append(q)
        interactions = _pick(ratings, RATING_COLUMNS)
        interactions["timestamp"] = beijing_seconds(interactions["timestamp"])
    if (folder / "comments.csv").is_file():
        comments, q = read_delimited(folder / "comments.csv")
        bad.append(q)
        descriptions = _pick(comments, COMMENT_COLUMNS).assign(kind="review")
        descriptions["timestamp"] = beijing_seconds(descriptions["timestamp"])

    stubs = _stubs(items, interactions, descriptions) if stub_items else None
    if stubs is not None and len(stubs):
        items = pd.concat([items, stubs], ignore_index=True)
    ds = Dataset(name=name or folder.name, items=items, interactions=interactions, descriptions=descriptions,
                 facts=facts, quarantine=concat_quarantine(bad))
    return validate(ds)


def _pick(df: pd.DataFrame, columns: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Only the named columns (renamed to the schema's) plus provenance: nothing else leaves this module."""
    lower = {c.lower(): c for c in df.columns}
    out = {}
    for target, names in columns.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found is None:
            source = df.attrs.get("source", "?")
            found = ", ".join(c for c in df.columns if not c.startswith("_"))
            raise DatasetError(f"{source}: required column {names[0]!r} is missing (found: {found})")
        out[target] = df[found]
    return pd.DataFrame({**out, "_source": df["_source"], "_line": df["_line"]})


def beijing_seconds(s: pd.Series) -> pd.Series:
    """Unix seconds of 'YYYY-MM-DD HH:MM:SS' Beijing times; other values pass through for validate to judge."""
    dt = pd.to_datetime(s, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    seconds = ((dt - BEIJING) - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    return seconds.astype("Int64").astype(object).where(dt.notna(), s)


def _split(s: pd.Series) -> pd.Series:
    return s.fillna("").map(lambda v: [p.strip() for p in v.split("/") if p.strip()])


def _items(movies: pd.DataFrame) -> pd.DataFrame:
    def col(name: str) -> pd.Series:  # optional columns: the full release may differ from the sample
        return movies[name].fillna("") if name in movies else pd.Series("", index=movies.index)

    ids = movies["MOVIE_ID"].str.strip()
    imdb = col("IMDB_ID").str.strip()
    return pd.DataFrame({
        "item_id": ids, "title": movies["NAME"], "description": col("STORYLINE"), "domain": "video", "language": "zh",
        "alias": col("ALIAS").str.strip(),
        "year": pd.to_numeric(col("YEAR"), errors="coerce").astype("Int64"),
        "imdb_id": imdb.where(imdb != "", None),
        "languages": _split(col("LANGUAGES")).str.join(", "),
        "douban_score": pd.to_numeric(col("DOUBAN_SCORE"), errors="coerce"),
        "douban_votes": pd.to_numeric(col("DOUBAN_VOTES"), errors="coerce").astype("Int64"),
        "mins": pd.to_numeric(col("MINS"), errors="coerce").astype("Int64"),
        "douban_url": ids.map(MOVIE_URL.format), "catalogued": True,
        "_source": movies["_source"], "_line": movies["_line"],
    })


def _facts(movies: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for column, relation, entity_type in FACT_COLUMNS:
        if column not in movies:
            continue
        f = pd.DataFrame({"item_id": movies["MOVIE_ID"].str.strip(), "entity": _split(movies[column]),
                          "_source": movies["_source"], "_line": movies["_line"]}).explode("entity")
        parts.append(f.dropna(subset=["entity"]).assign(relation=relation, entity_type=entity_type, weight=1.0))
    return pd.concat(parts, ignore_index=True) if parts else None


def _stubs(items: pd.DataFrame, *frames: pd.DataFrame | None) -> pd.DataFrame:
    """Items for movies that are rated or reviewed but missing from movies.csv (see the module docstring)."""
    refs = pd.concat([f[["item_id", "_source", "_line"]] for f in frames if f is not None and len(f)])
    if not len(refs):
        return items.iloc[:0]
    refs = refs.assign(item_id=refs["item_id"].str.strip())
    refs = refs[(refs["item_id"] != "") & ~refs["item_id"].isin(items["item_id"])].drop_duplicates("item_id")
    return pd.DataFrame({
        "item_id": refs["item_id"], "title": refs["item_id"].map(STUB_TITLE.format), "description": "",
        "domain": "video", "language": "zh", "douban_url": refs["item_id"].map(MOVIE_URL.format),
        "catalogued": False, "_source": refs["_source"], "_line": np.int64(0),
    })
