"""raw_dataset, text_tokens, text_embeddings and their checks, each called directly."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from defs_fixture import (
    CATALOGUE, DATASET, FACTS, ITEMS, SCHEMA, check_passes_then_fails, ctx, encoder, execute, inputs, meta, read, value,
)
from reclm_dagster.datasets import INGEST_INFO_TABLE, DatasetError
from reclm_dagster.defs.ingest import (
    FRAME_TYPES, RAW_TABLES, column_schema, interactions_reference_catalogue, raw_dataset, schema_checks,
)
from reclm_dagster.defs.text import embeddings_are_unit_vectors, text_embeddings, text_tokens


def duckdb_tables(db) -> list[str]:
    import duckdb as ddb

    with ddb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]


def test_raw_dataset_stores_six_tables_and_quarantines_the_bad_row(home, db_after):
    db = db_after("empty")
    results = list(raw_dataset(ctx(), duckdb=DuckDBResource(database=str(db))))
    by_key = {r.output_name: r for r in results}
    assert set(by_key) == set(RAW_TABLES)
    assert sorted(value(by_key["items"])["item_id"]) == ITEMS  # the frames flow on as the outputs' values
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


def test_a_loader_returning_a_wrong_dtype_is_stopped_before_anything_is_stored(home, db_after, monkeypatch):
    """Issue 12.1: the ingest frames are dagster-pandas typed; a wrong dtype fails at the boundary, in one line."""
    from reclm_dagster.defs import ingest

    db = db_after("empty")
    real = ingest.load_dataset

    def weights_as_text(*args, **kwargs):
        dataset = real(*args, **kwargs)
        dataset.interactions["weight"] = dataset.interactions["weight"].astype(str)
        return dataset

    monkeypatch.setattr(ingest, "load_dataset", weights_as_text)
    with pytest.raises(dg.Failure) as failure:
        list(raw_dataset(ctx(), duckdb=DuckDBResource(database=str(db))))
    message = failure.value.description
    assert "\n" not in message and message.startswith("interactions does not match reclm's schema")
    assert '"weight"' in message and "float64" in message and "object" in message
    assert not db.exists() or not len(duckdb_tables(db))  # nothing stored
    # the same type is each output's dagster_type: Dagster checks what the asset yields, too
    assert raw_dataset.node_def.output_def_named("interactions").dagster_type is FRAME_TYPES["interactions"]
    assert not dg.check_dagster_type(FRAME_TYPES["items"], CATALOGUE.drop(columns="language")).success


def test_text_tokens_from_small_frames():
    """Upstream data as arguments: three small DataFrames, no database read for them."""
    descriptions = pd.DataFrame({"description_id": ["d1", "d2"], "text": ["funny robots", "funny robots"]})
    facts = FACTS.assign(entity_type="genre", weight=1.0, source="facts.csv")
    result = text_tokens(ctx(), items=CATALOGUE, catalogue_facts=facts, descriptions=descriptions,
                         duckdb=DuckDBResource(database=":memory:"), encoder=encoder())
    table = value(result, "text_tokens")
    assert list(table["source"]).count("item") == 5 and list(table["id"][table["source"] == "description"]) == ["d1", "d2"]
    assert meta(result)["distinct_texts"] == 6  # the repeated description is processed once


def test_text_tokens_one_row_per_text_with_the_lexical_tokenizer(db_after):
    db = db_after("raw")
    result = text_tokens(ctx(), **inputs(text_tokens, db), duckdb=DuckDBResource(database=str(db)), encoder=encoder())
    table = value(result, "text_tokens")
    n_desc = len(read(db, "descriptions"))
    assert len(table) == 5 + n_desc and set(table["source"]) == {"item", "description"}
    assert {"tokens", "token_ids", "n_tokens", "language", "tokenizer"} <= set(table.columns)
    assert meta(result)["dagster/row_count"] == len(table)
    assert meta(result)["tokenizer"] == encoder().get().version
    robots = table[table["id"] == "m2"]["tokens"].iloc[0]
    assert "robots" in list(robots) or "robot" in list(robots)
    # stored with the tokens in one transaction: the dataset's encoder from now on
    assert value(result, "encoder_choice")["model"].tolist() == ["lexical"]


def test_text_embeddings_unit_vectors_and_the_cache_on_a_second_run(db_after):
    db = db_after("text")
    res = DuckDBResource(database=str(db))
    result = text_embeddings(ctx(), **inputs(text_embeddings, db), duckdb=res, encoder=encoder())
    m = meta(result)
    assert m["dagster/row_count"] == len(read(db, "text_tokens"))
    assert m["cache_misses"] == 0 and m["cache_hits"] == m["distinct_texts"]  # the stage already encoded them
    assert m["encoder_version"] == encoder().get().version
    vectors = np.stack(value(result, "text_embeddings").column("embedding").to_numpy(zero_copy_only=False))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_embeddings_check_passes_then_fails_on_a_missing_vector(db_after):
    check_passes_then_fails(embeddings_are_unit_vectors, db_after("text"),
                            f"DELETE FROM \"{SCHEMA}\".text_embeddings WHERE source = 'item' AND id = 'm3'")


def test_text_embeddings_encode_only_the_changed_text(db_after):
    db = db_after("text")
    tokens = inputs(text_embeddings, db)["text_tokens"]
    tokens.loc[tokens["id"] == "m1", "text"] = "a brand new synopsis about robots"
    result = text_embeddings(ctx(), text_tokens=tokens, duckdb=DuckDBResource(database=str(db)), encoder=encoder())
    assert meta(result)["cache_misses"] == 1  # only the changed text goes through the encoder
    assert isinstance(result, dg.Output) and len(set(value(result, "text_embeddings").column("id").to_pylist())) >= 5
