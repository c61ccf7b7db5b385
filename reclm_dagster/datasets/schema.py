"""The common schema every dataset source returns, and its validation.

Loaders build the five frames with two hidden provenance columns, ``_source``
(file name) and ``_line`` (1-based line in that file, header = line 1; 0 when a
row was generated rather than read), then call :func:`validate`. Validation
coerces dtypes, moves bad rows into ``quarantine`` (naming file, line, field and
reason) and drops the provenance columns.

Duplicate policy (documented here because every source relies on it):
- exact duplicate rows are dropped silently;
- several interactions for the same (user_id, item_id) collapse into one row
  with the **maximum** weight and the latest timestamp. Max rather than sum
  because weights are ratings in several sources and a sum would leave the
  rating scale; sources whose repeated rows are counts must sum before validating.
- a repeated item_id in ``items`` keeps its first row; the others are quarantined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DOMAINS = ("video", "audio", "product")
DESCRIPTION_KINDS = ("tag", "review", "request", "profile")
PROVENANCE = ("_source", "_line")

# Column -> dtype family: 'str', 'str?' (nullable string: None), 'float', 'float?', 'ts'.
COLUMNS: dict[str, dict[str, str]] = {
    "items": {"item_id": "str", "title": "str", "description": "str", "domain": "str", "language": "str"},
    "interactions": {"user_id": "str", "item_id": "str", "weight": "float", "timestamp": "ts"},
    "descriptions": {
        "description_id": "str", "user_id": "str", "item_id": "str?", "kind": "str",
        "text": "str", "rating": "float?", "timestamp": "ts",
    },
    "facts": {"item_id": "str", "relation": "str", "entity_type": "str", "entity": "str", "weight": "float", "source": "str"},
    "user_links": {"user_id": "str", "relation": "str", "other_user_id": "str"},
    "quarantine": {"source_file": "str", "line": "int", "field": "str", "value": "str", "reason": "str"},
}
# Columns a source must provide; the others get defaults (see _defaults).
REQUIRED: dict[str, tuple[str, ...]] = {
    "items": ("item_id", "title", "domain"),
    "interactions": ("user_id", "item_id"),
    "descriptions": ("user_id", "kind", "text"),
    "facts": ("item_id", "relation", "entity"),
    "user_links": ("user_id", "other_user_id"),
}
# Default entity_type for well-known relations when a facts file omits it.
ENTITY_TYPES = {
    "has_genre": "genre", "directed_by": "person", "starring": "person", "by_artist": "artist",
    "hosted_by": "person", "brand": "brand", "category": "category", "feature": "feature",
    "tagged_as": "tag", "produced_in": "country", "from_region": "region", "filmed_in": "location",
    "priced_at": "price_band",
}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class DatasetError(ValueError):
    """A dataset cannot be read at all (e.g. a required column is missing)."""


class DatasetNotFound(DatasetError, LookupError):
    """No dataset of that name in the data directory."""


def empty_frame(kind: str, provenance: bool = False) -> pd.DataFrame:
    """An empty frame of one kind with the schema's columns and dtypes."""
    cols = list(COLUMNS[kind]) + (list(PROVENANCE) if provenance else [])
    return _coerce_types(pd.DataFrame({c: pd.Series(dtype=object) for c in cols}), kind)


@dataclass
class Dataset:
    name: str
    items: pd.DataFrame = field(default_factory=lambda: empty_frame("items"))
    interactions: pd.DataFrame = field(default_factory=lambda: empty_frame("interactions"))
    descriptions: pd.DataFrame = field(default_factory=lambda: empty_frame("descriptions"))
    facts: pd.DataFrame = field(default_factory=lambda: empty_frame("facts"))
    user_links: pd.DataFrame = field(default_factory=lambda: empty_frame("user_links"))
    quarantine: pd.DataFrame = field(default_factory=lambda: empty_frame("quarantine"))

    def domain_summary(self) -> dict[str, int]:
        """Flat counts (ints only, so they can be logged as MLflow metrics as they are).

        n_users counts users that appear in interactions or descriptions.
        """
        users = pd.concat([self.interactions["user_id"], self.descriptions["user_id"]]).nunique()
        out = {
            "n_items": len(self.items),
            "n_users": int(users),
            "n_interactions": len(self.interactions),
            "n_descriptions": len(self.descriptions),
            "n_facts": len(self.facts),
            "n_user_links": len(self.user_links),
            "n_quarantined": len(self.quarantine),
        }
        for d in DOMAINS:
            out[f"n_items_{d}"] = int((self.items["domain"] == d).sum())
        return out


def guess_language(text: str) -> str:
    """'zh' when the text has CJK characters, else 'en' (only used when a source gives none)."""
    return "zh" if _CJK.search(text or "") else "en"


# ---------------------------------------------------------------- coercion helpers

def _as_str(s: pd.Series) -> pd.Series:
    """Plain Python strings (object dtype), stripped; missing -> ''.

    Integral floats lose their '.0' (ids that were read as numbers). The strip runs
    in pyarrow because this is the hot spot of validating millions of rows.
    """
    if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
        s = s.astype("Int64")
    if not len(s):
        return s.astype(object)
    return s.astype("string[pyarrow]").str.strip().fillna("").astype(object)


def _coerce_types(df: pd.DataFrame, kind: str, strings: bool = True) -> pd.DataFrame:
    """Schema dtypes; strings=False when string columns were already cleaned by _prepare."""
    for col, typ in COLUMNS[kind].items():
        if typ == "str":
            if strings:
                df[col] = _as_str(df[col])
        elif typ == "str?":
            s = _as_str(df[col]) if strings else df[col]
            df[col] = s.where(s != "", None).astype(object)
        elif typ in ("float", "float?"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif typ == "ts":  # unix seconds; a value that is no timestamp becomes <NA>, never an error
            df[col] = _to_timestamp(df[col])[0]
        elif typ == "int":
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    if "_line" in df:
        df["_line"] = pd.to_numeric(df["_line"], errors="coerce").fillna(0).astype("int64")
    if "_source" in df and strings:
        df["_source"] = _as_str(df["_source"])
    return df


_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_TS_LIMIT = 2.0**63  # int64 seconds; beyond (or inf) a value cannot be stored, let alone be a date


def _to_timestamp(s: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Unix seconds (Int64) from numbers, date strings or datetimes.

    Also two masks: values that are no timestamp at all, and numbers that are not finite or
    do not fit in int64 seconds (1e30, inf); both are <NA> in the result, for quarantine.
    """
    if getattr(s.dtype, "kind", "") == "M":
        # Parquet datetimes (numpy, tz-aware or Arrow): seconds like CSV input, never the
        # nanoseconds to_numeric would give; a naive datetime is read as UTC.
        num = (pd.to_datetime(s, utc=True) - _EPOCH) // pd.Timedelta(seconds=1)
        return num.astype("Int64"), pd.Series(False, index=s.index), pd.Series(False, index=s.index)
    num = pd.to_numeric(s, errors="coerce").astype("float64")
    blank = s.isna() | (_as_str(s) == "") if not pd.api.types.is_numeric_dtype(s) else s.isna()
    todo = num.isna() & ~blank
    if todo.any():  # ISO dates such as 2024-03-01 are accepted too
        dt = pd.to_datetime(s[todo], errors="coerce", utc=True, format="mixed")
        num[todo] = (dt - _EPOCH).dt.total_seconds()
    bad = num.isna() & ~blank
    wild = num.notna() & ~(num.abs() < _TS_LIMIT)
    return np.floor(num.mask(wild)).astype("Int64"), bad, wild


# ---------------------------------------------------------------- validation

class _Quarantine:
    """Collects rejected rows as quarantine records."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def take(self, df: pd.DataFrame, bad: pd.Series, field: str, reason: str, value: pd.Series | None = None) -> pd.DataFrame:
        bad = bad.fillna(False).astype(bool)
        if not bad.any():
            return df  # no copy: this runs a dozen times on frames of millions of rows
        vals = (df[field] if value is None else value.reindex(df.index))[bad]
        self.parts.append(pd.DataFrame({
            "source_file": df.loc[bad, "_source"].to_numpy(),
            "line": df.loc[bad, "_line"].to_numpy(),
            "field": field,
            "value": _as_str(vals.astype(object)).to_numpy(),
            "reason": reason,
        }))
        return df.loc[~bad]

    def frame(self, previous: pd.DataFrame | None) -> pd.DataFrame:
        parts = [p for p in [previous, *self.parts] if p is not None and len(p)]
        out = pd.concat(parts, ignore_index=True) if parts else empty_frame("quarantine")
        return _coerce_types(out[list(COLUMNS["quarantine"])].copy(), "quarantine")


def _prepare(df: pd.DataFrame | None, kind: str, dataset: str) -> pd.DataFrame:
    """Check required columns, add provenance and optional columns with defaults."""
    if df is None:
        return empty_frame(kind, provenance=True)
    df = df.copy()
    if "_source" in df and len(df):
        source = str(df["_source"].iloc[0])
    else:  # an empty file still knows its name (readers.with_provenance sets it)
        source = df.attrs.get("source") or f"<{dataset}:{kind}>"
    missing = [c for c in REQUIRED[kind] if c not in df.columns]
    if missing:
        found = ", ".join(c for c in df.columns if c not in PROVENANCE) or "none"
        raise DatasetError(
            f"{source}: required column {missing[0]!r} is missing from {kind} "
            f"(required: {', '.join(REQUIRED[kind])}; found: {found})"
        )
    if "_source" not in df:
        df["_source"] = source
    if "_line" not in df:
        df["_line"] = 0
    df = df.reset_index(drop=True)
    if kind == "items":
        if "description" not in df:
            df["description"] = ""
        if "language" not in df:
            df["language"] = ""
    elif kind == "interactions":
        if "weight" not in df:
            df["weight"] = 1.0
        if "timestamp" not in df:
            df["timestamp"] = pd.NA
    elif kind == "descriptions":
        for col in ("item_id", "rating", "timestamp"):
            if col not in df:
                df[col] = None
        if "description_id" not in df:
            df["description_id"] = _default_ids(df)
    elif kind == "facts":
        if "entity_type" not in df:
            df["entity_type"] = ""
        if "weight" not in df:
            df["weight"] = 1.0
        if "source" not in df:
            df["source"] = ""
    elif kind == "user_links" and "relation" not in df:
        df["relation"] = "friend_of"
    # clean every string column once; the checks below compare against ''
    for col, typ in COLUMNS[kind].items():
        if typ in ("str", "str?"):
            df[col] = _as_str(df[col])
    df["_source"] = _as_str(df["_source"])
    return df


def _default_ids(df: pd.DataFrame) -> pd.Series:
    lines = df["_line"].astype("int64").astype(str)
    ids = df["_source"].astype(str) + ":" + lines
    # generated rows (line 0) or repeated lines get their row number instead
    dup = ids.duplicated(keep=False) | (df["_line"].astype("int64") == 0)
    return ids.where(~dup, df["_source"].astype(str) + "#" + pd.Series(range(len(df)), index=df.index).astype(str))


def _check_ids(q: _Quarantine, df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
    for col in cols:
        df = q.take(df, df[col] == "", col, "missing id")
    return df


def _check_weight(q: _Quarantine, df: pd.DataFrame) -> pd.DataFrame:
    raw = df["weight"]
    w = pd.to_numeric(raw, errors="coerce").astype("float64")
    df = df.assign(weight=w)
    df = q.take(df, w.isna() | ~np.isfinite(w), "weight", "not a number", value=raw)
    return q.take(df, df["weight"] <= 0, "weight", "weight must be > 0", value=raw)


def _check_timestamp(q: _Quarantine, df: pd.DataFrame) -> pd.DataFrame:
    raw = df["timestamp"]
    ts, bad, wild = _to_timestamp(raw)
    df = q.take(df.assign(timestamp=ts), bad, "timestamp", "not a unix timestamp or date", value=raw)
    return q.take(df, wild, "timestamp", "timestamp out of range (not finite, or beyond int64 seconds)", value=raw)


def validate(ds: Dataset) -> Dataset:
    """Coerce dtypes, quarantine bad rows, drop duplicates and provenance columns."""
    q = _Quarantine()
    name = ds.name

    items = _prepare(ds.items, "items", name)
    items = _check_ids(q, items, ("item_id",))
    items = _coerce_types(items, "items", strings=False)
    items = q.take(items, items["item_id"].duplicated(), "item_id", "duplicate item_id")
    items = q.take(items, items["title"] == "", "title", "empty text")
    items = q.take(items, ~items["domain"].isin(DOMAINS), "domain", f"domain must be one of {', '.join(DOMAINS)}")
    no_lang = items["language"] == ""
    items.loc[no_lang, "language"] = (items.loc[no_lang, "title"] + " " + items.loc[no_lang, "description"]).map(guess_language)
    known = pd.Index(items["item_id"])

    inter = _prepare(ds.interactions, "interactions", name)
    inter = _check_ids(q, inter, ("user_id", "item_id"))
    inter = _check_weight(q, inter)
    inter = _check_timestamp(q, inter)
    inter = _coerce_types(inter, "interactions", strings=False)
    inter = q.take(inter, ~inter["item_id"].isin(known), "item_id", "unknown item")
    inter = _collapse_interactions(inter)

    desc = _prepare(ds.descriptions, "descriptions", name)
    desc = _check_ids(q, desc, ("user_id",))
    desc = _check_timestamp(q, desc)
    rating = pd.to_numeric(desc["rating"], errors="coerce")
    desc = q.take(desc, rating.isna() & (_as_str(desc["rating"].astype(object)) != ""), "rating", "not a number")
    desc = _coerce_types(desc, "descriptions", strings=False)
    desc = q.take(desc, desc["text"] == "", "text", "empty text")
    desc = q.take(desc, ~desc["kind"].isin(DESCRIPTION_KINDS), "kind", f"kind must be one of {', '.join(DESCRIPTION_KINDS)}")
    desc = q.take(desc, desc["item_id"].notna() & ~desc["item_id"].isin(known), "item_id", "unknown item")
    desc = q.take(desc, desc["description_id"].duplicated(), "description_id", "duplicate description_id")
    desc = desc.drop_duplicates(subset=[c for c in COLUMNS["descriptions"] if c != "description_id"])

    facts = _prepare(ds.facts, "facts", name)
    facts = _check_ids(q, facts, ("item_id",))
    facts = _check_weight(q, facts)
    facts = _coerce_types(facts, "facts", strings=False)
    facts = q.take(facts, facts["relation"] == "", "relation", "empty text")
    facts = q.take(facts, facts["entity"] == "", "entity", "empty text")
    facts = q.take(facts, ~facts["item_id"].isin(known), "item_id", "unknown item")
    no_type = facts["entity_type"] == ""
    facts.loc[no_type, "entity_type"] = facts.loc[no_type, "relation"].map(ENTITY_TYPES).fillna("entity")
    no_src = facts["source"] == ""
    facts.loc[no_src, "source"] = facts.loc[no_src, "_source"] + ":" + facts.loc[no_src, "_line"].astype(str)
    facts = facts.drop_duplicates(subset=["item_id", "relation", "entity_type", "entity"])

    links = _prepare(ds.user_links, "user_links", name)
    links = _check_ids(q, links, ("user_id", "other_user_id"))
    links = _coerce_types(links, "user_links", strings=False)
    links = links[links["user_id"] != links["other_user_id"]].drop_duplicates(subset=list(COLUMNS["user_links"]))

    quarantine = q.frame(ds.quarantine if ds.quarantine is not None and len(ds.quarantine) else None)
    return Dataset(
        name=name,
        items=_finish(items, "items", keep_extra=True),
        interactions=_finish(inter, "interactions"),
        descriptions=_finish(desc, "descriptions"),
        facts=_finish(facts, "facts"),
        user_links=_finish(links, "user_links"),
        quarantine=quarantine,
    )


def _collapse_interactions(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (user_id, item_id): max weight, latest timestamp (see module docstring)."""
    df = df.drop_duplicates(subset=list(COLUMNS["interactions"]))
    if not df.duplicated(subset=["user_id", "item_id"]).any():
        return df
    agg = df.groupby(["user_id", "item_id"], sort=False, as_index=False).agg(
        weight=("weight", "max"), timestamp=("timestamp", "max"), _source=("_source", "first"), _line=("_line", "first")
    )
    return agg


def _finish(df: pd.DataFrame, kind: str, keep_extra: bool = False) -> pd.DataFrame:
    """Schema columns in order (plus extra columns for items), no provenance, fresh index."""
    cols = list(COLUMNS[kind])
    if keep_extra:
        cols += [c for c in df.columns if c not in cols and c not in PROVENANCE]
    return df[cols].reset_index(drop=True)
