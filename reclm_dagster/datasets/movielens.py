"""MovieLens csv layout (ml-latest-small, ml-latest, ml-20m/25m/32m): ratings.csv + movies.csv.

Mapping to the schema:
- movies.csv -> items (item_id = movieId, title as given, description =
  "<title>. Genres: a, b." , domain 'video', language 'en'; extra columns
  ``year`` parsed from the title, ``imdb_id`` ('tt0114709') and ``tmdb_id``
  from links.csv when present);
- genres -> facts ``has_genre`` ('(no genres listed)' dropped);
- ratings.csv -> interactions (weight = rating 0.5-5, timestamp as given);
- tags.csv -> descriptions (kind 'tag', one per line) and facts ``tagged_as``
  (case-insensitive, weight = number of assignments).

ratings.csv is read with pandas (tens of millions of rows in the big releases),
so its line numbers are row + 1, which holds because no field spans lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .readers import read_delimited, tag_facts, with_provenance
from .schema import Dataset, validate

NO_GENRES = "(no genres listed)"


def detect(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "ratings.csv").is_file() and (folder / "movies.csv").is_file()


def load(folder: Path, name: str | None = None) -> Dataset:
    folder = Path(folder)
    bad: list[pd.DataFrame] = []

    movies, q = read_delimited(folder / "movies.csv")
    bad.append(q)
    movies["movieId"] = movies["movieId"].str.strip()
    genres = movies["genres"].fillna("").str.split("|")
    genre_lists = genres.map(lambda gs: [g.strip() for g in gs if g.strip() and g.strip() != NO_GENRES])
    title = movies["title"].str.strip()
    description = title + np.where(genre_lists.str.len() > 0, ". Genres: " + genre_lists.str.join(", ") + ".", "")
    items = pd.DataFrame({
        "item_id": movies["movieId"], "title": title, "description": description,
        "domain": "video", "language": "en",
        "year": pd.to_numeric(title.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce").astype("Int64"),
        "_source": movies["_source"], "_line": movies["_line"],
    })
    items = _add_links(folder, items, bad)

    g = pd.DataFrame({"item_id": movies["movieId"], "entity": genre_lists, "_line": movies["_line"]}).explode("entity")
    g = g.dropna(subset=["entity"])
    facts = [g.assign(relation="has_genre", entity_type="genre", weight=1.0, _source="movies.csv")]

    ratings = pd.read_csv(folder / "ratings.csv", dtype={"userId": str, "movieId": str})
    ratings = with_provenance(ratings, "ratings.csv", np.arange(2, len(ratings) + 2))
    interactions = ratings.rename(columns={"userId": "user_id", "movieId": "item_id", "rating": "weight"})

    descriptions = None
    if (folder / "tags.csv").is_file():
        tags, q = read_delimited(folder / "tags.csv")
        bad.append(q)
        descriptions = pd.DataFrame({
            "description_id": "tags.csv:" + tags["_line"].astype(str),
            "user_id": tags["userId"], "item_id": tags["movieId"].str.strip(), "kind": "tag",
            "text": tags["tag"], "rating": None, "timestamp": tags["timestamp"],
            "_source": tags["_source"], "_line": tags["_line"],
        })
        facts.append(tag_facts(descriptions, set(items["item_id"])))

    quarantine = pd.concat([b for b in bad if len(b)], ignore_index=True) if any(len(b) for b in bad) else None
    ds = Dataset(name=name or folder.name, items=items, interactions=interactions, descriptions=descriptions,
                 facts=pd.concat(facts, ignore_index=True), quarantine=quarantine)
    return validate(ds)


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
