"""query_index, called directly: the items as a request sees them, readable by serving while fresh."""

from __future__ import annotations

import duckdb
import numpy as np
from dagster_duckdb import DuckDBResource

from defs_fixture import ITEMS, SCHEMA, ctx, execute, inputs, meta, value
from reclm_dagster import serving, store
from reclm_dagster.training import chosen_config_from


def test_query_index_stores_every_items_vector_and_words_and_serving_reads_it_while_fresh(db_after):
    db = db_after("selected")
    args = inputs(serving_asset(), db)
    result = serving_asset()(ctx(), **args, duckdb=DuckDBResource(database=str(db)))
    table, keys = value(result)[serving.QUERY_ITEMS_TABLE], value(result)[serving.QUERY_ENTITY_KEYS_TABLE]
    assert meta(result)["dagster/row_count"] == table.num_rows == len(ITEMS)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert "robots" in rows["m2"]["tokens"]  # u2's tag "funny robots" about m2, beside its synopsis
    vectors = np.array([rows[i]["embedding"] for i in ITEMS], np.float32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    config = chosen_config_from(args["hybrid_selection"], {})
    with duckdb.connect(str(db)) as con:
        store.replace_tables(con, SCHEMA, value(result))  # as the IO manager stores it
        fingerprint = serving.query_items_fingerprint(con, SCHEMA, meta(result)["encoder_version"], config)
        read = serving.read_query_items(con, SCHEMA, fingerprint)
        assert read is not None and np.array_equal(read[0], vectors) and "robots" in read[1][1]
        assert serving.read_query_items(con, SCHEMA, fingerprint + "x") is None  # built from other data: not used
        # the graph's dictionary: read back while the graph is the one it was built from
        keys_fingerprint = serving.entity_keys_fingerprint(con, SCHEMA, fingerprint)
        stored_keys = serving.read_entity_keys(con, SCHEMA, keys_fingerprint)
        assert stored_keys is not None and len(stored_keys) == len(keys) == meta(result)["entity_keys"] > 0
        con.execute(f"""DELETE FROM "{SCHEMA}".kg_entities WHERE entity_id = (SELECT min(entity_id) FROM "{SCHEMA}".kg_entities)""")
        assert serving.read_entity_keys(con, SCHEMA, serving.entity_keys_fingerprint(con, SCHEMA, fingerprint)) is None
    execute(db, f"""UPDATE "{SCHEMA}".items SET title = 'Renamed' WHERE item_id = 'm5'""")
    with duckdb.connect(str(db)) as con:  # the catalogue changed since: the stored index no longer matches
        assert serving.query_items_fingerprint(con, SCHEMA, meta(result)["encoder_version"], config) != fingerprint


def serving_asset():
    from reclm_dagster.defs.query import query_index

    return query_index
