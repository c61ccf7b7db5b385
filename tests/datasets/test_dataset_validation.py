"""validate(): dtypes, quarantine with file/line/field/reason, duplicates, missing columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reclm_dagster.datasets import COLUMNS, Dataset, DatasetError, empty_frame, folder, validate

ITEMS = """item_id,title,description,domain,language,price
i1,Phone One,"A phone, with a good camera",product,en,1999
i2,Song Two,,audio,,
i3,Film Three,"A film
whose synopsis spans two lines",video,en,
,No Id,missing id,video,en,
i5,Bad Domain,x,radio,en,
i1,Phone One again,duplicate id,product,en,
i6,中文电影,一部好看的电影,video,,
"""

INTERACTIONS = """user_id,item_id,weight,timestamp
u1,i1,3,1700000000
u1,i2,abc,1700000001
u1,i9,1,1700000002
u2,i1,-2,1700000003
u2,i2,2,2024-03-01
u2,i3,1,yesterday-ish
u3,i1,2,1700000005
u3,i1,5,1700000009
u3,i2,1,1700000010
u3,i2,1,1700000010
u4,i3,1,1700000011,extra
,i3,1,1700000012
"""

DESCRIPTIONS = """user_id,item_id,kind,text,rating,timestamp
u1,i1,review,Great camera,5,1700000100
u1,,request,something calm for the evening,,
u2,i2,tag,,,
u2,i9,tag,ghost item,,
u3,i3,rant,not a kind,,
u3,i3,review,fine,five,
"""

FACTS = """item_id,relation,entity_type,entity
i1,brand,brand,Acme
i1,category,,Phone
i9,brand,brand,Ghost
i2,has_genre,genre,
"""


def write_folder(tmp_path: Path, **overrides: str) -> Path:
    files = {"items.csv": ITEMS, "interactions.csv": INTERACTIONS, "descriptions.csv": DESCRIPTIONS, "facts.csv": FACTS}
    files.update(overrides)
    for name, text in files.items():
        if text is not None:
            (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def quarantined(ds: Dataset, source: str) -> set[tuple[int, str, str]]:
    q = ds.quarantine[ds.quarantine["source_file"] == source]
    return set(zip(q["line"], q["field"], q["reason"]))


@pytest.fixture()
def bad(tmp_path):
    return folder.load(write_folder(tmp_path), "bad")


def test_items_quarantine_and_defaults(bad):
    q = quarantined(bad, "items.csv")
    # line numbers count the header as 1 and the two-line record i3 as starting on line 4
    assert (6, "item_id", "missing id") in q
    assert (7, "domain", "domain must be one of video, audio, product") in q
    assert (8, "item_id", "duplicate item_id") in q
    assert list(bad.items["item_id"]) == ["i1", "i2", "i3", "i6"]
    items = bad.items.set_index("item_id")
    assert items.loc["i2", "description"] == ""
    assert items.loc["i6", "language"] == "zh" and items.loc["i2", "language"] == "en"  # guessed when blank
    assert items.loc["i1", "description"] == "A phone, with a good camera"
    assert items["price"].dtype == "float64" and items.loc["i1", "price"] == 1999


def test_interactions_quarantine(bad):
    q = quarantined(bad, "interactions.csv")
    assert (3, "weight", "not a number") in q
    assert (4, "item_id", "unknown item") in q
    assert (5, "weight", "weight must be > 0") in q
    assert (7, "timestamp", "not a unix timestamp or date") in q
    assert (13, "user_id", "missing id") in q
    assert any(line == 12 and field == "*" for line, field, _ in q)  # too many fields
    value = bad.quarantine.set_index(["source_file", "line"]).loc[("interactions.csv", 3), "value"]
    assert value == "abc"


def test_interactions_duplicates_keep_max_weight(bad):
    inter = bad.interactions.set_index(["user_id", "item_id"])
    assert not inter.index.duplicated().any()
    assert inter.loc[("u3", "i1"), "weight"] == 5.0  # max, not sum
    assert inter.loc[("u3", "i1"), "timestamp"] == 1700000009  # latest
    assert inter.loc[("u3", "i2"), "weight"] == 1.0  # exact duplicate dropped, not summed
    assert inter.loc[("u2", "i2"), "timestamp"] == int(pd.Timestamp("2024-03-01", tz="UTC").timestamp())
    assert inter["weight"].dtype == "float64" and str(inter["timestamp"].dtype) == "Int64"


def test_descriptions_quarantine(bad):
    q = quarantined(bad, "descriptions.csv")
    assert (4, "text", "empty text") in q
    assert (5, "item_id", "unknown item") in q
    assert (6, "kind", "kind must be one of tag, review, request, profile") in q
    assert (7, "rating", "not a number") in q
    d = bad.descriptions
    assert len(d) == 2
    request = d[d["kind"] == "request"].iloc[0]
    assert request["item_id"] is None and pd.isna(request["rating"]) and pd.isna(request["timestamp"])
    assert d["description_id"].is_unique


def test_facts_quarantine_and_defaults(bad):
    q = quarantined(bad, "facts.csv")
    assert (4, "item_id", "unknown item") in q
    assert (5, "entity", "empty text") in q
    facts = bad.facts.set_index("relation")
    assert facts.loc["category", "entity_type"] == "category"  # default from the relation
    assert facts.loc["brand", "source"] == "facts.csv:2"
    assert (bad.facts["weight"] == 1.0).all()


def test_summary_counts(bad):
    s = bad.domain_summary()
    assert s["n_items"] == len(bad.items) and s["n_quarantined"] == len(bad.quarantine)
    assert s["n_users"] == len(set(bad.interactions["user_id"]) | set(bad.descriptions["user_id"]))
    assert s["n_items_video"] + s["n_items_audio"] + s["n_items_product"] == s["n_items"]


@pytest.mark.parametrize(
    ("file", "text", "column"),
    [
        ("interactions.csv", "user_id,weight\nu1,1\n", "item_id"),
        ("items.csv", "item_id,title\ni1,x\n", "domain"),
        ("facts.csv", "item_id,relation,entity_type\ni1,brand,brand\n", "entity"),
        ("descriptions.csv", "user_id,item_id,kind\n", "text"),  # header only: still names the file
    ],
)
def test_missing_column_names_file_and_column(tmp_path, file, text, column):
    write_folder(tmp_path, **{file: text})
    with pytest.raises(DatasetError) as err:
        folder.load(tmp_path, "broken")
    message = str(err.value)
    assert file in message and repr(column) in message


def test_optional_tables_and_parquet(tmp_path):
    items = pd.DataFrame({"item_id": [1, 2], "title": ["a", "b"], "domain": ["video", "audio"]})
    items.to_parquet(tmp_path / "items.parquet")
    pd.DataFrame({"user_id": [7, 7, 8], "item_id": [1, 2, 3]}).to_parquet(tmp_path / "interactions.parquet")
    ds = folder.load(tmp_path, "pq")
    assert list(ds.items["item_id"]) == ["1", "2"]  # ids become strings
    assert (ds.interactions["weight"] == 1.0).all()  # implicit feedback by default
    assert ds.interactions["timestamp"].isna().all()
    q = ds.quarantine.iloc[0]
    assert (q["source_file"], q["line"], q["field"], q["reason"]) == ("interactions.parquet", 3, "item_id", "unknown item")
    assert len(ds.descriptions) == 0 and list(ds.descriptions.columns) == list(COLUMNS["descriptions"])


def test_in_memory_frames_without_provenance():
    items = pd.DataFrame({"item_id": ["a"], "title": ["A"], "domain": ["video"]})
    inter = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "zz"]})
    ds = validate(Dataset(name="mem", items=items, interactions=inter))
    assert len(ds.interactions) == 1
    assert ds.quarantine.iloc[0]["source_file"] == "<mem:interactions>" and ds.quarantine.iloc[0]["line"] == 0


def test_empty_frame_has_schema():
    for kind, cols in COLUMNS.items():
        frame = empty_frame(kind)
        assert list(frame.columns) == list(cols) and len(frame) == 0
    assert str(empty_frame("interactions")["timestamp"].dtype) == "Int64"


OUT_OF_RANGE = "timestamp out of range (not finite, or beyond int64 seconds)"


@pytest.mark.parametrize(("value", "reason"), [
    ("99999999999999999999", OUT_OF_RANGE), ("1e30", OUT_OF_RANGE), ("inf", OUT_OF_RANGE), ("-inf", OUT_OF_RANGE),
    ("-1e19", OUT_OF_RANGE), ("NaN", "not a unix timestamp or date"),
])
def test_one_bad_timestamp_is_one_quarantine_row(tmp_path, value, reason):
    inter = f"user_id,item_id,timestamp\nu1,i1,1700000000\nu1,i2,{value}\nu2,i1,1700000002\n"
    write_folder(tmp_path, **{"interactions.csv": inter, "descriptions.csv": None, "facts.csv": None})
    ds = folder.load(tmp_path, "ts")
    q = ds.quarantine[ds.quarantine["source_file"] == "interactions.csv"]
    assert list(zip(q["line"], q["field"], q["value"], q["reason"])) == [(3, "timestamp", value, reason)]
    # the rest of the file loads
    assert sorted(zip(ds.interactions["user_id"], ds.interactions["timestamp"])) == [("u1", 1700000000), ("u2", 1700000002)]


def test_huge_timestamp_in_memory_and_in_descriptions(tmp_path):
    items = pd.DataFrame({"item_id": ["a"], "title": ["A"], "domain": ["video"]})
    inter = pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "a"], "timestamp": [1e30, 5.0]})
    desc = pd.DataFrame({"user_id": ["u", "v"], "kind": ["tag", "tag"], "text": ["x", "y"], "timestamp": [float("inf"), 7]})
    ds = validate(Dataset(name="mem", items=items, interactions=inter, descriptions=desc))
    assert list(ds.interactions["timestamp"]) == [5] and list(ds.descriptions["timestamp"]) == [7]
    assert sorted(ds.quarantine["field"]) == ["timestamp", "timestamp"]
    assert str(empty_frame("descriptions")["timestamp"].dtype) == "Int64"


def test_parquet_datetimes_are_seconds_like_csv(tmp_path):
    pd.DataFrame({"item_id": ["i1", "i2"], "title": ["a", "b"], "domain": ["video", "audio"]}).to_parquet(tmp_path / "items.parquet")
    when = pd.to_datetime(["2024-03-01 00:00:00", "2024-03-01 00:00:07"])
    pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "timestamp": when}).to_parquet(tmp_path / "interactions.parquet")
    pq = folder.load(tmp_path, "pq").interactions.set_index("user_id")["timestamp"]
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "items.csv").write_text("item_id,title,domain\ni1,a,video\ni2,b,audio\n")
    (csv_dir / "interactions.csv").write_text("user_id,item_id,timestamp\nu1,i1,2024-03-01\nu2,i2,1709251207\n")
    csv = folder.load(csv_dir, "csv").interactions.set_index("user_id")["timestamp"]
    assert pq.to_dict() == csv.to_dict() == {"u1": 1709251200, "u2": 1709251207}
    # a zoned datetime is converted, not read as wall-clock time
    zoned = pd.Series(pd.to_datetime(["2024-03-01 08:00:00+08:00"]))
    inter = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": zoned})
    items = pd.DataFrame({"item_id": ["a"], "title": ["A"], "domain": ["video"]})
    assert validate(Dataset(name="z", items=items, interactions=inter)).interactions["timestamp"].iloc[0] == 1709251200
