"""HetRec 2011 MovieLens metadata (hetrec2011-movielens-2k-v2) as extra facts for MovieLens items.

Not a dataset on its own: the copy we have lacks its ratings and cast files
(see its SOURCE.md). It *enriches* a MovieLens csv dataset whose links.csv
gives IMDb ids, joined to movies.dat's imdbID:

- directed_by (movie_directors.dat), produced_in (movie_countries.dat) and
  filmed_in (movie_locations.dat, every distinct value of location1..4) were
  collected from IMDb by imdbID, so they follow the IMDb id alone;
- has_genre (movie_genres.dat) and tagged_as (movie_tags.dat + tags.dat,
  weight = tagWeight, catalogue tags rather than one user's words) belong to the
  HetRec movie id, which is the MovieLens movieId. HetRec's imdbID is wrong on
  some rows (ids 3114 *Toy Story 2* and 4929 *The Toy* both carry *Toy Story*'s
  0114709), so these are taken only when the HetRec id equals the item's
  movieId as well.

A fact the dataset already has (same item and relation, names equal after
case folding and dropping punctuation, e.g. 'Sci-Fi' / 'SciFi') is not added
twice. Every added fact's ``source`` is '<hetrec folder>/<file>:<line>', which
is how the enrichment shows in a Dataset (see ``enriched_items``). Empty
country and location cells mean "unknown" and are skipped, not quarantined.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from .readers import read_delimited
from .schema import Dataset, DatasetError

FOLDER = "hetrec2011-movielens-2k-v2"
ENV = "RECLM_HETREC_MOVIELENS_DIR"  # a folder to use instead of the sibling; set to "" to turn enrichment off
_PUNCT = re.compile(r"[\W_]+")


def find(dataset_folder: Path) -> Path | None:
    """The HetRec folder named by $RECLM_HETREC_MOVIELENS_DIR, else a sibling of the dataset folder, else None."""
    env = os.environ.get(ENV)
    if env is not None:
        if not env.strip():
            return None
        path = Path(env).expanduser()
        if not (path / "movies.dat").is_file():
            raise DatasetError(f"{ENV}={env}: no movies.dat there (expected the {FOLDER} folder)")
        return path
    sibling = Path(dataset_folder).parent / FOLDER
    return sibling if (sibling / "movies.dat").is_file() else None


def enriched_items(ds: Dataset, folder: str = FOLDER) -> set[str]:
    """Item ids that received at least one fact from the HetRec folder."""
    return set(ds.facts.loc[ds.facts["source"].str.startswith(folder + "/"), "item_id"])


def name_key(s: pd.Series) -> pd.Series:
    """Case and punctuation folded, so 'Sci-Fi' and 'scifi' are one genre (computed once per distinct name)."""
    s = s.astype(str)
    keys = {v: _PUNCT.sub("", v.casefold()) for v in pd.unique(s)}
    return s.map(keys)


def _clean(s: pd.Series) -> pd.Series:
    """Stripped text, '' for missing (pyarrow: these files have ~200k cells)."""
    return s.astype("string[pyarrow]").str.strip().fillna("").astype(object)


def _imdb_number(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.fillna("").astype(str).str.strip().str.removeprefix("tt"), errors="coerce")


def enrich(items: pd.DataFrame, facts: pd.DataFrame, hetrec_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Facts to add for ``items`` (needs item_id, imdb_id), given the facts already there.

    Returns (new facts with _source/_line, read-time quarantine, number of items enriched).
    """
    hdir = Path(hetrec_dir)
    bad: list[pd.DataFrame] = []

    def read(name: str) -> pd.DataFrame | None:
        if not (hdir / name).is_file():
            return None
        df, q = read_delimited(hdir / name, sep="\t", quoting=csv.QUOTE_NONE)
        bad.append(q)
        return df

    movies = read("movies.dat")
    if movies is None:
        raise DatasetError(f"{hdir}: no movies.dat (expected the {FOLDER} folder)")
    ml = pd.DataFrame({"item_id": _clean(items["item_id"]), "imdb": _imdb_number(items["imdb_id"])})
    ht = pd.DataFrame({"movieID": _clean(movies["id"]), "imdb": _imdb_number(movies["imdbID"])})
    by_imdb = ml.dropna().merge(ht.dropna(), on="imdb")[["item_id", "movieID"]]
    same_id = by_imdb[by_imdb["item_id"] == by_imdb["movieID"]]

    parts = []
    directors = read("movie_directors.dat")
    if directors is not None:
        parts.append(_facts(directors, by_imdb, "directorName", "directed_by", "person"))
    countries = read("movie_countries.dat")
    if countries is not None:
        parts.append(_facts(countries, by_imdb, "country", "produced_in", "country"))
    locations = read("movie_locations.dat")
    if locations is not None:
        cols = [c for c in locations.columns if c.startswith("location")]
        locations = locations[_clean(locations["movieID"]).isin(by_imdb["movieID"])]
        long = locations.melt(id_vars=["movieID", "_source", "_line"], value_vars=cols, value_name="location")
        parts.append(_facts(long.sort_values("_line", kind="stable"), by_imdb, "location", "filmed_in", "location"))
    genres = read("movie_genres.dat")
    if genres is not None:
        parts.append(_facts(genres, same_id, "genre", "has_genre", "genre"))
    movie_tags, tags = read("movie_tags.dat"), read("tags.dat")
    if movie_tags is not None and tags is not None:
        names = dict(zip(_clean(tags["id"]), tags["value"]))
        movie_tags["tag"] = _clean(movie_tags["tagID"]).map(names)
        unknown = movie_tags["tag"].isna()
        if unknown.any():
            bad.append(pd.DataFrame({"source_file": movie_tags.loc[unknown, "_source"], "line": movie_tags.loc[unknown, "_line"],
                                     "field": "tagID", "value": movie_tags.loc[unknown, "tagID"], "reason": "unknown tag id"}))
        movie_tags = movie_tags[~unknown].rename(columns={"tagWeight": "weight"})
        parts.append(_facts(movie_tags, same_id, "tag", "tagged_as", "tag"))

    columns = ["item_id", "relation", "entity_type", "entity", "weight", "_source", "_line"]
    new = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    new = _not_already_known(new, facts)
    new["_source"] = hdir.name + "/" + new["_source"].astype(str)
    new["source"] = new["_source"] + ":" + new["_line"].astype(str)
    quarantine = pd.concat([b for b in bad if len(b)], ignore_index=True) if any(len(b) for b in bad) else pd.DataFrame(
        columns=["source_file", "line", "field", "value", "reason"])
    quarantine["source_file"] = hdir.name + "/" + quarantine["source_file"].astype(str)
    return new, quarantine, int(new["item_id"].nunique())


def _facts(rows: pd.DataFrame, pairs: pd.DataFrame, column: str, relation: str, entity_type: str) -> pd.DataFrame:
    """HetRec rows (movieID, <column>, _source, _line, optional weight) as facts on the paired items."""
    rows = rows.assign(movieID=_clean(rows["movieID"]))
    rows = rows[rows["movieID"].isin(pairs["movieID"])]  # most HetRec movies are not in the dataset
    rows = rows.assign(entity=_clean(rows[column]))
    rows = rows[rows["entity"] != ""]
    out = rows.merge(pairs, on="movieID", how="inner")
    keep = ["item_id", "entity", "_source", "_line"] + (["weight"] if "weight" in out else [])
    out = out[keep].assign(relation=relation, entity_type=entity_type)
    if "weight" not in out:
        out["weight"] = 1.0
    return out


def _not_already_known(new: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """Drop new facts that repeat an existing one (or an earlier new one) up to case and punctuation."""
    if not len(new):
        return new
    key = ["item_id", "relation", "_key"]
    new = new.assign(_key=name_key(new["entity"])).drop_duplicates(key)
    have = facts[facts["relation"].isin(new["relation"].unique())]
    have = have.assign(_key=name_key(have["entity"]), item_id=_clean(have["item_id"]))[key]
    merged = new.merge(have.drop_duplicates(), on=key, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns=["_key", "_merge"]).reset_index(drop=True)
