"""Douban (Chinese): counts from SOURCE.md, facts, Beijing times, stub items, and no user identity beyond the md5."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from reclm_dagster.datasets import DatasetError, douban, load_dataset, source_for

realdata = pytest.mark.realdata
BEIJING = timezone(timedelta(hours=8))


def read_csv_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def all_cells(ds, names: bool = True) -> list[str]:
    """Every value (and column name) of every output frame, as text."""
    out = []
    for frame in (ds.items, ds.interactions, ds.descriptions, ds.facts, ds.user_links, ds.quarantine):
        out += [str(c) for c in frame.columns] if names else []
        for col in frame.columns:
            out += frame[col].astype(str).tolist()
    return out


@realdata
def test_counts_match_source_md(douban, douban_dir):
    s = douban.domain_summary()
    catalogued = douban.items[douban.items["catalogued"].astype(bool)]
    assert len(catalogued) == 1_000 and (catalogued["language"] == "zh").all()
    # SOURCE.md: comments on 111 movies, ratings on 34 of them, none of them in movies.csv
    assert s["n_items"] - len(catalogued) == 111
    assert s["n_interactions"] == 1_000
    assert s["n_descriptions"] == 5_000 and (douban.descriptions["kind"] == "review").all()
    assert douban.descriptions["user_id"].nunique() == 4_473
    assert douban.interactions["user_id"].nunique() == 974
    assert s["n_quarantined"] == 0
    ratings = douban.descriptions["rating"]
    assert ratings.value_counts().to_dict() == {4.0: 1_492, 3.0: 1_436, 5.0: 871, 2.0: 533, 1.0: 310}
    assert ratings.isna().sum() == 358
    w = douban.interactions["weight"]
    assert w.between(1, 5).all() and douban.interactions["timestamp"].notna().all()


@realdata
def test_facts_follow_movies_csv(douban, douban_dir):
    rows = read_csv_rows(douban_dir / "movies.csv")
    columns = {"ACTORS": "starring", "DIRECTORS": "directed_by", "GENRES": "has_genre", "REGIONS": "from_region", "TAGS": "tagged_as"}
    expected = {rel: sum(len({p.strip() for p in r[col].split("/") if p.strip()}) for r in rows) for col, rel in columns.items()}
    assert douban.facts.groupby("relation").size().to_dict() == expected
    first = rows[0]
    mine = douban.facts[douban.facts["item_id"] == first["MOVIE_ID"]]
    for director in first["DIRECTORS"].split("/"):
        assert ((mine["relation"] == "directed_by") & (mine["entity"] == director.strip())).any()
    regions = douban.facts[douban.facts["relation"] == "from_region"]
    assert (regions["entity_type"] == "region").all() and not regions["entity"].str.contains("/").any()
    item = douban.items.set_index("item_id").loc[first["MOVIE_ID"]]
    assert item["title"] == first["NAME"] and item["description"] == first["STORYLINE"]


@realdata
def test_times_are_beijing(douban, douban_dir):
    row = read_csv_rows(douban_dir / "ratings.csv")[0]
    local = datetime.strptime(row["RATING_TIME"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    got = douban.interactions.set_index(["user_id", "item_id"]).loc[(row["USER_MD5"], row["MOVIE_ID"]), "timestamp"]
    assert got == int(local.timestamp())


@realdata
def test_no_user_identity_but_the_md5(douban, douban_dir):
    users = read_csv_rows(douban_dir / "users.csv")
    comments = read_csv_rows(douban_dir / "comments.csv")
    md5s = {u["USER_MD5"] for u in users} | {c["user_md5"] for c in comments}
    for frame in (douban.interactions, douban.descriptions):
        assert frame["user_id"].str.fullmatch(r"[0-9a-f]{32}").all() and set(frame["user_id"]) <= md5s
    # Some nicknames are ordinary words that are also a movie field or one of its '/'-separated
    # parts (a tag such as 小丑); only those may appear, and only because the movie data has them.
    movie_values = {p.strip() for r in read_csv_rows(douban_dir / "movies.csv") for v in r.values()
                    for p in [v, *v.split("/")]}
    movie_values |= {c["content"] for c in comments}
    identity = {u["USER_NICKNAME"] for u in users} | {c["douban_user_nickname"] for c in comments}
    identity |= {c["douban_user_url"] for c in comments} | {c["douban_user_avatar"] for c in comments}
    identity |= {c["user_id"] for c in comments}
    identity -= movie_values | {""}
    cells = all_cells(douban, names=False)
    leaked = set(cells) & identity
    assert not leaked, sorted(leaked)[:5]
    assert not any("doubanio.com/icon" in c or "douban.com/people/" in c for c in cells)
    for frame in (douban.items, douban.interactions, douban.descriptions, douban.facts):
        assert not {c for c in frame.columns if any(k in c.lower() for k in ("nick", "avatar", "user_url"))}


# ------------------------------------------------------------------ a tiny copy in the same format

MOVIES = (
    '\ufeff"MOVIE_ID","NAME","ALIAS","ACTORS","DIRECTORS","GENRES","IMDB_ID","LANGUAGES","REGIONS","STORYLINE","TAGS","YEAR"\n'
    '"100","霸王别姬","Farewell My Concubine","张国荣/张丰毅/巩俐","陈凯歌","剧情/爱情/同性","tt0106332",'
    '"汉语普通话","中国大陆 / 香港","段小楼与程蝶衣的故事。","经典/人性/经典","1993"\n'
    '"101","无名","","","","","","","","","","2020"\n'
)
RATINGS = (
    '\ufeff"RATING_ID","USER_MD5","MOVIE_ID","RATING","RATING_TIME"\n'
    '"1","aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","100","5","2019-01-01 08:00:00"\n'
    '"2","bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","200","3","2019-01-02 00:00:00"\n'
    '"3","cccccccccccccccccccccccccccccccc","100","4","not a time"\n'
)
COMMENTS = (
    '\ufeff"comment_time","content","douban_id","douban_user_avatar","douban_user_nickname","douban_user_url",'
    '"rating","user_id","user_md5"\n'
    '"2019-01-01 08:00:00","第一行\n第二行","100","https://img1.doubanio.com/icon/u42-1.jpg","NICKSENTINEL",'
    '"https://www.douban.com/people/SLUGSENTINEL/","5","SLUGSENTINEL","aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"\n'
    '"2019-01-03 10:00:00","还行吧","300","","NICKTWO","","","4242424242","dddddddddddddddddddddddddddddddd"\n'
)
USERS = '\ufeff"USER_MD5","USER_NICKNAME"\n"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","NICKSENTINEL"\n'


@pytest.fixture()
def tiny(tmp_path):
    folder = tmp_path / "douban-tiny"
    folder.mkdir()
    for name, text in {"movies.csv": MOVIES, "ratings.csv": RATINGS, "comments.csv": COMMENTS, "users.csv": USERS}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_tiny_copy(tiny):
    assert source_for(tiny).name == "douban"  # it also has ratings.csv + movies.csv, like MovieLens
    ds = load_dataset(tiny.name, tiny.parent)
    items = ds.items.set_index("item_id")
    assert items.loc["100", "title"] == "霸王别姬" and items.loc["100", "imdb_id"] == "tt0106332"
    assert items.loc["100", "year"] == 1993 and bool(items.loc["100", "catalogued"])
    stubs = items[~items["catalogued"].astype(bool)]
    assert sorted(stubs.index) == ["200", "300"] and (stubs["description"] == "").all()
    assert stubs.loc["200", "title"].endswith("200") and stubs.loc["300", "language"] == "zh"
    tags = ds.facts[(ds.facts["item_id"] == "100") & (ds.facts["relation"] == "tagged_as")]
    assert sorted(tags["entity"]) == ["人性", "经典"]  # repeated tag kept once
    regions = ds.facts[ds.facts["relation"] == "from_region"]
    assert sorted(regions["entity"]) == ["中国大陆", "香港"]
    review = ds.descriptions.set_index("item_id").loc["100"]
    assert review["text"] == "第一行\n第二行" and review["rating"] == 5.0 and review["kind"] == "review"
    assert review["timestamp"] == int(datetime(2019, 1, 1, tzinfo=timezone.utc).timestamp())
    assert pd.isna(ds.descriptions.set_index("item_id").loc["300", "rating"])
    q = ds.quarantine
    assert list(zip(q["source_file"], q["line"], q["field"])) == [("ratings.csv", 4, "timestamp")]


def test_no_nickname_avatar_or_slug_anywhere(tiny):
    text = "\n".join(all_cells(douban.load(tiny)))
    for secret in ("NICKSENTINEL", "NICKTWO", "SLUGSENTINEL", "4242424242", "doubanio", "/people/"):
        assert secret not in text


def test_without_stub_items_unknown_movies_are_quarantined(tiny):
    ds = douban.load(tiny, stub_items=False)
    assert list(ds.items["item_id"]) == ["100", "101"]
    unknown = ds.quarantine[ds.quarantine["reason"] == "unknown item"]
    assert sorted(zip(unknown["source_file"], unknown["line"])) == [("comments.csv", 4), ("ratings.csv", 3)]


def test_missing_user_column_is_named(tiny):
    (tiny / "ratings.csv").write_text('"RATING_ID","MOVIE_ID","RATING","RATING_TIME"\n"1","100","5","2019-01-01 08:00:00"\n')
    with pytest.raises(DatasetError, match="user_md5"):
        douban.load(tiny)
