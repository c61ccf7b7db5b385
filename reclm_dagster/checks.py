"""The data checks behind the Dagster asset checks, as plain functions over a DuckDB schema.

Each returns ``(passed, metadata)`` so it can be tested on crafted tables without Dagster.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np

from reclm_dagster import store

NORM_TOLERANCE = 1e-3


def _one(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchall()[0]


def interactions_valid(con: duckdb.DuckDBPyConnection, schema: str) -> tuple[bool, dict]:
    """Every interaction names a catalogue item and has a positive weight."""
    unknown, bad_weight = _one(
        con,
        f'''SELECT count(*) FILTER (WHERE i.item_id IS NULL), count(*) FILTER (WHERE NOT (x.weight > 0) OR x.weight IS NULL)
            FROM "{schema}".interactions x LEFT JOIN "{schema}".items i USING (item_id)''',
    )
    return unknown == 0 and bad_weight == 0, {"unknown_items": int(unknown), "non_positive_weights": int(bad_weight)}


def embeddings_valid(con: duckdb.DuckDBPyConnection, schema: str) -> tuple[bool, dict]:
    """No NaN vectors, unit norms, and exactly one embedding per item and per description."""
    norms, n_vectors = [], 0
    for source in ("item", "description"):
        _, vectors = store.read_embeddings(con, schema, source)
        n_vectors += len(vectors)
        if vectors.size:
            norms.append(np.linalg.norm(vectors, axis=1))
    all_norms = np.concatenate(norms) if norms else np.zeros(0)
    n_nan = int(np.isnan(all_norms).sum())
    worst = float(np.nanmax(np.abs(all_norms - 1))) if all_norms.size and n_nan < all_norms.size else 0.0
    expected = _one(con, f'SELECT (SELECT count(*) FROM "{schema}".items) + (SELECT count(*) FROM "{schema}".descriptions)')[0]
    missing = _one(
        con,
        f'''SELECT count(*) FROM (
                SELECT 'item' AS source, item_id AS id FROM "{schema}".items
                UNION ALL SELECT 'description', description_id FROM "{schema}".descriptions
            ) e ANTI JOIN "{schema}".text_embeddings t USING (source, id)''',
    )[0]
    meta = {"nan_vectors": n_nan, "max_norm_deviation": worst, "vectors": n_vectors, "expected": int(expected), "missing": int(missing)}
    return n_nan == 0 and worst < NORM_TOLERANCE and n_vectors == expected and missing == 0, meta


def triples_valid(con: duckdb.DuckDBPyConnection, schema: str) -> tuple[bool, dict]:
    """Every triple's head and tail is a stored entity."""
    dangling = _one(
        con,
        f'''SELECT count(*) FROM "{schema}".kg_triples t
            WHERE t.head NOT IN (SELECT entity_id FROM "{schema}".kg_entities)
               OR t.tail NOT IN (SELECT entity_id FROM "{schema}".kg_entities)''',
    )[0]
    return dangling == 0, {"dangling_triples": int(dangling)}


def mentions_valid(con: duckdb.DuckDBPyConnection, schema: str) -> tuple[bool, dict]:
    """Every mention names a stored entity and its span holds the surface text.

    The casts matter: a dataset without descriptions stores an empty ``kg_mentions`` whose
    columns are all VARCHAR (an empty pandas frame has no dtypes), and ``"start" + 1`` on a
    VARCHAR is a BinderException, not "no mentions, nothing wrong".
    """
    unknown, bad_span = _one(
        con,
        f'''SELECT count(*) FILTER (WHERE e.entity_id IS NULL),
                   count(*) FILTER (WHERE substring(d.text, CAST(m."start" AS BIGINT) + 1,
                                                    CAST(m."end" AS BIGINT) - CAST(m."start" AS BIGINT))
                                          <> m.surface)
            FROM "{schema}".kg_mentions m
            LEFT JOIN "{schema}".kg_entities e USING (entity_id)
            LEFT JOIN "{schema}".descriptions d USING (description_id)''',
    )
    return unknown == 0 and bad_span == 0, {"unknown_entities": int(unknown), "bad_spans": int(bad_span)}


def recommendations_valid(con: duckdb.DuckDBPyConnection, schema: str) -> tuple[bool, dict]:
    """No duplicate (user, item), no item the user already consumed, every explanation path in the graph."""
    from reclm_dagster.kg import verify_path

    duplicates = _one(con, f'SELECT count(*) - count(DISTINCT (user_id, item_id)) FROM "{schema}".recommendations')[0]
    consumed = _one(
        con, f'SELECT count(*) FROM "{schema}".recommendations r SEMI JOIN "{schema}".interactions x USING (user_id, item_id)'
    )[0]
    paths = con.execute(f'SELECT explanation_path FROM "{schema}".recommendations').fetchall()
    kg = store.read_knowledge_graph(con, schema)
    invalid = sum(1 for (p,) in paths if p and not verify_path(kg, [tuple(e) for e in json.loads(p)]))
    meta = {"duplicate_pairs": int(duplicates), "already_consumed": int(consumed), "invalid_paths": invalid}
    return duplicates == 0 and consumed == 0 and invalid == 0, meta


def coverage_from_store(con, schema: str, k: int = 10) -> dict[str, object]:
    """Coverage and faithfulness (kg/coverage.py) of the stored ``recommendations`` of one dataset schema.

    Here, not in kg/: the graph package never reads the store (store.py builds graphs from it)."""
    from reclm_dagster.kg.coverage import explanation_coverage

    recs = store.read_df(con, schema, "recommendations",
                         "user_id, item_id, rank, explanation_kind, explanation_path", where=f"rank <= {int(k)}")
    kg = store.read_knowledge_graph(con, schema)
    interactions = store.read_df(con, schema, "interactions", "user_id, item_id")
    mentions = (store.read_df(con, schema, "kg_mentions", "user_id, entity_id")
                if store.table_exists(con, schema, "kg_mentions") else None)
    return explanation_coverage(recs, kg, k, interactions, mentions)
