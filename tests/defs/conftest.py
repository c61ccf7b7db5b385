"""Fixtures of tests/defs: a DuckDB built from the five-item catalogue asset by asset.

Every test in this folder calls one asset (or check) function directly, the way Dagster's
example projects test theirs: ``dg.build_asset_context(partition_key=…)``, its upstream data as
arguments (DataFrames), a ``DuckDBResource`` on a temporary file where the asset still needs a
handle, and the ``lexical`` encoder (a hashed bag of words: no model to load).
``built`` materializes the whole graph once per session, stage by stage through the IO manager,
keeping a copy of the database after each stage; ``db_after(stage)`` hands a test its own copy
of the stage its asset starts from, and ``inputs(asset, db)`` its arguments from that copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from defs_fixture import DATASET, all_assets, copy_db, resources, stages, write_catalogue
from reclm_dagster.defs.common import dataset_partitions

STAGES = ("raw", "text", "kg", "selected", "scored", "lists")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("defs-data")
    write_catalogue(root / DATASET)
    return root


@pytest.fixture(scope="session")
def built(tmp_path_factory, data_dir) -> dict[str, Path]:
    """{stage: a database file after it}: raw tables → text → knowledge graph → selection → scores → lists,
    each stage a Dagster run of its assets, their inputs loaded and outputs stored by the IO manager."""
    root = tmp_path_factory.mktemp("defs-stages")
    db = root / "work.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(dataset_partitions.name, [DATASET])
    old = os.environ.get("RECLM_DATA_DIR")
    os.environ["RECLM_DATA_DIR"] = str(data_dir)
    try:
        out = {}
        for stage, selected in stages().items():
            result = dg.materialize(all_assets(), selection=dg.AssetSelection.assets(*selected), partition_key=DATASET,
                                    instance=instance, resources=resources(db))
            assert result.success, stage
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
