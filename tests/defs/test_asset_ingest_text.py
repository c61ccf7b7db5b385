"""raw_dataset, text_tokens, text_embeddings and their checks, each called directly."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from defs_fixture import DATASET, ITEMS, SCHEMA, check_passes_then_fails, ctx, encoder, execute, meta, read
from reclm_dagster.datasets import INGEST_INFO_TABLE, DatasetError
from reclm_dagster.defs.ingest import RAW_TABLES, column_schema, interactions_reference_catalogue, raw_dataset, schema_checks
from reclm_dagster.defs.text import embeddings_are_unit_vectors, text_embeddings, text_tokens


def test_raw_dataset_stores_six_tables_and_quarantines_the_bad_row(home, db_after):
    db = db_after("empty")
    results = list(raw_dataset(ctx(), duckdb=DuckDBResource(database=str(db))))
    by_key = {r.asset_key.to_user_string(): r for r in results}
    assert set(by_key) == set(RAW_TABLES)
    assert meta(by_key["items"])["dagster/row_count"] == 5
    assert meta(by_key["interactions"])["dagster/row_count"] == 36  # 6 × 5 + 3 × 2; the bad row is not one
    assert meta(by_key["quarantine"])["dagster/row_count"] == 1
    assert sorted(read(db, "items")["item_id"]) == ITEMS
    quarantined = read(db, "quarantine")
    assert quarantined["field"].tolist() == ["weight"]
    info = read(db, INGEST_INFO_TABLE)
    assert info["dataset"].tolist() == [DATASET] and info["run_id"].tolist() == ["EPHEMERAL"]
    assert info["fingerprint"].notna().all()  # set once the inbox replay is done


def test_raw_dataset_refuses_a_schema_that_holds_another_dataset(home, db_after):
    db = db_after("raw")
    execute(db, f"UPDATE \"{SCHEMA}\".{INGEST_INFO_TABLE} SET dataset = 'someone_else'")
    with pytest.raises(DatasetError, match="holds dataset 'someone_else'"):
        list(raw_dataset(ctx(), duckdb=DuckDBResource(database=str(db))))
    assert read(db, INGEST_INFO_TABLE)["dataset"].tolist() == ["someone_else"]  # nothing overwritten


def test_interactions_check_passes_then_fails_on_an_unknown_item(db_after):
    result = check_passes_then_fails(interactions_reference_catalogue, db_after("raw"),
                                     f"INSERT INTO \"{SCHEMA}\".interactions (user_id, item_id, weight) VALUES ('u1', 'nope', 1.0)")
    assert 1 in meta(result).values()


def test_every_raw_table_is_typed_at_the_boundary(db_after):
    """Issue 12.1: the schema's columns and dtypes are shown on each asset (dagster/column_schema) and
    checked on what was stored; a column stored with another type stops the run there."""
    assert [c.name for c in column_schema("interactions").columns] == ["user_id", "item_id", "weight", "timestamp"]
    db = db_after("raw")
    by_table = {next(iter(c.check_keys)).asset_key.to_user_string(): c for c in schema_checks}
    assert set(by_table) == set(RAW_TABLES)
    result = check_passes_then_fails(by_table["interactions"], db,
                                     f'ALTER TABLE "{SCHEMA}".interactions ALTER weight TYPE VARCHAR')
    assert meta(result)["mismatches"] == "weight: expected DOUBLE, stored VARCHAR"
    result = check_passes_then_fails(by_table["items"], db, f'ALTER TABLE "{SCHEMA}".items DROP COLUMN language')
    assert "language: expected VARCHAR, stored no such column" in meta(result)["mismatches"]


def test_text_tokens_one_row_per_text_with_the_lexical_tokenizer(db_after):
    db = db_after("raw")
    result = text_tokens(ctx(), duckdb=DuckDBResource(database=str(db)), encoder=encoder())
    table = read(db, "text_tokens")
    n_desc = len(read(db, "descriptions"))
    assert len(table) == 5 + n_desc and set(table["source"]) == {"item", "description"}
    assert {"tokens", "token_ids", "n_tokens", "language", "tokenizer"} <= set(table.columns)
    assert meta(result)["dagster/row_count"] == len(table)
    assert meta(result)["tokenizer"] == encoder().get().version
    robots = table[table["id"] == "m2"]["tokens"].iloc[0]
    assert "robots" in list(robots) or "robot" in list(robots)
    assert read(db, "encoder_choice")["model"].tolist() == ["lexical"]  # the dataset's encoder from now on


def test_text_embeddings_unit_vectors_and_the_cache_on_a_second_run(db_after):
    db = db_after("text")
    res = DuckDBResource(database=str(db))
    result = text_embeddings(ctx(), duckdb=res, encoder=encoder())
    m = meta(result)
    assert m["dagster/row_count"] == len(read(db, "text_tokens"))
    assert m["cache_misses"] == 0 and m["cache_hits"] == m["distinct_texts"]  # the stage already encoded them
    assert m["encoder_version"] == encoder().get().version
    vectors = np.stack(read(db, "text_embeddings")["embedding"].to_numpy())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_embeddings_check_passes_then_fails_on_a_missing_vector(db_after):
    check_passes_then_fails(embeddings_are_unit_vectors, db_after("text"),
                            f"DELETE FROM \"{SCHEMA}\".text_embeddings WHERE source = 'item' AND id = 'm3'")


def test_text_embeddings_encode_only_the_changed_text(db_after):
    db = db_after("text")
    execute(db, f"UPDATE \"{SCHEMA}\".text_tokens SET text = 'a brand new synopsis about robots' WHERE id = 'm1'")
    result = text_embeddings(ctx(), duckdb=DuckDBResource(database=str(db)), encoder=encoder())
    assert meta(result)["cache_misses"] == 1  # only the changed text goes through the encoder
    assert isinstance(result, dg.MaterializeResult) and len(pd.unique(read(db, "text_embeddings")["id"])) >= 5
