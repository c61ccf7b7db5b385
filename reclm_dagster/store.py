"""DuckDB table helpers: one schema per dataset, tables replaced atomically.

Assets write through `replace_tables` so a failed step leaves the previous tables intact
(DuckDB DDL is transactional), and read through `read_df` / `read_embeddings`.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)


def replace_tables(con: duckdb.DuckDBPyConnection, schema: str, tables: Mapping[str, pd.DataFrame | pa.Table]) -> dict[str, int]:
    """Create or replace several tables in one transaction; returns row counts.

    On a connection from ``parquet_store.connect`` (the distributed deployment) each table is
    written to its own Parquet file instead, each one replaced atomically."""
    from reclm_dagster import parquet_store

    counts: dict[str, int] = {}
    if parquet_store.root_of(con) is not None:
        for name, frame in tables.items():
            if isinstance(frame, pd.DataFrame):
                frame = _typed_empty_columns(frame)
            parquet_store.replace(con, schema, name, frame)
            counts[name] = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
        return counts
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for name, frame in tables.items():
            if isinstance(frame, pd.DataFrame):
                frame = _typed_empty_columns(frame)
            view = f"_reclm_src_{name}"
            con.register(view, frame)
            con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{name}" AS SELECT * FROM {view}')
            con.unregister(view)
            counts[name] = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts


def _typed_empty_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """All-null object columns as strings: DuckDB would store them with type NULL, which
    nothing can later be appended to (e.g. a dataset without any item-level descriptions)."""
    empty = [c for c in frame.columns if frame[c].dtype == object and frame[c].isna().all()]
    return frame.astype({c: "string" for c in empty}) if empty else frame


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()  # fetchall closes the result; an open one breaks a later register() on this connection
    return bool(rows and rows[0][0])


def read_df(con: duckdb.DuckDBPyConnection, schema: str, name: str, columns: str = "*", where: str = "") -> pd.DataFrame:
    sql = f'SELECT {columns} FROM "{schema}"."{name}"'
    if where:
        sql += f" WHERE {where}"
    return con.execute(sql).df()


def embeddings_table(ids: list[str] | np.ndarray, sources: list[str] | np.ndarray, vectors: np.ndarray, encoder_version: str) -> pa.Table:
    """An Arrow table whose `embedding` column is a fixed-size FLOAT[dim] array (DuckDB ARRAY)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table(
        {
            "source": pa.array(list(sources), type=pa.string()),
            "id": pa.array(list(ids), type=pa.string()),
            "encoder_version": pa.array([encoder_version] * n, type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def read_embeddings(con: duckdb.DuckDBPyConnection, schema: str, source: str, name: str = "text_embeddings") -> tuple[list[str], np.ndarray]:
    """Ids and an (n, dim) float32 matrix for one source ('item' or 'description')."""
    from reclm_dagster import parquet_store

    # A Parquet view has no rowid; its scan keeps the file's row order (preserve_insertion_order).
    order = "" if parquet_store.root_of(con) is not None else " ORDER BY rowid"
    table = con.sql(
        f'SELECT id, embedding FROM "{schema}"."{name}" WHERE source = $source{order}',
        params={"source": source},
    ).to_arrow_table()
    return embedding_matrix(table)


def embedding_matrix(table: pa.Table, source: str | None = None) -> tuple[list[str], np.ndarray]:
    """Ids and an (n, dim) float32 matrix from an embeddings table (rows of ``source`` only, if given)."""
    if source is not None:
        table = table.filter(pa.compute.equal(table.column("source"), source))
    ids = table.column("id").to_pylist()
    col = table.column("embedding").combine_chunks()
    if len(ids) == 0:
        return [], np.zeros((0, 0), dtype=np.float32)
    # FLOAT[dim] from a DuckDB table; FLOAT[] when read back from Parquet (same values)
    dim = col.type.list_size if pa.types.is_fixed_size_list(col.type) else len(col[0].values)
    vectors = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(ids), dim)
    return ids, vectors


def read_knowledge_graph(con: duckdb.DuckDBPyConnection, schema: str):
    """The stored knowledge graph of a dataset (kg_entities + kg_triples)."""
    from reclm_dagster.kg import KnowledgeGraph

    return KnowledgeGraph(entities=read_df(con, schema, "kg_entities"), triples=read_df(con, schema, "kg_triples"))


# The tables a dataset's lists are computed from; their fingerprint ties the lists to them.
# `recommendations_info` (one row, written with the lists) holds the fingerprint the lists were
# built from; `ingest_info` holds the one of the raw tables now stored.
LISTS_INFO_TABLE = "recommendations_info"
# ingest_info.run_id after an inbox append: no Dagster run replaced the tables, a file did.
INBOX_RUN_PREFIX = "inbox:"
FINGERPRINTED_TABLES = ("items", "interactions", "descriptions", "catalogue_facts", "user_links")


def tables_fingerprint(con: duckdb.DuckDBPyConnection, schema: str, names=FINGERPRINTED_TABLES) -> str:
    """Rows and an order-independent sum of row hashes per table: equal content, equal string
    (so a re-ingest of the same files does not mark the lists stale). About 1 s per 15M rows."""
    parts = []
    for name in names:
        if not table_exists(con, schema, name):
            parts.append(f"{name}:-")
            continue
        # fetchall: an open result breaks a later register() on this connection (see table_exists)
        n, h = con.execute(f'SELECT count(*), coalesce(sum(hash(t)), 0) FROM "{schema}"."{name}" AS t').fetchall()[0]
        parts.append(f"{name}:{n}:{h}")
    return ";".join(parts)
