"""Files that used to be read wrongly without a word (issue 14, defect 5 and the unreadable
cases of 7): NUL bytes, a stray byte beside valid UTF-8, two files for one table, a field
longer than the csv module's default limit, binary files posing as CSV.

Each case ends in a clear error naming the file, or in quarantine rows naming file, line and
field; every other row is loaded unchanged (counted)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from reclm_dagster.datasets import DatasetError, available_datasets, folder, load_dataset
from reclm_dagster.datasets.readers import read_dat

ITEMS = "item_id,title,domain\ni1,One,video\ni2,Two,audio\ni9,Nine,video\n"


def write(tmp_path: Path, **files: str | bytes) -> Path:
    base = {"items.csv": ITEMS, "interactions.csv": "user_id,item_id\nu1,i1\n"}
    base.update(files)
    for name, content in base.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (tmp_path / name).write_bytes(data)
    return tmp_path


NUL = "NUL byte"


def reason(text: str) -> str:
    return NUL if text.startswith(NUL) else text


def quarantined(ds) -> set[tuple]:
    return {(r.source_file, r.line, r.field, reason(r.reason)) for r in ds.quarantine.itertuples()}


# ---------------------------------------------------------------- NUL bytes

def test_nul_bytes_quarantine_the_row_never_truncate_the_id(tmp_path):
    # Before: pandas cut both ids at the NUL, so u00\0 and u00\0x became one user 'u00'.
    inter = b"user_id,item_id,weight\nu00\x00,i1,1\nu00\x00x,i2,2\nu00,i1,3\nu01,i9\x00,1\nu02,i2,1\n"
    ds = folder.load(write(tmp_path, **{"interactions.csv": inter}))
    assert quarantined(ds) == {
        ("interactions.csv", 2, "user_id", NUL),
        ("interactions.csv", 3, "user_id", NUL),
        ("interactions.csv", 5, "item_id", NUL),
    }
    assert set(ds.quarantine["value"]) == {"u00\\0", "u00\\0x", "i9\\0"}  # visible, not a C-string end
    rows = ds.interactions.set_index("user_id")["weight"].to_dict()
    assert rows == {"u00": 3.0, "u02": 1.0}  # the two good rows, 'u00' not merged with anything
    assert len(ds.interactions) + len(ds.quarantine) == 5


def test_nul_byte_in_a_quoted_field_and_in_parquet(tmp_path):
    inter = b'user_id,item_id\n"u\x00",i1\n"u7",i2\n'
    pd.DataFrame({"item_id": ["i1", "i2\x00"], "title": ["A", "B"], "domain": ["video", "audio"]}).to_parquet(tmp_path / "items.parquet")
    (tmp_path / "interactions.csv").write_bytes(inter)
    ds = folder.load(tmp_path)
    assert quarantined(ds) == {
        ("interactions.csv", 2, "user_id", NUL),
        ("items.parquet", 2, "item_id", NUL),
        ("interactions.csv", 3, "item_id", "unknown item"),  # i2 was the quarantined 'i2\0'
    }
    assert list(ds.items["item_id"]) == ["i1"] and ds.interactions.empty


def test_nul_byte_in_a_dat_line(tmp_path):
    path = tmp_path / "movies.dat"
    path.write_bytes(b"1::Toy Story (1995)::Animation\n2\x00::Jumanji (1995)::Adventure\n")
    rows, bad = read_dat(path, ["item_id", "title", "genres"], free=1)
    assert list(rows["item_id"]) == ["1"]
    assert [(n, reason(r)) for n, r in zip(bad["line"], bad["reason"])] == [(2, NUL)]


# ---------------------------------------------------------------- encodings

def test_a_stray_byte_does_not_turn_valid_utf8_into_mojibake(tmp_path):
    # Before: the whole line fell back to Latin-1 ('CafÃ© æ\x97¥æ\x9c¬').
    items = "item_id,title,domain\ni1,Café 日本 ".encode() + b"\xff,video\n" + "i2,Crème,audio\n".encode()
    ds = folder.load(write(tmp_path, **{"items.csv": items}))
    titles = ds.items.set_index("item_id")["title"]
    assert titles["i1"].startswith("Café 日本") and titles["i2"] == "Crème"


def test_latin1_lines_still_read_as_latin1(tmp_path):
    items = b"item_id,title,domain\ni1,Les Mis\xe9rables,video\n" + "i2,Amélie,video\n".encode()
    ds = folder.load(write(tmp_path, **{"items.csv": items}))
    assert list(ds.items["title"]) == ["Les Misérables", "Amélie"]


# ---------------------------------------------------------------- which file, which format

def test_two_files_for_one_table_are_refused_by_name(tmp_path):
    write(tmp_path)
    pd.DataFrame({"item_id": ["p1"], "title": ["P"], "domain": ["video"]}).to_parquet(tmp_path / "items.parquet")
    with pytest.raises(DatasetError, match=r"items\.csv and items\.parquet .*ambiguous"):
        load_dataset(tmp_path.name, tmp_path.parent)
    assert tmp_path.name in available_datasets(tmp_path.parent)  # listing still works


def test_a_field_over_the_csv_default_limit_is_kept(tmp_path):
    review = "long " * 220_000  # 1.1 MB of text, a legitimate review
    text = f'user_id,item_id,kind,text\nu1,i1,review,"{review}"\nu2,i2,tag,"short, quoted"\n'
    ds = folder.load(write(tmp_path, **{"descriptions.csv": text}))
    assert ds.quarantine.empty
    assert ds.descriptions.set_index("user_id")["text"].to_dict() == {"u1": review.strip(), "u2": "short, quoted"}


@pytest.mark.parametrize("kind", ["zip", "random", "parquet-as-csv", "csv-as-parquet"])
def test_binary_files_posing_as_tables_give_one_line_naming_the_file(tmp_path, kind):
    write(tmp_path)
    target = tmp_path / "interactions.csv"
    if kind == "zip":
        with zipfile.ZipFile(target, "w") as z:
            z.writestr("interactions.csv", "user_id,item_id\n" + "u1,i1\n" * 500)
    elif kind == "random":
        target.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(20_000)))
    elif kind == "parquet-as-csv":
        pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"]}).to_parquet(target)
    else:
        target.unlink()
        target = tmp_path / "interactions.parquet"
        target.write_text("user_id,item_id\nu1,i1\n")
    with pytest.raises(DatasetError) as err:
        folder.load(tmp_path)
    message = str(err.value)
    assert message.startswith(target.name) and "\n" not in message
    assert "not a text table" in message or "not a readable Parquet file" in message  # what it is, not its bytes
    assert message.isprintable() and len(message) < 400


@pytest.mark.parametrize("header", ["user_id,item_id,weight,weight", '"user_id",item_id,weight,weight'])
def test_a_column_named_twice_is_an_error_not_a_silent_rename(tmp_path, header):
    # Before: pandas kept the first 'weight' and renamed the second 'weight.1' unseen (or,
    # on the csv-module path, validate() raised a TypeError naming no file).
    write(tmp_path, **{"interactions.csv": f"{header}\nu1,i1,1,5\n"})
    with pytest.raises(DatasetError, match=r"^interactions\.csv line 1: column 'weight' appears twice"):
        folder.load(tmp_path)


def test_nul_bytes_in_movielens_ratings_are_quarantined_not_truncated(tmp_path):
    """The fast numeric readers end a field at a NUL ('1\\0' read as user 1): such files go row by row."""
    from reclm_dagster.datasets import movielens, movielens_dat

    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "movies.csv").write_text("movieId,title,genres\n1,A (2001),Drama\n2,B (2002),Drama\n")
    (csv_dir / "ratings.csv").write_bytes(b"userId,movieId,rating,timestamp\n1\x00,1,4,100\n1,2,3,101\n2,1,5,102\n")
    ds = movielens.load(csv_dir, "csv", hetrec_dir=False)
    assert sorted(zip(ds.interactions["user_id"], ds.interactions["item_id"])) == [("1", "2"), ("2", "1")]
    assert set(zip(ds.quarantine["source_file"], ds.quarantine["line"])) == {("ratings.csv", 2)}

    dat_dir = tmp_path / "dat"
    dat_dir.mkdir()
    (dat_dir / "movies.dat").write_text("1::A (2001)::Drama\n2::B (2002)::Drama\n")
    (dat_dir / "ratings.dat").write_bytes(b"1\x00::1::4::100\n1::2::3::101\n2::1::5::102\n")
    ds = movielens_dat.load_dat(dat_dir, "dat")
    assert sorted(zip(ds.interactions["user_id"], ds.interactions["item_id"])) == [("1", "2"), ("2", "1")]
    assert set(zip(ds.quarantine["source_file"], ds.quarantine["line"])) == {("ratings.dat", 1)}
