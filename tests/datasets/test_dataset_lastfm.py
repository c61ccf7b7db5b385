"""HetRec Last.fm: counts from the dataset's SOURCE.md/readme, encodings, tag handling."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from reclm_dagster.datasets import lastfm as lastfm_source

realdata = pytest.mark.realdata


@realdata
def test_counts_match_source_md(lastfm):
    s = lastfm.domain_summary()
    assert s["n_items"] == s["n_items_audio"] == 17_632
    assert s["n_interactions"] == 92_834
    assert s["n_users"] == 1_892
    assert s["n_user_links"] == 25_434
    # every one of the 186,479 tag assignments is either a description or quarantined
    assert s["n_descriptions"] + s["n_quarantined"] == 186_479


@realdata
def test_unknown_artists_are_quarantined(lastfm, lastfm_dir):
    artists = pd.read_csv(lastfm_dir / "artists.dat", sep="\t", quoting=csv.QUOTE_NONE, usecols=["id"])
    tagged = pd.read_csv(lastfm_dir / "user_taggedartists.dat", sep="\t")
    unknown = tagged.index[~tagged["artistID"].isin(artists["id"])] + 2  # file line: header is line 1
    q = lastfm.quarantine
    assert len(unknown) > 0
    assert (q["source_file"] == "user_taggedartists.dat").all() and (q["reason"] == "unknown item").all()
    assert sorted(q["line"]) == sorted(unknown)
    assert set(lastfm.facts["item_id"]) <= set(lastfm.items["item_id"])


@realdata
def test_readme_examples(lastfm):
    inter = lastfm.interactions.set_index(["user_id", "item_id"])["weight"]
    assert inter[("2", "51")] == 13883  # readme: "2 51 13883"
    d = lastfm.descriptions
    row = d[(d["user_id"] == "2") & (d["item_id"] == "52")].iloc[0]  # readme: "2 52 13 1 4 2009"
    assert row["kind"] == "tag"
    assert row["timestamp"] == pd.Timestamp("2009-04-01", tz="UTC").timestamp()
    items = lastfm.items.set_index("item_id")
    assert items.loc["707", "title"] == "Metallica" and items.loc["707", "domain"] == "audio"
    assert items.loc["1686", "title"] == '"Weird Al" Yankovic'  # quotes are data, not CSV quoting


@realdata
def test_text_decodes_right(lastfm):
    titles = set(lastfm.items["title"])
    assert {"Röyksopp", "The Crüxshadows", "Café Del Mar"} <= titles  # artists.dat is UTF-8
    tags = set(lastfm.descriptions["text"])
    assert {"rock français", "tropicália"} <= tags  # tags.dat is Latin-1
    assert not {"RÃ¶yksopp", "rock franÃ§ais", "rock fran?ais"} & (tags | titles)  # no double/failed decoding


@realdata
def test_tag_facts_aggregate_assignments(lastfm):
    from reclm_dagster.kg.build import user_tag_facts

    # users' tags are never stored as catalogue facts (they must follow an evaluation's mask)...
    assert not len(lastfm.facts)
    # ...the graph derives them from the descriptions it is given
    facts = user_tag_facts(lastfm.descriptions)
    assert set(facts["relation"]) == {"tagged_as"} and set(facts["entity_type"]) == {"tag"}
    assert facts["weight"].sum() == len(lastfm.descriptions)
    counts = lastfm.descriptions.groupby(["item_id", "text"]).size()
    some = facts.iloc[0]
    assert counts[(some["item_id"], some["entity"])] == some["weight"]


def test_latin1_artist_file_decodes(tmp_path):
    """Some copies of the release store artists.dat in Latin-1: it must decode the same."""
    (tmp_path / "artists.dat").write_bytes("id\tname\turl\tpictureURL\n1\tRöyksopp\tu\tp\n2\tSigur Rós\tu\tp\n".encode("latin-1"))
    (tmp_path / "tags.dat").write_bytes("tagID\ttagValue\r\n1\tmúsica\r\n".encode("latin-1"))
    (tmp_path / "user_artists.dat").write_text("userID\tartistID\tweight\r\n2\t1\t10\r\n2\t2\t0\r\n")
    (tmp_path / "user_taggedartists.dat").write_text("userID\tartistID\ttagID\tday\tmonth\tyear\r\n2\t1\t1\t1\t4\t2009\r\n2\t9\t1\t1\t4\t2009\r\n")
    (tmp_path / "user_friends.dat").write_text("userID\tfriendID\r\n2\t3\r\n")
    ds = lastfm_source.load(tmp_path, "mini")
    assert list(ds.items["title"]) == ["Röyksopp", "Sigur Rós"]
    assert list(ds.descriptions["text"]) == ["música"]
    assert list(ds.interactions["item_id"]) == ["1"]  # zero play count is quarantined
    q = ds.quarantine.set_index("source_file")
    assert q.loc["user_artists.dat", "line"] == 3 and q.loc["user_artists.dat", "field"] == "weight"
    assert q.loc["user_taggedartists.dat", "line"] == 3
    assert ds.user_links.iloc[0].to_dict() == {"user_id": "2", "relation": "friend_of", "other_user_id": "3"}
