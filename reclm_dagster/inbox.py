"""New interactions and descriptions dropped into ``$RECLM_HOME/inbox/<dataset>/``, appended
to the dataset's stored tables. No Dagster here: ``defs/sensors.py`` drives it.

Accepted files (one table per file, in reclm's schema — ``datasets/README.md``):

| file name | required columns | optional |
| --- | --- | --- |
| ``interactions*.csv`` / ``.parquet`` | user_id, item_id, weight | timestamp |
| ``descriptions*.csv`` / ``.parquet`` | description_id, user_id, item_id (may be empty), kind, text | rating, timestamp |

Write a file under another name (``x.csv.part``) and rename it when complete: only the
names above are picked up, so a half-written file is never read.

A file is all or nothing. Every row is checked with the schema's own ``validate`` (ids,
numbers, timestamps, kinds, known items) plus two inbox rules (a description_id must be
given and must not already be stored). Any bad row rejects the whole file and nothing
stored changes; otherwise its rows are appended in ONE DuckDB transaction, together with a
row in ``main.inbox_ledger`` (dataset, sha256). The ledger commits with the data, so a
crash between the commit and the file's move (or the sensor cursor's update) can never
make a file count twice. An interaction for an already-stored (user, item) follows the
schema's duplicate rule: one row, maximum weight, latest timestamp.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from reclm_dagster import settings, store
from reclm_dagster.datasets.readers import read_table
from reclm_dagster.datasets.schema import COLUMNS, Dataset, validate

REQUIRED = {
    "interactions": ("user_id", "item_id", "weight"),
    "descriptions": ("description_id", "user_id", "item_id", "kind", "text"),
}
_NAME = re.compile(r"^(interactions|descriptions)[^/]*\.(csv|parquet)$")
LEDGER = "main.inbox_ledger"
PROCESSED, REJECTED = "processed", "rejected"


@dataclass(frozen=True)
class Problem:
    """One reason a file is rejected; line as in the dataset quarantine (header = 1, 0 = whole file)."""

    file: str
    line: int
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{self.file} {where}, field {self.field}: {self.reason}" + (f" (value {self.value!r})" if self.value else "")


@dataclass
class IngestResult:
    dataset: str
    file: str
    kind: str | None
    sha256: str
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0  # data rows in the file
    inserted: int = 0
    updated: int = 0  # stored (user, item) interactions merged with a row of the file
    already_ingested: bool = False  # the ledger already had this content: nothing done

    @property
    def accepted(self) -> bool:
        return not self.problems

    def reason_text(self) -> str:
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        head = f"{self.file} (sha256 {self.sha256}) rejected {when}: {len(self.problems)} problem(s); nothing was stored.\n"
        return head + "".join(f"{p}\n" for p in self.problems)


# ---------------------------------------------------------------- files

def inbox_root() -> Path:
    return settings.reclm_home() / "inbox"


def file_kind(path: Path) -> str | None:
    """'interactions' / 'descriptions' from the file name, None when the inbox ignores the file."""
    m = _NAME.match(Path(path).name)
    return m.group(1) if m else None


def pending_files(folder: Path) -> list[Path]:
    """Files waiting in one dataset's inbox folder (not in processed/ or rejected/), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and file_kind(p))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def settle(path: Path, result: IngestResult) -> Path:
    """Move a handled file to processed/ or rejected/ (with ``<name>.reason.txt``); returns where."""
    path = Path(path)
    target_dir = path.parent / (PROCESSED if result.accepted else REJECTED)
    target_dir.mkdir(exist_ok=True)
    dest = target_dir / path.name
    n = 1
    while dest.exists():  # a later file of the same name must not overwrite the record of an earlier one
        dest = target_dir / f"{path.stem}.{n}{path.suffix}"
        n += 1
    if not result.accepted:
        dest.with_name(dest.name + ".reason.txt").write_text(result.reason_text(), encoding="utf-8")
    os.replace(path, dest)  # same filesystem: atomic, never a half-moved file
    return dest


# ---------------------------------------------------------------- DuckDB state

def dataset_ready(con: duckdb.DuckDBPyConnection, dataset: str) -> bool:
    """The dataset's raw tables exist (its partition was materialized at least once)."""
    # Not store.table_exists: its fetchone() leaves a result open, which DuckDB 2 then
    # refuses to mix with register() on the same connection.
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('items', 'interactions', 'descriptions')",
        [settings.schema_name(dataset)],
    ).fetchall()
    return found[0][0] == 3


def _ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {LEDGER} (
                dataset VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, file VARCHAR NOT NULL, kind VARCHAR NOT NULL,
                rows_inserted BIGINT, rows_updated BIGINT, ingested_at TIMESTAMPTZ DEFAULT current_timestamp,
                PRIMARY KEY (dataset, sha256))"""
    )


def already_ingested(con: duckdb.DuckDBPyConnection, dataset: str, sha256: str) -> bool:
    _ensure_ledger(con)
    rows = con.execute(f"SELECT 1 FROM {LEDGER} WHERE dataset = ? AND sha256 = ?", [dataset, sha256]).fetchall()
    return bool(rows)


# ---------------------------------------------------------------- ingest

def _read(path: Path, kind: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """The file's rows with provenance, or the problems that stop it being read at all."""
    try:
        df, bad = read_table(path)
    except Exception as exc:  # a corrupt parquet file, say: a rejection, not a sensor crash
        return None, [Problem(path.name, 0, "*", "", f"cannot read file: {type(exc).__name__}: {exc}")]
    problems = [Problem(path.name, int(r.line), r.field, str(r.value), r.reason) for r in bad.itertuples()]
    missing = [c for c in REQUIRED[kind] if c not in df.columns]
    problems += [Problem(path.name, 1, c, "", f"required column missing (required: {', '.join(REQUIRED[kind])})") for c in missing]
    if missing:
        return None, problems
    if "timestamp" in df and pd.api.types.is_datetime64_any_dtype(df["timestamp"]):
        # Parquet datetimes would read as nanoseconds in validate(); the schema wants unix seconds.
        ts = df["timestamp"]
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        df["timestamp"] = (ts - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)
    return df, problems


def _inbox_rules(con, schema: str, df: pd.DataFrame, name: str) -> list[Problem]:
    """Checks validate() does not make: description ids are given and new."""
    ids = df["description_id"].astype("string").str.strip().fillna("")
    problems = [Problem(name, int(line), "description_id", "", "missing id") for line in df.loc[ids == "", "_line"]]
    con.register("_reclm_inbox_ids", pd.DataFrame({"description_id": ids[ids != ""].unique()}))
    try:
        taken = {r[0] for r in con.execute(
            f'SELECT description_id FROM "{schema}".descriptions JOIN _reclm_inbox_ids USING (description_id)'
        ).fetchall()}
    finally:
        con.unregister("_reclm_inbox_ids")
    clash = ids.isin(taken)
    problems += [Problem(name, int(line), "description_id", v, "description_id already stored")
                 for line, v in zip(df.loc[clash, "_line"], ids[clash])]
    return problems


def _validate(con, dataset: str, schema: str, kind: str, df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Rows in the stored schema, and every bad row (validate's quarantine + inbox rules)."""
    items = store.read_df(con, schema, "items", "item_id, title, description, domain, language")
    checked = validate(Dataset(name=dataset, items=items, **{kind: df}))
    q = checked.quarantine
    q = q[q["source_file"] == name]  # the stored catalogue is already valid; only this file counts
    problems = [Problem(name, int(r.line), r.field, r.value, r.reason) for r in q.itertuples()]
    if kind == "descriptions":
        problems += _inbox_rules(con, schema, df, name)
    return getattr(checked, kind), problems


_SQL_TYPES = {"str": "VARCHAR", "str?": "VARCHAR", "float": "DOUBLE", "float?": "DOUBLE", "ts": "BIGINT"}


def _type_null_columns(con, schema: str, kind: str) -> None:
    """Give columns stored as DuckDB's "NULL" type their schema type.

    A table written from an empty (or all-None) pandas object column has that type, and
    nothing can be inserted into it; a dataset without descriptions stores exactly that.
    """
    typed = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, kind],
    ).fetchall()
    for name, data_type in typed:
        if data_type.strip('"') == "NULL" and name in COLUMNS[kind]:
            con.execute(f'ALTER TABLE "{schema}"."{kind}" ALTER COLUMN "{name}" TYPE {_SQL_TYPES[COLUMNS[kind][name]]}')


def _append(con, schema: str, kind: str, rows: pd.DataFrame) -> tuple[int, int]:
    """(inserted, updated). Column lists by name: the stored table's order need not match."""
    cols = list(COLUMNS[kind])
    col_list = ", ".join(f'"{c}"' for c in cols)
    table = f'"{schema}"."{kind}"'
    _type_null_columns(con, schema, kind)
    con.register("_reclm_inbox_rows", rows[cols])
    try:
        if kind == "descriptions":
            n = con.execute(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM _reclm_inbox_rows").fetchall()[0][0]
            return int(n), 0
        # The schema's duplicate rule: one row per (user, item), max weight, latest timestamp
        # (greatest() ignores NULL). Updating in place keeps the stored rows' order.
        updated = con.execute(
            f"""UPDATE {table} AS t SET weight = greatest(t.weight, n.weight), "timestamp" = greatest(t."timestamp", n."timestamp")
                FROM _reclm_inbox_rows n WHERE t.user_id = n.user_id AND t.item_id = n.item_id"""
        ).fetchall()[0][0]
        inserted = con.execute(
            f"""INSERT INTO {table} ({col_list}) SELECT {col_list} FROM _reclm_inbox_rows n
                WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.user_id = n.user_id AND t.item_id = n.item_id)"""
        ).fetchall()[0][0]
        return int(inserted), int(updated)
    finally:
        con.unregister("_reclm_inbox_rows")


def ingest_file(con: duckdb.DuckDBPyConnection, dataset: str, path: Path, sha256: str | None = None,
                replay: bool = False) -> IngestResult:
    """Validate one inbox file and append it to the dataset's tables, all or nothing.

    Does not move the file (see ``settle``). A file whose content the ledger already holds
    for this dataset is not applied again (``already_ingested``) — except with ``replay``,
    used when the raw tables were rebuilt from the source folder and the files that already
    went through the inbox must be re-applied on top.
    """
    path = Path(path)
    kind = file_kind(path)
    result = IngestResult(dataset, path.name, kind, sha256 or sha256_file(path))
    if kind is None:
        result.problems.append(Problem(path.name, 0, "*", "", "name must be interactions*.csv|parquet or descriptions*.csv|parquet"))
        return result
    df, result.problems = _read(path, kind)
    if df is None:
        return result
    unreadable_rows = sum(p.field == "*" for p in result.problems)  # wrong field count: not in df
    result.rows = len(df) + unreadable_rows
    schema = settings.schema_name(dataset)
    _ensure_ledger(con)
    con.execute("BEGIN TRANSACTION")
    try:
        if not replay and already_ingested(con, dataset, result.sha256):
            result.already_ingested = True
        elif not dataset_ready(con, dataset):
            result.problems.append(Problem(path.name, 0, "*", dataset, f"dataset {dataset!r} has no stored tables (schema {schema}); materialize it first"))
        else:
            rows, problems = _validate(con, dataset, schema, kind, df, path.name)
            result.problems.extend(problems)
            if result.accepted:
                result.inserted, result.updated = _append(con, schema, kind, rows)
            if result.accepted and not replay:
                con.execute(
                    f"INSERT INTO {LEDGER} (dataset, sha256, file, kind, rows_inserted, rows_updated) VALUES (?, ?, ?, ?, ?, ?)",
                    [dataset, result.sha256, path.name, kind, result.inserted, result.updated],
                )
                _mark_raw_tables_changed(con, schema, path.name)
        if result.accepted and not result.already_ingested:
            con.execute("COMMIT")
        else:
            con.execute("ROLLBACK")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.problems.sort(key=lambda p: (p.line, p.field))
    return result


def _mark_raw_tables_changed(con, schema: str, file_name: str) -> None:
    """The raw tables now hold the file's rows: the lists built before are stale until its run
    rebuilds them (serving.stale_lists compares this fingerprint with the lists' own)."""
    from reclm_dagster.datasets import INGEST_INFO_TABLE

    if store.table_exists(con, schema, INGEST_INFO_TABLE) and "fingerprint" in store.read_df(
            con, schema, INGEST_INFO_TABLE).columns:
        con.execute(f'UPDATE "{schema}".{INGEST_INFO_TABLE} SET fingerprint = ?, run_id = ?',
                    [store.tables_fingerprint(con, schema), f"{store.INBOX_RUN_PREFIX}{file_name}"])


# Faults of the machine, not of the file (DuckDB locked or broken, disk full): the file stays
# in the inbox for a later tick instead of being rejected.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (duckdb.IOException, OSError)


def ingest_or_reject(con: duckdb.DuckDBPyConnection, dataset: str, path: Path, sha256: str | None = None) -> IngestResult:
    """``ingest_file``, where a file that makes it fail unexpectedly is rejected with the error
    as its reason: one poison file must not make every later tick raise (and so never move,
    and block the files after it). Only TRANSIENT_ERRORS propagate; nothing was stored then
    either, since ingest_file rolls back."""
    try:
        return ingest_file(con, dataset, path, sha256)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        path = Path(path)
        result = IngestResult(dataset, path.name, file_kind(path), sha256 or sha256_file(path))
        reason = f"cannot be ingested, {type(exc).__name__}: {str(exc)[:300]} (a case reclm does not handle; please report it)"
        result.problems.append(Problem(path.name, 0, "*", "", reason))
        return result


def replay_processed(con: duckdb.DuckDBPyConnection, dataset: str) -> list[IngestResult]:
    """Re-apply, in ledger order, every file this dataset's inbox accepted (after a rebuild).

    The ledger, not the processed/ folder, says what was accepted: a file whose rows a tick
    committed but has not moved yet (or a tick killed between the commit and the move) is
    still in the inbox folder, and must be replayed all the same, exactly once."""
    _ensure_ledger(con)
    accepted = con.execute(f"SELECT sha256, file FROM {LEDGER} WHERE dataset = ? ORDER BY ingested_at, file",
                           [dataset]).fetchall()
    if not accepted:
        return []
    folder = inbox_root() / dataset
    candidates = [*pending_files(folder), *pending_files(folder / PROCESSED)]
    by_sha = {}
    for path in candidates:
        by_sha.setdefault(sha256_file(path), path)
    results = []
    for sha, name in accepted:
        if sha in by_sha:
            results.append(ingest_file(con, dataset, by_sha[sha], sha, replay=True))
        else:
            missing = IngestResult(dataset, name, file_kind(Path(name)), sha)
            missing.problems.append(Problem(name, 0, "*", "", f"accepted earlier but no longer in {folder} or its {PROCESSED}/: its rows are not in the rebuilt tables"))
            results.append(missing)
    return results


def stored_counts(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, int]:
    """Rows in the dataset's interactions and descriptions (for logs and tests)."""
    schema = settings.schema_name(dataset)
    return {t: int(con.execute(f'SELECT count(*) FROM "{schema}"."{t}"').fetchall()[0][0]) for t in ("interactions", "descriptions")}

