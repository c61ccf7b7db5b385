"""Shared Parquet storage for the distributed deployment: DuckDB reads, files hold the data.

Layout under one root (a folder, or an fsspec URL such as ``s3://bucket/reclm`` or ``memory://x``):

    <root>/<schema>/<table>.parquet        a table replaced whole (``store.replace_tables``)
    <root>/<schema>/<table>/*.parquet      a table only ever appended to (``append``: the embedding cache)

``connect(root)`` opens an in-memory DuckDB with one view ``"<schema>"."<table>"`` per stored
table, so every SELECT the assets run works unchanged; the connection remembers its root in
the DuckDB variable ``reclm_parquet_root`` and ``store`` writes through here when it is set.
A replaced table is written to a temporary file beside its target and renamed over it (one
atomic rename on a POSIX file system; one PUT on an object store), so a reader on another
worker sees the old file or the new one, never half of one. Several tables replaced together are
each atomic, not atomic together (DuckDB's single-file mode keeps that stronger guarantee).
"""

from __future__ import annotations

import os
import uuid

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT_VARIABLE = "reclm_parquet_root"


def _fs(root: str):
    import fsspec

    fs, path = fsspec.core.url_to_fs(root)
    return fs, path.rstrip("/")


def _is_local(fs) -> bool:
    import fsspec.implementations.local

    return isinstance(fs, fsspec.implementations.local.LocalFileSystem)


def _url(fs, path: str) -> str:
    """The name DuckDB reads ``path`` by: the plain path locally, else protocol://path (the
    fsspec file system is registered with the connection)."""
    if _is_local(fs):
        return path
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://{path.lstrip('/') if protocol == 'memory' else path}"


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def root_of(con: duckdb.DuckDBPyConnection) -> str | None:
    """The Parquet root a connection from ``connect`` reads; None for an ordinary DuckDB connection."""
    row = con.execute(f"SELECT getvariable('{ROOT_VARIABLE}')").fetchall()
    return row[0][0] if row and row[0][0] else None


def connect(root: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view on every table stored under ``root``."""
    fs, base = _fs(root)
    fs.makedirs(base, exist_ok=True)
    con = duckdb.connect(":memory:")
    if not _is_local(fs):
        con.register_filesystem(fs)
    con.execute(f"SET VARIABLE {ROOT_VARIABLE} = {_quote(root)}")
    for schema_dir in fs.ls(base, detail=True):
        if schema_dir["type"] != "directory":
            continue
        schema = schema_dir["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in fs.ls(schema_dir["name"], detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] == "directory" and fs.glob(f"{entry['name'].rstrip('/')}/*.parquet"):
                _view(con, fs, schema, name, f"{entry['name'].rstrip('/')}/*.parquet")
            elif entry["type"] == "file" and name.endswith(".parquet") and not name.startswith("."):
                _view(con, fs, schema, name[: -len(".parquet")], entry["name"])
    return con


def _view(con, fs, schema: str, name: str, path: str) -> None:
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    con.execute(f'CREATE OR REPLACE VIEW "{schema}"."{name}" AS SELECT * FROM read_parquet({_quote(_url(fs, path))})')


def _write(fs, path: str, table: pa.Table) -> None:
    with fs.open(path, "wb") as fh:
        pq.write_table(table, fh)


def _as_arrow(con: duckdb.DuckDBPyConnection, frame) -> pa.Table:
    """The frame as DuckDB would store it (same column types as a table in the local deployment)."""
    view = f"_reclm_parquet_src_{uuid.uuid4().hex}"
    con.register(view, frame)
    try:
        return con.sql(f"SELECT * FROM {view}").to_arrow_table()
    finally:
        con.unregister(view)


def replace(con: duckdb.DuckDBPyConnection, schema: str, name: str, frame) -> None:
    """Write ``<root>/<schema>/<name>.parquet`` (temporary file, then rename) and point the view at it."""
    fs, base = _fs(root_of(con))
    folder = f"{base}/{schema}"
    fs.makedirs(folder, exist_ok=True)
    target = f"{folder}/{name}.parquet"
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    _write(fs, tmp, _as_arrow(con, frame))
    try:
        if _is_local(fs):
            os.replace(tmp, target)  # atomic on POSIX: readers see the old file or the new one
        else:
            fs.mv(tmp, target)
    except BaseException:
        fs.rm(tmp)
        raise
    _view(con, fs, schema, name, target)


def append(con: duckdb.DuckDBPyConnection, schema: str, name: str, frame) -> None:
    """Add one part file to ``<root>/<schema>/<name>/`` (each writer its own file: no lost update)."""
    fs, base = _fs(root_of(con))
    folder = f"{base}/{schema}/{name}"
    fs.makedirs(folder, exist_ok=True)
    part = uuid.uuid4().hex
    tmp, target = f"{folder}/.{part}.tmp", f"{folder}/part-{part}.parquet"
    _write(fs, tmp, _as_arrow(con, frame))
    fs.mv(tmp, target)
    _view(con, fs, schema, name, f"{folder}/*.parquet")
