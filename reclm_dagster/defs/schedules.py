"""daily_refresh_schedule: every night at 03:00 (UTC), recompute every dataset partition.

One run per partition of the ``datasets`` dynamic partitions, with the date in the run_key
so a tick never launches the same dataset twice on one day.

What "recompute" covers depends on the partition:
- already materialized (its ``items`` partition has a materialization): everything
  downstream of the raw tables — tokens, embeddings (mostly from the cache), similarity,
  graph, lists and the evaluation (logged to MLflow). The raw tables are *not* reloaded
  from the source folder: that would drop the rows the inbox sensor appended.
- never materialized: the whole graph, raw tables included.
"""

from __future__ import annotations

import dagster as dg

from reclm_dagster.defs.common import dataset_partitions
from reclm_dagster.defs.jobs import full_pipeline_job
from reclm_dagster.defs.sensors import derived_asset_keys


@dg.schedule(
    job=full_pipeline_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily 03:00: recompute tokens → embeddings → similarity → graph → lists → evaluation for every dataset partition.",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    datasets = sorted(context.instance.get_dynamic_partitions(dataset_partitions.name))
    if not datasets:
        return dg.SkipReason("no dataset partitions yet (`reclm run --dataset NAME` adds one)")
    stored = context.instance.get_materialized_partitions(dg.AssetKey("items"))
    derived = derived_asset_keys(context)
    return [
        dg.RunRequest(
            run_key=f"daily-{day}-{dataset}",
            partition_key=dataset,
            asset_selection=derived if dataset in stored else None,  # None: the whole job
            tags={"reclm/trigger": "daily_refresh", "reclm/date": day},
        )
        for dataset in datasets
    ]
