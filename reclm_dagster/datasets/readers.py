"""File readers shared by the sources: every row keeps its file name and line.

Lines are 1-based with the header on line 1, as a text editor shows them, so a
quarantine record can be looked up by hand.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped); lines that are not valid UTF-8 are read as Latin-1.

    Latin-1 maps every byte, so the fallback never fails; several public datasets
    (HetRec tags, ml-100k, ml-1m) ship Latin-1 files next to UTF-8 ones, and
    HetRec MovieLens' tags.dat mixes both line by line, hence the per-line fallback.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    lines = []
    for raw in data.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode("latin-1"))
    return "\n".join(lines).removeprefix("\ufeff")


def first_line(path: Path) -> str:
    """The first line of a text file, decoded (used to recognise a layout by its header)."""
    with open(path, "rb") as fh:
        return decode(fh.readline(65536)).strip()


def with_provenance(df: pd.DataFrame, source: str, lines) -> pd.DataFrame:
    df["_source"] = source
    df["_line"] = np.asarray(lines, dtype="int64")
    df.attrs["source"] = source
    return df


def read_delimited(path: Path, sep: str = ",", quoting: int = csv.QUOTE_MINIMAL,
                   names: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a delimited text file as strings, with exact line numbers. Returns (rows, quarantine).

    Blank lines are skipped; a record with the wrong number of fields is
    quarantined instead of aborting the load; a record spanning several lines
    keeps the line it starts on. ``names`` is for files without a header row
    (ml-100k's u.data, u.item): the first record is then line 1.
    """
    path = Path(path)
    text = decode(path.read_bytes())
    if names is not None:  # a synthetic header keeps one code path; lines shift back by one below
        text = sep.join(names) + "\n" + text
    fast = _read_fast(text, sep, quoting)
    if fast is not None:
        df, lines = fast
        df, bad = with_provenance(df, path.name, lines), _bad_rows([])
    else:
        df, bad = _read_exact(text, path.name, sep, quoting)
    if names is not None:
        df["_line"] -= 1
        bad["line"] = bad["line"] - 1
    return df, bad


def split_dat_line(line: str, n_fields: int, free: int | None = None) -> list[str] | None:
    """Split one '::'-separated MovieLens record (ml-1m, ml-10m); None if it has the wrong shape.

    The field at index ``free`` (a title or tag) may itself contain '::' or end
    with ':', so the fields before it are split from the left and those after it
    from the right; the other fields are ids, numbers and genre lists.
    """
    if free is None:
        parts = line.split("::")
        return parts if len(parts) == n_fields else None
    head = line.split("::", free)
    if len(head) != free + 1:
        return None
    tail = head[-1].rsplit("::", n_fields - free - 1)
    if len(tail) != n_fields - free:
        return None
    return head[:-1] + tail


def read_dat(path: Path, names: list[str], free: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A headerless '::'-separated file line by line (movies.dat, tags.dat, users.dat); bad lines quarantined."""
    path = Path(path)
    rows, lines, bad = [], [], []
    for n, line in enumerate(decode(path.read_bytes()).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        rec = split_dat_line(line, len(names), free)
        if rec is None:
            bad.append((path.name, n, "*", line[:200], f"expected {len(names)} '::'-separated fields"))
            continue
        rows.append(rec)
        lines.append(n)
    df = pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame(columns=names, dtype=object)
    return with_provenance(df, path.name, lines), _bad_rows(bad)


def _read_fast(text: str, sep: str, quoting: int) -> tuple[pd.DataFrame, np.ndarray] | None:
    """pandas' C parser, used only when every line is provably one well-formed record.

    That holds when quotes cannot group text (QUOTE_NONE, or no quote character),
    there are no blank lines or stray CRs, no line has too many fields (pandas
    skips those, so the row count would drop) and the file's separator count is
    exactly header-count x lines (so none has too few). Otherwise return None and
    let the csv-module path find the faulty lines.
    """
    if quoting != csv.QUOTE_NONE and '"' in text:
        return None
    if text.count("\r") != text.count("\r\n"):
        return None
    body = text[:-1] if text.endswith("\n") else text
    if not body or _has_blank_line(body):
        return None
    n_lines = body.count("\n") + 1
    want = body.split("\n", 1)[0].count(sep)
    if body.count(sep) != want * n_lines:
        return None
    df = pd.read_csv(io.StringIO(text), sep=sep, quoting=quoting, dtype=str, keep_default_na=False,
                     na_filter=False, on_bad_lines="skip", engine="c")
    if len(df) != n_lines - 1:
        return None
    df.columns = [str(c).strip() for c in df.columns]
    return df, np.arange(2, n_lines + 1)


def _has_blank_line(body: str) -> bool:
    return ("\n\n" in body or "\n\r\n" in body or body.startswith(("\n", "\r\n"))
            or body.endswith(("\n", "\n\r")))


def _read_exact(text: str, source: str, sep: str, quoting: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The csv module, record by record: slower, but knows each record's first line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return pd.DataFrame(), _bad_rows([])
    rows, lines, bad = [], [], []
    last = reader.line_num
    for rec in reader:
        start, last = last + 1, reader.line_num
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue  # blank line
        if len(rec) != len(header):
            bad.append((source, start, "*", sep.join(rec)[:200], f"expected {len(header)} fields, found {len(rec)}"))
            continue
        rows.append(rec)
        lines.append(start)
    df = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header, dtype=object)
    return with_provenance(df, source, lines), _bad_rows(bad)


def _bad_rows(bad: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(bad, columns=["source_file", "line", "field", "value", "reason"])


def read_table(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A .csv/.tsv (strings) or .parquet file with provenance. Parquet 'lines' are 1-based row numbers."""
    path = Path(path)
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        return with_provenance(df, path.name, np.arange(1, len(df) + 1)), _bad_rows([])
    return read_delimited(path, sep="\t" if path.suffix == ".tsv" else ",")


def find_table(folder: Path, stem: str) -> Path | None:
    """folder/stem.csv, .tsv or .parquet, whichever exists first."""
    for suffix in TABLE_SUFFIXES:
        p = Path(folder) / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def numeric_extras(df: pd.DataFrame, schema_cols) -> pd.DataFrame:
    """Extra columns read as text become numbers when every non-blank value is one (e.g. price)."""
    for col in df.columns:
        if col in schema_cols or col.startswith("_") or not pd.api.types.is_object_dtype(df[col]):
            continue
        s = df[col].replace("", None)
        num = pd.to_numeric(s, errors="coerce")
        if s.notna().any() and num[s.notna()].notna().all():
            df[col] = num
    return df
