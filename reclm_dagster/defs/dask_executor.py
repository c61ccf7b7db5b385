"""dagster-dask's executor, with each step's arguments handed to Dask as one opaque object.

dagster-dask 0.29.27 submits ``query_on_dask_worker(deps, recon_job, dagster_run, ...)`` with the
run as a plain argument; dask >= 2024.12 walks every tuple argument looking for futures
(``dask._task_spec.parse_input``), and a partitioned run's ``partitions_subset`` is a Dagster
``@record`` that refuses iteration, so every reclm run (one partition per dataset) failed before
its first step. Same executor otherwise: same config (``cluster: existing: address`` or
``local``), same worker function (``dagster_dask.executor.query_on_dask_worker``), steps ordered by
their upstream futures, results streamed back as they complete.
"""

from __future__ import annotations

import logging
import signal

import dagster as dg
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._utils import iterate_with_context
from dagster_dask.executor import DaskExecutor, dask_executor, get_dask_resource_requirements, query_on_dask_worker


class _StepCall:
    """The arguments of one step's call, in an object Dask does not look into."""

    def __init__(self, *args):
        self.args = args


_warned_sigterm_ignored = False


def _warn_if_sigterm_ignored() -> None:
    """Once per worker process: Dagster's compute-log capture stops the ``tail -F`` it starts for each
    step with SIGTERM (then waits 30 s for it, for stdout and for stderr). A worker started with SIGTERM
    ignored (SIG_IGN is inherited) hands that to the tails, so every step waits 60 s and leaves two
    ``tail`` processes behind. Start the workers with SIGTERM at its default."""
    global _warned_sigterm_ignored
    if not _warned_sigterm_ignored and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        _warned_sigterm_ignored = True
        logging.getLogger(__name__).warning(
            "this Dask worker ignores SIGTERM: each Dagster step will wait 60 s for its compute-log tails "
            "and leave them running; start the worker with SIGTERM at its default")


def _run_step(dependencies, call: _StepCall):
    # ``dependencies``: the upstream steps' futures, only so that Dask runs this after them
    _warn_if_sigterm_ignored()
    return query_on_dask_worker(dependencies, *call.args)


class OpaqueArgsDaskExecutor(DaskExecutor):
    def execute(self, plan_context, execution_plan):
        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError("Dask execution requires a persistent DagsterInstance")
        if self.cluster_type == "existing":
            cluster = self.cluster_configuration["address"]
        elif self.cluster_type == "local":
            cluster = dask.distributed.LocalCluster(**self.build_dict(plan_context.job_name))
        else:
            raise dg.DagsterInvariantViolationError(f"reclm's dask executor runs on 'existing' or 'local' clusters, not {self.cluster_type!r}")
        with dask.distributed.Client(cluster) as client:
            futures = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    upstream = [futures[key] for inp in step.step_inputs for key in inp.dependency_keys]
                    call = _StepCall(plan_context.reconstructable_job, plan_context.dagster_run, plan_context.run_config,
                                     [step.key], plan_context.instance.get_ref(), execution_plan.known_state)
                    futures[step.key] = client.submit(_run_step, upstream, call, key=f"{plan_context.job_name}.{step.key}",
                                                      resources=get_dask_resource_requirements(step.tags))
            done = dask.distributed.as_completed(list(futures.values()), with_results=True)
            for _future, events in iterate_with_context(raise_execution_interrupts, done):
                yield from events


@dg.executor(name="dask", config_schema=dask_executor.config_schema.as_field(),
             requirements=dg.multiple_process_executor_requirements())
def reclm_dask_executor(init_context):
    """``dagster_dask.dask_executor`` (same config) whose step arguments survive dask's input parsing."""
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return OpaqueArgsDaskExecutor(cluster_type, cluster_configuration)
