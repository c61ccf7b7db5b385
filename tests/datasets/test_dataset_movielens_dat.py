"""MovieLens 100k, 1m and 10m layouts on small files written exactly as the GroupLens READMEs describe them."""

from __future__ import annotations

import pandas as pd
import pytest

from reclm_dagster.datasets import load_dataset, movielens, movielens_dat, source_for
from reclm_dagster.datasets.readers import read_dat, split_dat_line
from reclm_dagster.kg.build import user_tag_facts

GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western"]


def flags(*names):
    return "|".join("1" if g in names else "0" for g in GENRES_100K)


def write_100k(folder):
    folder.mkdir()
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n")
    toy_genres = flags("Animation", "Children's", "Comedy")
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{toy_genres}",
        f"2|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/Title?Mis%E9rables,+Les+(1995)|{flags('Drama', 'Musical')}",
        f"267|unknown||||{flags('unknown')}",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.data").write_text("196\t1\t3\t881250949\n186\t2\t5\t891717742\n22\t267\t1\t878887116\n7\t1\t5\n244\t9\t2\t880606923\n")
    (folder / "u.user").write_text("196|49|M|writer|55105\n186|39|F|executive|00000\n")
    return folder


def test_ml_100k(tmp_path):
    folder = write_100k(tmp_path / "ml-100k")
    assert source_for(folder).name == "movielens-100k"
    ds = load_dataset("ml-100k", tmp_path)
    items = ds.items.set_index("item_id")
    assert items.loc["2", "title"] == "Misérables, Les (1995)" and items.loc["2", "year"] == 1995
    assert items.loc["2", "description"] == "Misérables, Les (1995). Genres: Drama, Musical."
    assert items.loc["1", "imdb_url"].startswith("http://us.imdb.com/") and items.loc["1", "release_date"] == "01-Jan-1995"
    genres = ds.facts[ds.facts["relation"] == "has_genre"]
    assert sorted(genres.loc[genres["item_id"] == "1", "entity"]) == ["Animation", "Children's", "Comedy"]
    assert "267" not in set(genres["item_id"])  # the 'unknown' flag is no genre
    inter = ds.interactions.set_index(["user_id", "item_id"])
    assert inter.loc[("186", "2"), "weight"] == 5.0 and inter.loc[("186", "2"), "timestamp"] == 891717742
    q = ds.quarantine.set_index("line")
    assert (q["source_file"] == "u.data").all()
    assert q.loc[4, "field"] == "*" and q.loc[5, "reason"] == "unknown item"  # lines count from 1: no header
    assert ds.domain_summary()["n_users"] == 3  # u.user is not loaded, users come from u.data


def test_ml_100k_genre_names_come_from_u_genre(tmp_path):
    folder = write_100k(tmp_path / "ml-100k")
    (folder / "u.genre").write_text("".join(f"{g.upper()}|{i}\n" for i, g in enumerate(GENRES_100K)))
    ds = movielens_dat.load_100k(folder)
    assert "MUSICAL" in set(ds.facts["entity"])


def write_1m(folder):
    folder.mkdir()
    movies = ["1::Toy Story (1995)::Animation|Children's|Comedy", "73::Misérables, Les (1995)::Drama|Musical",
              "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi"]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::73::3::978302109\n2::260::4::978299026\n")
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return folder


def test_ml_1m(tmp_path):
    folder = write_1m(tmp_path / "ml-1m")
    assert source_for(folder).name == "movielens-dat"
    ds = load_dataset("ml-1m", tmp_path)
    items = ds.items.set_index("item_id")
    assert items.loc["73", "title"] == "Misérables, Les (1995)"
    assert items.loc["260", "title"] == "Star Wars: Episode IV - A New Hope (1977)" and items.loc["260", "year"] == 1977
    assert ds.domain_summary()["n_interactions"] == 3 and len(ds.quarantine) == 0
    assert set(ds.facts.loc[ds.facts["item_id"] == "1", "entity"]) == {"Animation", "Children's", "Comedy"}
    assert ds.interactions["weight"].tolist() == [5.0, 3.0, 4.0]


def write_10m(folder):
    folder.mkdir()
    (folder / "movies.dat").write_text(
        "1::Toy Story (1995)::Adventure|Animation|Children|Comedy|Fantasy\n"
        "2::Misérables, Les (1995)::Drama|War\n"
        "3::Huh: (2000)::(no genres listed)\n", encoding="utf-8")
    (folder / "ratings.dat").write_text("1::1::5::838985046\n1::2::4.5::838983525\n2::3::0.5::838983392\n")
    (folder / "tags.dat").write_text(
        "15::1::pixar::1215184630\n20::1::Pixar::1188263867\n20::2::note:: see it::1188263880\n21::2::émouvant::1188263881\n",
        encoding="utf-8")
    return folder


def test_ml_10m(tmp_path):
    folder = write_10m(tmp_path / "ml-10m")
    assert source_for(folder).name == "movielens-dat"
    ds = load_dataset("ml-10m", tmp_path)
    assert sorted(ds.interactions["weight"]) == [0.5, 4.5, 5.0]
    assert ds.items.set_index("item_id").loc["3", "title"] == "Huh: (2000)"
    assert "3" not in set(ds.facts.loc[ds.facts["relation"] == "has_genre", "item_id"])
    texts = ds.descriptions.set_index("description_id")["text"]
    assert texts["tags.dat:3"] == "note:: see it" and texts["tags.dat:4"] == "émouvant"
    assert not (ds.facts["relation"] == "tagged_as").any()
    tags = user_tag_facts(ds.descriptions)
    assert facts_weight(tags, "1", "pixar") == 2  # case-insensitive
    assert (ds.descriptions["timestamp"] > 1e9).all()


def facts_weight(tags, item, key):
    row = tags[(tags["item_id"] == item) & (tags["entity"].str.casefold() == key)]
    return row["weight"].item()


def test_bad_ratings_dat_lines_are_quarantined_with_their_line(tmp_path):
    folder = write_10m(tmp_path / "ml-10m")
    (folder / "ratings.dat").write_text("1::1::5::838985046\n\n1::2::4.5\n2::3::x::838983392\n3::3::4::838983393\n")
    ds = movielens_dat.load_dat(folder)
    q = ds.quarantine.set_index("line")
    assert q.loc[3, "field"] == "*" and q.loc[4, "field"] == "weight"
    assert sorted(ds.interactions["user_id"]) == ["1", "3"]


def test_fast_and_exact_ratings_readers_agree(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("".join(f"{u}::{m}::{(u * m) % 10 / 2 + 0.5}::{1_000_000 + u * m}\n" for u in range(1, 40) for m in range(1, 30)))
    fast, bad = movielens_dat.read_ratings_dat(path)
    exact, _ = read_dat(path, movielens_dat.RATING_COLUMNS)
    assert len(bad) == 0 and len(fast) == len(exact) == 39 * 29
    assert (fast["_line"].to_numpy() == exact["_line"].to_numpy()).all()
    for col in ("user_id", "item_id", "timestamp"):
        assert (fast[col].astype(str).to_numpy() == exact[col].to_numpy()).all()
    assert (fast["weight"].to_numpy() == exact["weight"].astype(float).to_numpy()).all()


@pytest.mark.parametrize("line, fields, free, expected", [
    ("1::Foo:::Drama", 3, 1, ["1", "Foo:", "Drama"]),
    ("1::A::B::C::Drama", 3, 1, ["1", "A::B::C", "Drama"]),
    ("1::2::3::4", 4, None, ["1", "2", "3", "4"]),
    ("1::2::3", 4, None, None),
    ("1::Title only", 3, 1, None),
])
def test_split_dat_line(line, fields, free, expected):
    assert split_dat_line(line, fields, free) == expected


def test_dispatch_by_files_present(tmp_path):
    hetrec_like = tmp_path / "meta"
    hetrec_like.mkdir()
    (hetrec_like / "movies.dat").write_text("id\ttitle\timdbID\n1\tToy story\t0114709\n")
    assert source_for(hetrec_like) is None  # metadata only: not a dataset
    tabbed = tmp_path / "tabbed"
    tabbed.mkdir()
    (tabbed / "movies.dat").write_text("1::A (1999)::Drama\n")
    (tabbed / "ratings.dat").write_text("1\t1\t5\t10\n")
    assert source_for(tabbed) is None  # ratings.dat without '::' is not ml-1m/10m


def test_csv_ratings_with_text_ids_still_load(tmp_path):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\nm1,A (1999),Drama\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\nu1,m1,4,100\nu2,m1,abc,101\n")
    ds = movielens.load(tmp_path)
    assert ds.interactions[["user_id", "item_id"]].values.tolist() == [["u1", "m1"]]
    assert ds.quarantine.set_index("line").loc[3, "field"] == "weight"
    assert pd.api.types.is_integer_dtype(movielens.read_ratings_csv(_numeric_copy(tmp_path))["user_id"])


def _numeric_copy(tmp_path):
    path = tmp_path / "numeric.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,1,4.0,100\n")
    return path
