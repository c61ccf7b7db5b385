"""MovieLens csv layout: ml-latest-small counts from SOURCE.md, genres, tags, links."""

from __future__ import annotations

import csv

import pytest

from reclm_dagster.datasets import movielens
from reclm_dagster.kg.build import user_tag_facts

realdata = pytest.mark.realdata


@realdata
def test_counts_match_source_md(ml_small):
    s = ml_small.domain_summary()
    assert s["n_items"] == s["n_items_video"] == 9_742
    assert s["n_interactions"] == 100_836
    assert s["n_descriptions"] == 3_683
    assert s["n_users"] == 610
    assert s["n_quarantined"] == 0


@realdata
def test_genre_facts(ml_small, ml_small_dir):
    with open(ml_small_dir / "movies.csv", encoding="utf-8", newline="") as f:
        expected = sum(g != "(no genres listed)" for row in csv.DictReader(f) for g in row["genres"].split("|"))
    facts = ml_small.facts
    genres = facts[(facts["relation"] == "has_genre") & facts["source"].str.startswith("movies.csv:")]
    assert len(genres) == expected  # (a HetRec folder beside it may add more, with its own source)
    assert "(no genres listed)" not in set(genres["entity"])
    toy = ml_small.items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story (1995)" and toy["year"] == 1995
    assert "Animation" in toy["description"] and toy["imdb_id"] == "tt0114709"


@realdata
def test_ratings_and_tags(ml_small):
    w = ml_small.interactions["weight"]
    assert w.min() == 0.5 and w.max() == 5.0 and ((w * 2) % 1 == 0).all()  # half stars
    assert ml_small.interactions["timestamp"].notna().all()
    facts = ml_small.facts
    # users' tags are not stored as facts (HetRec's catalogue tags, from another population, may be)
    assert not facts["source"].str.startswith("tags.csv:").any()
    tags = user_tag_facts(ml_small.descriptions)
    assert tags["weight"].sum() == len(ml_small.descriptions)  # every tag line counted once
    assert (ml_small.descriptions["kind"] == "tag").all()
    assert "Misérables" in " ".join(ml_small.items["title"])  # UTF-8 titles


def test_small_copy_with_bad_rows(tmp_path):
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,"Heat, the Remake (2001)",Action|Crime\n2,Nothing (1999),(no genres listed)\n'
    )
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,100\n1,2,0,101\n2,3,4,102\n")
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,slow,200\n2,1,Slow ,201\n")
    ds = movielens.load(tmp_path, "tiny")
    assert list(ds.items["title"]) == ["Heat, the Remake (2001)", "Nothing (1999)"]
    assert ds.items.set_index("item_id").loc["2", "description"] == "Nothing (1999)"
    assert list(ds.interactions["weight"]) == [4.5]
    q = ds.quarantine.set_index("line")
    assert q.loc[3, "field"] == "weight" and q.loc[4, "reason"] == "unknown item"
    assert not (ds.facts["relation"] == "tagged_as").any()
    tag = user_tag_facts(ds.descriptions)
    assert len(tag) == 1 and tag.iloc[0]["weight"] == 2  # case and spaces ignored
    assert "imdb_id" not in ds.items  # no links.csv, no column
