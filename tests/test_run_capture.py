"""`reclm run` executes the graph in this process without keeping every step's output alive."""

from __future__ import annotations

import dagster as dg

from reclm_dagster.cli_run import execute_in_process


def test_a_local_run_keeps_no_step_output_in_memory_and_still_materializes(tmp_path):
    seen = []

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["d"]), io_manager_key="mem")
    def big(context) -> list:
        return list(range(100_000))

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["d"]), io_manager_key="mem")
    def after(context, big: list) -> int:
        seen.append(len(big))
        return len(big)

    defs = dg.Definitions(assets=[big, after], jobs=[dg.define_asset_job("all")],
                          resources={"mem": dg.InMemoryIOManager()})
    job = defs.resolve_job_def("all")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = execute_in_process(job, instance, "d", {}, None, {"who": "test"})
        assert result.success and seen == [100_000]  # the downstream asset read its input
        materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
        assert materialized == {"big", "after"}
        assert result.dagster_run.tags["who"] == "test" and result.dagster_run.tags["dagster/partition"] == "d"
        assert result._output_capture == {}  # nothing held for the result object
        captured = job.execute_in_process(instance=instance, partition_key="d")
        assert len(captured._output_capture) == 2  # what Dagster's own call would have kept
