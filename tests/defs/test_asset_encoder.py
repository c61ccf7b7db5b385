"""encoder_finetuned: trained only when asked for; a whole-graph, scheduled or sensor run skips it."""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from defs_fixture import DATASET, ctx
from reclm_dagster.defs.common import dataset_partitions
from reclm_dagster.defs.encoder import encoder_finetuned, requested_explicitly
from reclm_dagster.defs.resources import MLflowResource


def test_a_direct_call_is_an_explicit_request():
    assert requested_explicitly(ctx())


def test_a_scheduled_run_skips_it_without_a_materialization(db_after, home):
    db = db_after("raw")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(dataset_partitions.name, [DATASET])
    result = dg.materialize(
        [encoder_finetuned],
        partition_key=DATASET,
        instance=instance,
        resources={"duckdb": DuckDBResource(database=str(db)), "mlflow": MLflowResource()},
        tags={"reclm/trigger": "daily_refresh"},
    )
    assert result.success
    assert result.asset_materializations_for_node("encoder_finetuned") == []
    assert not list((home / "encoders").glob("*"))  # nothing trained, nothing written
    logs = [e.message for e in instance.all_logs(result.run_id) if e.user_message]
    assert any("trained only when asked for" in m for m in logs)
