"""The one Definitions object of reclm's code location (loaded by `dagster dev` and `reclm`)."""

import dagster as dg

from reclm_dagster.defs import encoder, evaluation, ingest, kg, query, recommendations, selection, similarity, text
from reclm_dagster.defs.jobs import full_pipeline_job
from reclm_dagster.defs.resources import deployment_executor, reclm_resources
from reclm_dagster.defs.schedules import daily_refresh_schedule
from reclm_dagster.defs.sensors import inbox_sensor

_modules = [ingest, text, similarity, kg, recommendations, selection, evaluation, encoder, query]


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    """Built from the environment (RECLM_HOME, RECLM_DEPLOYMENT) at load time, so tests can point
    it elsewhere. ``deployment`` 'local' or 'distributed' (default: $RECLM_DEPLOYMENT, else local)."""
    return dg.Definitions(
        executor=deployment_executor(deployment),
        assets=dg.load_assets_from_modules(_modules),
        asset_checks=dg.load_asset_checks_from_modules(_modules),
        jobs=[full_pipeline_job],
        sensors=[inbox_sensor],
        schedules=[daily_refresh_schedule],
        resources=reclm_resources(deployment),
    )


defs = build_definitions()


def reclm_full_job() -> dg.JobDefinition:
    """The whole graph as a job other processes can rebuild (``dg.reconstructable``): what the
    Dask executor's workers import, in their own environment (RECLM_DEPLOYMENT and the rest)."""
    return build_definitions().resolve_job_def("reclm_full")
