"""Deployments chosen by RECLM_DEPLOYMENT (issue 12.4): the README's distributed example loads
(executor, resources, run config) without starting a cluster, and local stays as it was."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from reclm_dagster import parquet_store, settings, store

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "distributed.env"


def _example_env() -> dict[str, str]:
    lines = [l.strip() for l in EXAMPLE.read_text().splitlines()]
    return dict(l.split("=", 1) for l in lines if l and not l.startswith("#"))


def test_the_readme_example_builds_the_distributed_definitions(monkeypatch, tmp_path):
    from reclm_dagster.definitions import build_definitions
    from reclm_dagster.defs.resources import MLflowResource, ParquetDuckDBResource

    env = _example_env()
    assert env["RECLM_DEPLOYMENT"] == "distributed"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    assert settings.deployment() == "distributed"
    defs = build_definitions()
    job = defs.resolve_job_def("reclm_full")
    assert job.executor_def.name == "reclm_dask"
    # the run config resolves: executor address from $RECLM_DASK_ADDRESS, resources from their EnvVars
    from dagster._core.system_config.objects import ResolvedRunConfig

    resolved = ResolvedRunConfig.build(job, {"resources": {"encoder": {"config": {"model": "lexical"}}}})
    assert resolved.execution.execution_engine_config["cluster"]["existing"]["address"] == env["RECLM_DASK_ADDRESS"]
    resources = job.resource_defs
    duck, mlflow = resources["duckdb"], resources["mlflow"]
    with dg.build_resources({"duckdb": duck, "mlflow": mlflow}) as r:
        assert isinstance(r.duckdb, ParquetDuckDBResource) and r.duckdb.root == env["RECLM_STORAGE_ROOT"]
        assert isinstance(r.mlflow, MLflowResource) and r.mlflow.tracking_uri == env["RECLM_MLFLOW_TRACKING_URI"]
    # asset values move between steps (and Dask workers) through the same Parquet storage
    with dg.build_resources({"io_manager": resources["io_manager"]}) as r:
        assert isinstance(r.io_manager.duckdb, ParquetDuckDBResource) and r.io_manager.duckdb.root == env["RECLM_STORAGE_ROOT"]
    assert settings.mlflow_tracking_uri() == env["RECLM_MLFLOW_TRACKING_URI"]


def test_local_is_the_default(monkeypatch):
    from reclm_dagster.definitions import build_definitions
    from reclm_dagster.defs.resources import ParquetDuckDBResource

    monkeypatch.delenv("RECLM_DEPLOYMENT", raising=False)
    defs = build_definitions()
    job = defs.resolve_job_def("reclm_full")
    assert job.executor_def.name != "reclm_dask"
    assert not isinstance(job.resource_defs["duckdb"], ParquetDuckDBResource)
    monkeypatch.setenv("RECLM_DEPLOYMENT", "cloud")
    with pytest.raises(ValueError, match="local, distributed"):
        settings.deployment()


def test_parquet_storage_on_an_fsspec_url():
    """An object-store URL works like a folder (fsspec's memory file system standing in for S3)."""
    from reclm_dagster.defs.resources import ParquetDuckDBResource

    res = ParquetDuckDBResource(root="memory://reclm-test/tables")
    with res.get_connection() as con:
        store.replace_tables(con, "ds_x", {"items": pd.DataFrame({"item_id": ["a", "b"], "n": [1, 2]})})
        store.replace_tables(con, "ds_x", {"items": pd.DataFrame({"item_id": ["c"], "n": [3]})})
    with res.get_connection() as con:
        assert parquet_store.root_of(con) == "memory://reclm-test/tables"
        assert store.table_exists(con, "ds_x", "items")
        assert store.read_df(con, "ds_x", "items").to_dict("list") == {"item_id": ["c"], "n": [3]}
