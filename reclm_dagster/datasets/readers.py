"""File readers shared by the sources: every row keeps its file name and line.

Lines are 1-based with the header on line 1, as a text editor shows them, so a
quarantine record can be looked up by hand.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import DatasetError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
NUL_REASON = "NUL byte in field (file corruption: the row is not loaded rather than loaded with an altered value)"
# Signatures of files that are no text table, so that a zip saved as .csv is named as one
# instead of being parsed into binary garbage.
_MAGIC = {
    b"PK\x03\x04": "a zip archive (or .xlsx)", b"\x1f\x8b": "a gzip file", b"BZh": "a bzip2 file",
    b"\xfd7zXZ\x00": "an xz file", b"7z\xbc\xaf": "a 7z archive", b"PAR1": "a Parquet file",
    b"SQLite format 3\x00": "an SQLite database", b"%PDF": "a PDF", b"\x89PNG": "a PNG image",
    b"\xff\xfe": "UTF-16 text", b"\xfe\xff": "UTF-16 text",
}
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f")


def _single_byte(b: int) -> str:
    # Windows-1252 where it defines the byte (0x80-0x9F: €, curly quotes, dashes, which Latin-1
    # turns into invisible C1 controls), Latin-1 for the five bytes it leaves undefined.
    try:
        return bytes([b]).decode("cp1252")
    except UnicodeDecodeError:
        return bytes([b]).decode("latin-1")


def _latin1_bytes(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    return "".join(_single_byte(b) for b in err.object[err.start:err.end]), err.end


codecs.register_error("reclm-latin1", _latin1_bytes)


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped); only the bytes that are not valid UTF-8 are read as Windows-1252
    (Latin-1 for the five bytes it leaves undefined).

    The fallback maps every byte, so it never fails; several public datasets
    (HetRec tags, ml-100k, ml-1m) ship Latin-1 files next to UTF-8 ones, and HetRec
    MovieLens' tags.dat mixes both line by line. The fallback is per invalid byte, not
    per line: one stray byte must not turn the valid "Café 日本" beside it into mojibake.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="reclm-latin1").removeprefix("\ufeff")


def read_text(path: Path) -> str:
    """A text file decoded as above; DatasetError (one line, the file's name) when it is binary."""
    data = Path(path).read_bytes()
    head = data[:8192]
    what = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)
    # A few NULs are corrupt rows (quarantined one by one); this many control bytes is no text.
    n_control = sum(head.count(b) for b in _CONTROL)
    if what is None and n_control >= 16 and n_control > len(head) // 20:
        what = "binary data"
    if what is not None:
        raise DatasetError(f"{Path(path).name}: not a text table, the file is {what}; save it as a UTF-8 CSV")
    return decode(data)


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
    text = read_text(path)
    if names is None and not text.strip():
        raise DatasetError(f"{path.name}: the file is empty (not even a header line)")
    if names is not None:  # a synthetic header keeps one code path; lines shift back by one below
        text = sep.join(names) + "\n" + text
    # pandas' C parser cuts a field at a NUL byte ('u00\\0x' -> 'u00'), so NULs take the exact path
    fast = _read_fast(text, path.name, sep, quoting) if "\0" not in text else None
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
    for n, line in enumerate(read_text(path).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if "\0" in line:
            bad.append((path.name, n, "*", _shown(line), NUL_REASON))
            continue
        rec = split_dat_line(line, len(names), free)
        if rec is None:
            bad.append((path.name, n, "*", line[:200], f"expected {len(names)} '::'-separated fields"))
            continue
        rows.append(rec)
        lines.append(n)
    df = pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame(columns=names, dtype=object)
    return with_provenance(df, path.name, lines), _bad_rows(bad)


def _read_fast(text: str, source: str, sep: str, quoting: int) -> tuple[pd.DataFrame, np.ndarray] | None:
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
    header = body.split("\n", 1)[0]
    _check_header([h.strip() for h in header.rstrip("\r").split(sep)], source)
    want = header.count(sep)
    if body.count(sep) != want * n_lines:
        return None
    df = pd.read_csv(io.StringIO(text), sep=sep, quoting=quoting, dtype=str, keep_default_na=False,
                     na_filter=False, on_bad_lines="skip", engine="c")
    if len(df) != n_lines - 1:
        return None
    df.columns = [str(c).strip() for c in df.columns]
    return df, np.arange(2, n_lines + 1)


def _check_header(header: list[str], source: str) -> None:
    """Two columns of one name: pandas would rename one ('weight.1') and drop it unseen."""
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise DatasetError(f"{source} line 1: column {name!r} appears twice in the header; rename or remove one")
        seen.add(name)


def _has_blank_line(body: str) -> bool:
    return ("\n\n" in body or "\n\r\n" in body or body.startswith(("\n", "\r\n"))
            or body.endswith(("\n", "\n\r")))


def _read_exact(text: str, source: str, sep: str, quoting: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The csv module, record by record: slower, but knows each record's first line.

    A row with a NUL byte in any field is quarantined: ids with control characters are
    almost always corruption, and keeping them would still let 'u00\\0' and 'u00' look
    alike wherever a C string ends at the NUL (DuckDB, the CLI, a terminal).
    """
    # No field can be longer than the file: a 1 MB review is text, not the csv module's
    # default 131,072-character limit.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    text, stray_cr = _hide_stray_cr(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    try:
        header = [h.strip() for h in next(reader)]
        _check_header(header, source)
        rows, lines, bad = [], [], []
        last = reader.line_num
        for rec in reader:
            start, last = last + 1, reader.line_num
            if stray_cr:
                rec = [v.replace(stray_cr, "\r") for v in rec]
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # blank line
            if len(rec) != len(header):
                bad.append((source, start, "*", sep.join(rec)[:200], f"expected {len(header)} fields, found {len(rec)}"))
            elif (nul := next((i for i, v in enumerate(rec) if "\0" in v), None)) is not None:
                bad.append((source, start, header[nul], _shown(rec[nul]), NUL_REASON))
            else:
                rows.append(rec)
                lines.append(start)
    except StopIteration:
        return pd.DataFrame(), _bad_rows([])
    except csv.Error as exc:
        raise DatasetError(f"{source} line {reader.line_num}: cannot be read as {sep!r}-separated text ({exc})") from None
    df = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header, dtype=object)
    return with_provenance(df, source, lines), _bad_rows(bad)


def _hide_stray_cr(text: str) -> tuple[str, str]:
    """In a file whose records end in LF or CRLF, a lone CR is a character of its field.

    The csv module would end the record there and read the rest of the line as a new
    record ('0\\r#1,i1' -> a row '0' and a row '#1,i1': a user invented from a fragment).
    The CR is swapped for a character absent from the file while parsing, then put back.
    A file that uses lone CRs as its only line ends (classic Mac) is left as it is.
    """
    if "\n" not in text or text.count("\r") == text.count("\r\n"):
        return text, ""
    sentinel = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text)
    return re.sub("\r(?!\n)", sentinel, text), sentinel


def _shown(value: str) -> str:
    """A value as a quarantine row shows it: NULs visible, at most 200 characters."""
    return value.replace("\0", "\\0")[:200]


def _bad_rows(bad: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(bad, columns=["source_file", "line", "field", "value", "reason"])


def read_table(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A .csv/.tsv (strings) or .parquet file with provenance. Parquet 'lines' are 1-based row numbers."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _read_parquet(path)
    return read_delimited(path, sep="\t" if path.suffix == ".tsv" else ",")


def _read_parquet(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows 1..n; rows with a NUL in a string column are quarantined, as in text files."""
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a file that is no Parquet
        raise DatasetError(f"{path.name}: not a readable Parquet file ({type(exc).__name__}: {str(exc)[:200]})") from None
    df = with_provenance(df, path.name, np.arange(1, len(df) + 1))
    bad = []
    keep = pd.Series(True, index=df.index)
    for col in df.columns.drop(["_source", "_line"]):
        if pd.api.types.is_object_dtype(df[col]) or pd.api.types.is_string_dtype(df[col]):
            hit = df[col].astype(object).map(lambda v: isinstance(v, str) and "\0" in v).astype(bool) & keep
            bad += [(path.name, int(n), str(col), _shown(v), NUL_REASON) for n, v in zip(df.loc[hit, "_line"], df.loc[hit, col])]
            keep &= ~hit
    return (df if keep.all() else df[keep]), _bad_rows(bad)


def table_paths(folder: Path, stem: str) -> list[Path]:
    """Every folder/stem.csv, .tsv and .parquet that exists."""
    return [p for p in (Path(folder) / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES) if p.is_file()]


def find_table(folder: Path, stem: str) -> Path | None:
    """folder/stem.csv, .tsv or .parquet; DatasetError when several exist (which one is meant?)."""
    found = table_paths(folder, stem)
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise DatasetError(f"{folder}: {names} are both present, so the {stem} table is ambiguous; keep one and remove or rename the other")
    return found[0] if found else None


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


def scan_lines(path: Path) -> tuple[int, bool]:
    """``(number of lines, whether any NUL byte)`` in one pass over the file."""
    n, last, nul = 0, b"", False
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            n += chunk.count(b"\n")
            nul = nul or b"\0" in chunk
            last = chunk[-1:]
    return n + (1 if last and last != b"\n" else 0), nul
