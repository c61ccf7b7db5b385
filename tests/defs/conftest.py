"""Fixtures of tests/defs: a DuckDB built from the five-item catalogue asset by asset.

Every test in this folder calls one asset (or check) function directly, the way Dagster's
example projects test theirs: ``dg.build_asset_context(partition_key=…)``, a ``DuckDBResource``
on a temporary file and the ``lexical`` encoder (a hashed bag of words: no model to load).
``built`` materializes the whole graph once per session, keeping a copy of the database after
each stage; ``db_after(stage)`` hands a test its own copy of the stage its asset starts from.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster_duckdb import DuckDBResource

from defs_fixture import DATASET, copy_db, ctx, encoder, write_catalogue

STAGES = ("raw", "text", "kg", "selected", "scored", "lists")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("defs-data")
    write_catalogue(root / DATASET)
    return root


@pytest.fixture(scope="session")
def built(tmp_path_factory, data_dir) -> dict[str, Path]:
    """{stage: a database file after it}: raw tables → text → knowledge graph → selection → scores → lists."""
    from reclm_dagster.defs.ingest import raw_dataset
    from reclm_dagster.defs.kg import kg_mentions, knowledge_graph
    from reclm_dagster.defs.recommendations import recommendations
    from reclm_dagster.defs.selection import SelectionConfig, hybrid_selection
    from reclm_dagster.defs.similarity import item_similarity, user_item_scores
    from reclm_dagster.defs.text import text_embeddings, text_tokens

    root = tmp_path_factory.mktemp("defs-stages")
    db = root / "work.duckdb"
    res = DuckDBResource(database=str(db))
    old = os.environ.get("RECLM_DATA_DIR")
    os.environ["RECLM_DATA_DIR"] = str(data_dir)
    try:
        steps = {
            "raw": lambda: list(raw_dataset(ctx(), duckdb=res)),
            "text": lambda: (text_tokens(ctx(), duckdb=res, encoder=encoder()),
                             text_embeddings(ctx(), duckdb=res, encoder=encoder())),
            "kg": lambda: (list(knowledge_graph(ctx(), duckdb=res)), kg_mentions(ctx(), duckdb=res, encoder=encoder())),
            "selected": lambda: hybrid_selection(ctx(), config=SelectionConfig(), duckdb=res, encoder=encoder()),
            "scored": lambda: (item_similarity(ctx(), duckdb=res), user_item_scores(ctx(), duckdb=res)),
            "lists": lambda: recommendations(ctx(), duckdb=res),
        }
        out = {}
        for stage in STAGES:
            steps[stage]()
            out[stage] = copy_db(db, root / f"{stage}.duckdb")
    finally:
        if old is None:
            os.environ.pop("RECLM_DATA_DIR", None)
        else:
            os.environ["RECLM_DATA_DIR"] = old
    return out


@pytest.fixture
def db_after(built, tmp_path):
    """``db_after(stage)``: this test's own copy of the database after ``stage`` ('empty': no file yet)."""

    def copy(stage: str) -> Path:
        dst = tmp_path / "reclm.duckdb"
        return dst if stage == "empty" else copy_db(built[stage], dst)

    return copy


@pytest.fixture
def home(tmp_path, monkeypatch, data_dir) -> Path:
    """RECLM_HOME (MLflow store, inbox, encoders) and RECLM_DATA_DIR of one test."""
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECLM_DATA_DIR", str(data_dir))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"
