"""Running the asset graph for a command: `reclm run`, `eval` and `finetune` all start it here.

Apart from cli.py so that the subcommands' modules (cli_finetune.py) need not import cli.py.
"""

from __future__ import annotations

import sys
import time

from reclm_dagster import recovery, settings
from reclm_dagster.serving import ReclmError


def _check_dataset(name: str) -> None:
    """Fail before starting a Dagster run when the dataset's folder is missing."""
    from reclm_dagster.datasets import DatasetNotFound, dataset_folder

    if name == settings.DEFAULT_DATASET:
        return
    try:
        dataset_folder(name, settings.data_dir())
    except DatasetNotFound as exc:
        raise ReclmError(f"unknown dataset '{name}': {exc}") from None


def check_evaluation_config() -> None:
    """A bad ``evaluation`` knob in the config is the user's mistake: one line before any step runs
    (the assets parse it with ``EvaluationProtocol.from_config``, deep inside a run)."""
    import os

    from reclm_dagster.evaluation.holdout import EvaluationProtocol

    try:
        EvaluationProtocol.from_config(settings.load_config())
    except (ValueError, TypeError) as exc:
        path = os.environ.get("RECLM_CONFIG") or "assets/config/default.yaml"
        raise ReclmError(f"{path}: evaluation: {exc}") from None


def _execute(dataset: str, encoder: str, log_level: str, asset_names: list[str] | None = None, ops_config: dict | None = None):
    """Run the asset graph (or a part of it) for one dataset through the Dagster instance in RECLM_HOME."""
    _check_dataset(dataset)
    check_evaluation_config()
    from reclm_dagster.defs.resources import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from reclm_dagster.definitions import build_definitions

    instance = dg.DagsterInstance.get()
    recovery.recover_orphaned_runs(instance)  # runs a killed reclm left unfinished end as failed
    if not instance.has_dynamic_partition("datasets", dataset):
        instance.add_dynamic_partitions("datasets", [dataset])
    start = time.perf_counter()
    with recovery.mlflow_owner_tags():  # MLflow runs this run starts carry our pid as well
        result = run_graph(
            instance, dataset,
            run_config={
                "ops": ops_config or {},
                # No encoder given: the run reads the dataset's stored choice (defs/resources.EncoderResource).
                "resources": {"encoder": {"config": {"model": encoder} if encoder is not None else {}}},
                "loggers": {"console": {"config": {"log_level": log_level}}},
            },
            asset_names=asset_names,
            tags={"reclm/cli": "run" if not asset_names else "eval", **recovery.owner_tags()},
        )
    seconds = time.perf_counter() - start
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                err = event.step_failure_data.error
                cause = err.cause if err and err.cause else err
                message = cause.message.strip().splitlines()[-1] if cause and cause.message.strip() else "see the Dagster UI"
                print(f"reclm: step {event.step_key} failed: {message}", file=sys.stderr)
        raise ReclmError(f"run {result.run_id} failed; `reclm ui` shows its logs")
    return result, seconds


def run_graph(instance, dataset: str, run_config: dict, asset_names: list[str] | None = None, tags: dict | None = None):
    """One run of ``reclm_full`` for a dataset, on the deployment's executor: in this process
    (local), or through the Dask executor (distributed), whose workers rebuild the job from
    ``definitions.reclm_full_job`` in their own processes. Returns a finished result with
    ``success``, ``run_id`` and ``all_events``."""
    import dagster as dg

    from reclm_dagster.definitions import build_definitions, reclm_full_job

    selection = [dg.AssetKey(n) for n in asset_names] if asset_names else None
    if settings.deployment() == settings.LOCAL:
        return execute_in_process(build_definitions().resolve_job_def("reclm_full"), instance, dataset, run_config,
                                  selection, tags or {})
    with dg.execute_job(dg.reconstructable(reclm_full_job), instance=instance, run_config=run_config,
                        tags={**(tags or {}), "dagster/partition": dataset}, asset_selection=selection) as result:
        return result  # success, run_id and all_events need no open context


def execute_in_process(job_def, instance, partition_key: str, run_config: dict, asset_selection, tags: dict):
    """``JobDefinition.execute_in_process`` without keeping every step's output in memory.

    Dagster's in-process execution captures each output for the result object until the run
    ends (2.2 GB of tables by the Last.fm run's model selection); the IO manager has stored
    them already and nothing here reads them back from the result. The public alternative,
    ``execute_job`` with the in-process executor, caches the job definition per process, and
    with it the DuckDB path of the first RECLM_HOME a process ran with. These private calls are
    the ones ``execute_in_process`` makes (dagster is pinned), with capture switched off.
    """
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.execute_in_process import (
        core_execute_in_process,
        merge_run_tags,
        type_check_and_normalize_args,
    )

    run_config, _, asset_selection, _, partition_key, _ = type_check_and_normalize_args(
        run_config=run_config, partition_key=partition_key, asset_selection=asset_selection)
    job = job_def.as_ephemeral_job(resource_defs={}, input_values={}, asset_selection=asset_selection)
    return core_execute_in_process(
        job=InMemoryJob(job_def=job), run_config=run_config, instance=instance, output_capturing_enabled=False,
        raise_on_error=False, asset_selection=frozenset(asset_selection),
        run_tags=merge_run_tags(job_def=job_def, partition_key=partition_key, tags=tags, asset_selection=asset_selection,
                                instance=instance, run_config=run_config))


def _materialized(dataset: str, table: str) -> bool:
    import duckdb

    from reclm_dagster import store

    if not settings.duckdb_path().exists():
        return False
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        return store.table_exists(con, settings.schema_name(dataset), table)
