"""MovieLens csv layout (ml-latest-small, ml-latest, ml-20m/25m/32m): ratings.csv + movies.csv.

Mapping to the schema (shared with the older layouts in ``movielens_dat.py``):
- movies.csv -> items (item_id = movieId, title as given, description =
  "<title>. Genres: a, b." , domain 'video', language 'en'; extra columns
  ``year`` parsed from the title, ``imdb_id`` ('tt0114709') and ``tmdb_id``
  from links.csv when present);
- genres -> facts ``has_genre`` ('(no genres listed)' dropped);
- ratings.csv -> interactions (weight = rating 0.5-5, timestamp as given);
- tags.csv -> descriptions (kind 'tag', one per line). The graph's ``tagged_as``
  triples are derived from them where they are used (``kg.build.user_tag_facts``),
  never stored as facts: they are users' words and must follow an evaluation's mask.

When HetRec's MovieLens metadata (``hetrec2011-movielens-2k-v2``) sits beside
the dataset, it adds directors, countries, filming locations, genres and tags
by IMDb id (see ``hetrec.py``; ``load(..., hetrec=False)`` turns that off).

ratings.csv is read with pandas and explicit dtypes (tens of millions of rows
in the big releases), so its line numbers are row + 1, which holds because no
field spans lines.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from . import hetrec
from .readers import read_delimited, scan_lines, with_provenance
from .schema import Dataset, validate

log = logging.getLogger(__name__)

NO_GENRES = ("(no genres listed)", "unknown")  # the csv releases' and ml-100k's "no genre"
RATING_DTYPES = {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"}


def detect(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "ratings.csv").is_file() and (folder / "movies.csv").is_file()


def catalogue(movies: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items and ``has_genre`` facts from movies with columns item_id, title, genres (a list), _source, _line."""
    genre_lists = movies["genres"].map(lambda gs: [g.strip() for g in gs if g.strip() and g.strip() not in NO_GENRES])
    title = movies["title"].str.strip()
    description = title + np.where(genre_lists.str.len() > 0, ". Genres: " + genre_lists.str.join(", ") + ".", "")
    items = pd.DataFrame({
        "item_id": movies["item_id"].str.strip(), "title": title, "description": description,
        "domain": "video", "language": "en",
        "year": pd.to_numeric(title.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce").astype("Int64"),
        "_source": movies["_source"], "_line": movies["_line"],
    })
    g = pd.DataFrame({"item_id": items["item_id"], "entity": genre_lists, "_source": movies["_source"],
                      "_line": movies["_line"]}).explode("entity")
    g = g.dropna(subset=["entity"]).assign(relation="has_genre", entity_type="genre", weight=1.0)
    return items, g


def tag_descriptions(tags: pd.DataFrame) -> pd.DataFrame:
    """Tag lines (user_id, item_id, text, timestamp, _source, _line) as 'tag' descriptions."""
    return pd.DataFrame({
        "description_id": tags["_source"] + ":" + tags["_line"].astype(str),
        "user_id": tags["user_id"], "item_id": tags["item_id"].str.strip(), "kind": "tag",
        "text": tags["text"], "rating": None, "timestamp": tags["timestamp"],
        "_source": tags["_source"], "_line": tags["_line"],
    })


def concat_quarantine(bad: list[pd.DataFrame]) -> pd.DataFrame | None:
    parts = [b for b in bad if len(b)]
    return pd.concat(parts, ignore_index=True) if parts else None


def load(folder: Path, name: str | None = None, hetrec_dir: Path | str | bool | None = None) -> Dataset:
    """hetrec_dir: None = the sibling/env folder if present (hetrec.find), False = never, a path = that folder."""
    folder = Path(folder)
    bad: list[pd.DataFrame] = []

    movies, q = read_delimited(folder / "movies.csv")
    bad.append(q)
    movies = movies.rename(columns={"movieId": "item_id"}).assign(genres=movies["genres"].fillna("").str.split("|"))
    items, genres = catalogue(movies)
    items = _add_links(folder, items, bad)

    interactions = read_ratings_csv(folder / "ratings.csv", bad)

    descriptions = None
    if (folder / "tags.csv").is_file():
        tags, q = read_delimited(folder / "tags.csv")
        bad.append(q)
        descriptions = tag_descriptions(tags.rename(columns={"userId": "user_id", "movieId": "item_id", "tag": "text"}))

    facts = genres
    hdir = hetrec.find(folder) if hetrec_dir is None else (None if hetrec_dir is False else Path(hetrec_dir))
    if hdir is not None and "imdb_id" in items:
        extra, q, n = hetrec.enrich(items, facts, hdir)
        if len(extra):
            facts = pd.concat([facts, extra], ignore_index=True)
        bad.append(q)
        log.info("%s: %d of %d items enriched from %s", folder.name, n, len(items), hdir)

    ds = Dataset(name=name or folder.name, items=items, interactions=interactions, descriptions=descriptions,
                 facts=facts, quarantine=concat_quarantine(bad))
    return validate(ds)


def read_ratings_csv(path: Path, bad: list | None = None) -> pd.DataFrame:
    """ratings.csv as interactions. Numeric dtypes first: 2-3x faster and far smaller than strings
    on 32M rows; a file with a non-numeric value, or a NUL byte (which the C parser silently ends a
    field at: '1\0' would read as user 1), is read by ``read_delimited`` so its rows are quarantined."""
    ratings = None
    if not scan_lines(path)[1]:
        try:
            ratings = pd.read_csv(path, dtype=RATING_DTYPES, engine="c")
            ratings = with_provenance(ratings, path.name, np.arange(2, len(ratings) + 2))
        except (ValueError, TypeError):
            ratings = None
    if ratings is None:
        ratings, q = read_delimited(path)
        if bad is not None:
            bad.append(q)
    return ratings.rename(columns={"userId": "user_id", "movieId": "item_id", "rating": "weight"})


def _add_links(folder: Path, items: pd.DataFrame, bad: list) -> pd.DataFrame:
    """imdb_id as IMDb writes it ('tt' + 7 digits) and tmdb_id, from links.csv if present."""
    if not (folder / "links.csv").is_file():
        return items
    links, q = read_delimited(folder / "links.csv")
    bad.append(q)
    links = links.drop_duplicates("movieId")
    imdb = links["imdbId"].str.strip()
    links = pd.DataFrame({
        "item_id": links["movieId"].str.strip(),
        "imdb_id": np.where(imdb != "", "tt" + imdb.str.zfill(7), None),
        "tmdb_id": links["tmdbId"].str.strip().replace("", None),
    })
    return items.merge(links, on="item_id", how="left")
