"""Generated hostile input (hypothesis): every row is loaded unchanged or quarantined, never lost.

Interactions files are generated with garbage in every field — control characters and NUL,
quotes, commas and newlines inside quoted fields, path characters, leading zeros, NaN / inf /
negative / huge weights, impossible timestamps, unknown items — written in UTF-8 or Latin-1,
with or without a BOM, LF or CRLF. For each file the loader either refuses it with one
DatasetError naming the file, or accounts for every data row: it is among the interactions
with exactly its id, or it is a quarantine row naming file, line and field.
"""

from __future__ import annotations

import csv
import io
import math

from hypothesis import HealthCheck, example, given, settings, strategies as st

from reclm_dagster.datasets import DatasetError, folder

ITEMS = "item_id,title,domain\ni1,One,video\ni2,Two,audio\n007,Bond,video\n"

clean_id = st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True)
hostile_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12)
weight = st.one_of(
    st.floats(min_value=0.001, max_value=1e6).map(repr),  # good
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400", "", "abc", "1,5", " 3 "]),
)
timestamp = st.one_of(
    st.integers(min_value=0, max_value=2_000_000_000).map(str),
    st.sampled_from(["", "99999999999999999999", "1e30", "-1e19", "2019-01-01 08:00:00", "not a time", "NaN"]),
)
item = st.one_of(st.sampled_from(["i1", "i2", "007", "7", "i3", "../../x", "i1\x00"]), hostile_text)
row = st.tuples(st.one_of(clean_id, hostile_text), item, weight, timestamp)


def _is_good(user: str, item_id: str, w: str, ts: str) -> bool:
    """A row the schema must accept as it is."""
    try:
        value = float(w)
    except ValueError:
        return False
    ok_ts = ts == "" or (ts.isdigit() and int(ts) < 2**62)
    printable = user.strip() != "" and user == user.strip() and user.isprintable()
    return printable and item_id in {"i1", "i2", "007"} and math.isfinite(value) and value > 0 and ok_ts


def _csv(rows, encoding: str, bom: bool, crlf: bool) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    w.writerow(["user_id", "item_id", "weight", "timestamp"])
    for k, (user, item_id, wt, ts) in enumerate(rows):
        w.writerow([f"{user}#{k}" if user else "", item_id, wt, ts])  # #k: every row its own id
    text = ("\ufeff" if bom else "") + buf.getvalue()
    return text.encode(encoding, errors="replace")


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(row, min_size=1, max_size=12), encoding=st.sampled_from(["utf-8", "latin-1"]),
       bom=st.booleans(), crlf=st.booleans())
# Found by an exploring run: a lone CR in an unquoted id once split one record into two.
@example(rows=[("", "i1", "1.0", "0"), ("0\r", "i1", "1.0", "0")], encoding="utf-8", bom=False, crlf=False)
@example(rows=[("u\r", "i1", "1.0", "0"), ("v", "i2", "2", "")], encoding="utf-8", bom=False, crlf=True)
def test_every_generated_row_is_kept_or_quarantined(tmp_path_factory, rows, encoding, bom, crlf):
    path = tmp_path_factory.mktemp("gen")
    (path / "items.csv").write_text(ITEMS)
    data = _csv(rows, encoding, bom, crlf)
    (path / "interactions.csv").write_bytes(data)
    try:
        ds = folder.load(path)
    except DatasetError as e:  # refused whole: one line, naming the file
        assert "\n" not in str(e).strip() and "interactions" in str(e)
        return
    q = ds.quarantine[ds.quarantine["source_file"] == "interactions.csv"]
    assert len(ds.interactions) + q["line"].nunique() == len(rows), "a row was lost or counted twice"
    assert q["field"].astype(str).str.len().gt(0).all() and q["reason"].astype(str).str.len().gt(0).all()
    kept = set(ds.interactions["user_id"])
    for k, (user, item_id, w, ts) in enumerate(rows):
        representable = f"{user}#{k}".encode(encoding, errors="replace").decode(encoding) == f"{user}#{k}"
        if representable and user and _is_good(f"{user}#{k}", item_id, w, ts):
            assert f"{user}#{k}" in kept, f"a valid row was lost: {(user, item_id, w, ts)}"
