"""The older MovieLens layouts, as their GroupLens READMEs document them.

- **ml-100k**: ``u.data`` (tab separated: user id, item id, rating, timestamp;
  no header), ``u.item`` ('|' separated, Latin-1: movie id, title, release
  date, video release date, IMDb URL, then one 0/1 flag per genre), ``u.genre``
  (genre|index, naming the flag columns in order).
- **ml-1m / ml-10m**: '::' separated, no header: ``ratings.dat``
  (UserID::MovieID::Rating::Timestamp), ``movies.dat`` (MovieID::Title::Genres,
  genres '|' separated; Latin-1 in ml-1m, UTF-8 in ml-10m) and, in ml-10m,
  ``tags.dat`` (UserID::MovieID::Tag::Timestamp).

Items, genres and tags map as in the csv layout (``movielens.py``): description
"<title>. Genres: a, b.", ``has_genre`` facts ('unknown' dropped), tags as
'tag' descriptions (no stored ``tagged_as`` facts: see movielens.py). Line numbers
start at 1 (no header). ``u.user`` / ``users.dat`` (age, gender, occupation,
zip code) are not loaded: the schema has no user attributes and reclm keys
users by id only.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from .movielens import catalogue, concat_quarantine, tag_descriptions
from .readers import first_line, read_dat, read_delimited, scan_lines, with_provenance
from .schema import Dataset, validate

# u.genre as shipped with ml-100k, used only when the file is missing.
GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western"]
ITEM_COLUMNS_100K = ["item_id", "title", "release_date", "video_release_date", "imdb_url"]
RATING_COLUMNS = ["user_id", "item_id", "weight", "timestamp"]


def detect_100k(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "u.data").is_file() and (folder / "u.item").is_file()


def detect_dat(folder: Path) -> bool:
    folder = Path(folder)
    ratings, movies = folder / "ratings.dat", folder / "movies.dat"
    return ratings.is_file() and movies.is_file() and "::" in first_line(ratings)


def load_100k(folder: Path, name: str | None = None) -> Dataset:
    folder = Path(folder)
    bad: list[pd.DataFrame] = []
    genres = _genres_100k(folder, bad)

    movies, q = read_delimited(folder / "u.item", sep="|", quoting=csv.QUOTE_NONE, names=ITEM_COLUMNS_100K + genres)
    bad.append(q)
    flags = movies[genres].apply(lambda col: col.str.strip() == "1")
    movies["genres"] = [[g for g, on in zip(genres, row) if on] for row in flags.to_numpy()]
    items, genre_facts = catalogue(movies)
    for col in ("release_date", "imdb_url"):
        items[col] = movies[col].str.strip().replace("", None)

    ratings, q = read_delimited(folder / "u.data", sep="\t", quoting=csv.QUOTE_NONE, names=RATING_COLUMNS)
    bad.append(q)
    ds = Dataset(name=name or folder.name, items=items, interactions=ratings, facts=genre_facts,
                 quarantine=concat_quarantine(bad))
    return validate(ds)


def _genres_100k(folder: Path, bad: list) -> list[str]:
    """Genre names in flag order, from u.genre ('name|index')."""
    if not (folder / "u.genre").is_file():
        return list(GENRES_100K)
    g, q = read_delimited(folder / "u.genre", sep="|", quoting=csv.QUOTE_NONE, names=["genre", "index"])
    bad.append(q)
    g = g.assign(index=pd.to_numeric(g["index"], errors="coerce")).dropna(subset=["index"]).sort_values("index")
    return [s.strip() for s in g["genre"]]


def load_dat(folder: Path, name: str | None = None) -> Dataset:
    folder = Path(folder)
    bad: list[pd.DataFrame] = []

    movies, q = read_dat(folder / "movies.dat", ["item_id", "title", "genres"], free=1)
    bad.append(q)
    movies["genres"] = movies["genres"].str.split("|")
    items, genres = catalogue(movies)

    ratings, q = read_ratings_dat(folder / "ratings.dat")
    bad.append(q)

    descriptions = None
    if (folder / "tags.dat").is_file():
        tags, q = read_dat(folder / "tags.dat", ["user_id", "item_id", "text", "timestamp"], free=2)
        bad.append(q)
        descriptions = tag_descriptions(tags)

    ds = Dataset(name=name or folder.name, items=items, interactions=ratings, descriptions=descriptions,
                 facts=genres, quarantine=concat_quarantine(bad))
    return validate(ds)


def read_ratings_dat(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ratings.dat (10M lines in ml-10m) with pandas' C parser, else line by line.

    The C parser cannot split on '::', but splitting on ':' gives the four
    numbers in columns 0, 2, 4, 6 (the empty columns between are skipped).
    That is only trusted when every line parsed as numbers and the row count
    equals the file's line count (so no blank or short line shifted the line
    numbers); otherwise ``read_dat`` finds and quarantines the faulty lines.
    """
    path = Path(path)
    n_lines, has_nul = scan_lines(path)
    try:
        # the C parser ends a field at a NUL byte ('1\0' reads as 1): such files go line by line
        df = None if has_nul else pd.read_csv(path, sep=":", header=None, names=range(7), usecols=[0, 2, 4, 6],
                                              engine="c", dtype={0: "int64", 2: "int64", 4: "float64", 6: "int64"})
    except (ValueError, pd.errors.ParserError):
        df = None
    if df is not None and len(df) == n_lines:
        df.columns = RATING_COLUMNS
        empty = pd.DataFrame(columns=["source_file", "line", "field", "value", "reason"])
        return with_provenance(df, path.name, np.arange(1, len(df) + 1)), empty
    return read_dat(path, RATING_COLUMNS)
