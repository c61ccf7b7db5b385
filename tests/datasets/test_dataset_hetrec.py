"""HetRec MovieLens metadata enriching a MovieLens csv dataset by IMDb id."""

from __future__ import annotations

import csv

import pytest

from reclm_dagster.datasets import DatasetError, hetrec, load_dataset, movielens
from reclm_dagster.datasets.readers import decode

realdata = pytest.mark.realdata
PREFIX = hetrec.FOLDER + "/"


def dat_rows(path):
    with open(path, encoding="latin-1", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


@realdata
def test_ml_latest_small_is_enriched(ml_small, ml_small_dir, hetrec_movies_dir):
    enriched = hetrec.enriched_items(ml_small)
    with open(ml_small_dir / "links.csv", encoding="utf-8", newline="") as fh:
        ml_imdb = {r["movieId"]: int(r["imdbId"]) for r in csv.DictReader(fh) if r["imdbId"]}
    hetrec_imdb = {int(r["imdbID"]) for r in dat_rows(hetrec_movies_dir / "movies.dat")}
    matchable = {m for m, i in ml_imdb.items() if i in hetrec_imdb}
    assert 0 < len(enriched) <= len(matchable) and enriched <= matchable

    toy = ml_small.items.loc[ml_small.items["imdb_id"] == "tt0114709", "item_id"].item()
    facts = ml_small.facts[ml_small.facts["item_id"] == toy]
    director = facts[facts["relation"] == "directed_by"]
    assert list(director["entity"]) == ["John Lasseter"] and (director["entity_type"] == "person").all()
    assert director["source"].item().startswith(PREFIX + "movie_directors.dat:")
    assert ml_small.domain_summary()["n_quarantined"] == 0


@realdata
def test_wrong_imdb_rows_do_not_leak_movielens_side_facts(ml_small, hetrec_movies_dir):
    # HetRec movie 3114 (Toy Story 2 in MovieLens) carries Toy Story's IMDb id: its tags
    # describe Toy Story 2 and must not land on Toy Story (movieId 1).
    ids = [r["id"] for r in dat_rows(hetrec_movies_dir / "movies.dat") if r["imdbID"] == "0114709"]
    assert len(ids) > 1
    lines = {f"{PREFIX}movie_tags.dat:{n}" for n, r in enumerate(dat_rows(hetrec_movies_dir / "movie_tags.dat"), 2)
             if r["movieID"] in ids and r["movieID"] != "1"}
    toy = ml_small.facts[ml_small.facts["item_id"] == "1"]
    assert lines and not (set(toy["source"]) & lines)


@realdata
def test_genres_merge_with_movielens_names(ml_small):
    genres = ml_small.facts[ml_small.facts["relation"] == "has_genre"]
    keys = genres.assign(key=hetrec.name_key(genres["entity"]))
    assert not keys.duplicated(["item_id", "key"]).any()
    added = genres[genres["source"].str.startswith(PREFIX)]
    assert len(added) > 0  # e.g. 'Short', which ml-latest-small does not use


# ------------------------------------------------------------------ a tiny pair of folders

def write(path, text, encoding="utf-8"):
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))


@pytest.fixture()
def pair(tmp_path, monkeypatch):
    monkeypatch.delenv(hetrec.ENV, raising=False)
    ml = tmp_path / "ml-mini"
    ml.mkdir()
    (ml / "movies.csv").write_text(
        "movieId,title,genres\n1,Alpha (1999),Sci-Fi\n2,Beta (2001),Drama\n3,Gamma (2003),Comedy\n4,Delta (2004),Drama\n")
    (ml / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,10\n1,2,3,11\n")
    (ml / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0000001,\n2,0000002,\n3,0000003,\n4,,\n")
    h = tmp_path / hetrec.FOLDER
    h.mkdir()
    # HetRec id 30 is a wrong-IMDb row: it claims item 2's IMDb id but is another MovieLens movie
    write(h / "movies.dat", "id\ttitle\timdbID\n1\tAlpha\t0000001\n2\tBeta\t0000002\n30\tBeta again\t0000002\n99\tNot in ML\t0000099\n")
    write(h / "movie_directors.dat", "movieID\tdirectorID\tdirectorName\n1\tpedro\tPedro Almodóvar\n30\tpedro\tPedro Almodóvar\n",
          encoding="latin-1")
    write(h / "movie_genres.dat", "movieID\tgenre\n1\tsci-fi\n1\tShort\n30\tWestern\n99\tHorror\n")
    write(h / "movie_countries.dat", "movieID\tcountry\n1\tSpain\n2\t\n")
    write(h / "movie_locations.dat", "movieID\tlocation1\tlocation2\tlocation3\tlocation4\n"
          "1\tSpain\tMadrid\t\t\n1\tSpain\tMadrid\tCentro\t\n2\t\t\t\t\n")
    write(h / "tags.dat", "id\tvalue\n1\tgoofy\n2\tcafé\n")
    write(h / "movie_tags.dat", "movieID\ttagID\ttagWeight\n1\t1\t3\n1\t2\t2\n1\t7\t1\n30\t1\t5\n")
    return ml, h


def facts_of(ds, item, relation):
    f = ds.facts[(ds.facts["item_id"] == item) & (ds.facts["relation"] == relation)]
    return dict(zip(f["entity"], f["weight"]))


def test_sibling_folder_enriches(pair):
    ml, _ = pair
    ds = load_dataset(ml.name, ml.parent)
    assert hetrec.enriched_items(ds) == {"1", "2"}
    assert facts_of(ds, "1", "directed_by") == {"Pedro Almodóvar": 1.0}  # Latin-1 decoded
    assert facts_of(ds, "1", "has_genre") == {"Sci-Fi": 1.0, "Short": 1.0}  # 'sci-fi' merged into ML's name
    assert facts_of(ds, "1", "produced_in") == {"Spain": 1.0}
    assert facts_of(ds, "1", "filmed_in") == {"Spain": 1.0, "Madrid": 1.0, "Centro": 1.0}
    assert facts_of(ds, "1", "tagged_as") == {"goofy": 3.0, "café": 2.0}
    # item 2: IMDb-side facts through the wrong-IMDb row 30, but not its genres or tags
    assert facts_of(ds, "2", "directed_by") == {"Pedro Almodóvar": 1.0}
    assert facts_of(ds, "2", "has_genre") == {"Drama": 1.0}
    assert facts_of(ds, "2", "tagged_as") == {} and facts_of(ds, "2", "produced_in") == {}
    src = ds.facts.set_index(["item_id", "relation", "entity"]).loc[("1", "filmed_in", "Centro"), "source"]
    assert src == f"{hetrec.FOLDER}/movie_locations.dat:3"
    q = ds.quarantine
    assert list(zip(q["source_file"], q["line"], q["reason"])) == [(f"{hetrec.FOLDER}/movie_tags.dat", 4, "unknown tag id")]


def test_enrichment_can_be_turned_off_or_pointed_elsewhere(pair, tmp_path, monkeypatch):
    ml, h = pair
    assert not hetrec.enriched_items(movielens.load(ml, hetrec_dir=False))
    monkeypatch.setenv(hetrec.ENV, "")
    assert not hetrec.enriched_items(movielens.load(ml))
    elsewhere = tmp_path / "meta" / "hetrec-copy"
    elsewhere.parent.mkdir()
    h.rename(elsewhere)
    monkeypatch.delenv(hetrec.ENV)
    assert not hetrec.enriched_items(movielens.load(ml))  # no sibling any more
    monkeypatch.setenv(hetrec.ENV, str(elsewhere))
    ds = movielens.load(ml)
    assert hetrec.enriched_items(ds, folder="hetrec-copy") == {"1", "2"}
    monkeypatch.setenv(hetrec.ENV, str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match=hetrec.ENV):
        movielens.load(ml)


def test_no_links_no_enrichment(pair):
    ml, _ = pair
    (ml / "links.csv").unlink()
    ds = load_dataset(ml.name, ml.parent)
    assert not hetrec.enriched_items(ds) and len(ds.items) == 4


def test_mixed_encoding_lines_decode_each_on_its_own():
    data = "id\tvalue\n1\tcafé\n".encode("utf-8") + "2\tcrème\n".encode("latin-1")
    assert decode(data).splitlines() == ["id\tvalue", "1\tcafé", "2\tcrème"]


def test_folder_with_movies_dat_only_adds_nothing(pair):
    ml, h = pair
    for p in h.iterdir():
        if p.name != "movies.dat":
            p.unlink()
    ds = load_dataset(ml.name, ml.parent)
    assert not hetrec.enriched_items(ds) and len(ds.quarantine) == 0
