"""Shared pieces of the Dagster wiring: the dataset partitions and metadata helpers."""


import functools
import inspect
import time
import warnings

import dagster as dg
import pandas as pd

from reclm_dagster import settings
from reclm_dagster.profiling import peak_rss_mb, rss_mb

# Asset checks are partitioned like their assets (one result per dataset); Dagster 1.13
# still labels partitioned checks "preview", which is fine for a local pipeline.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

# One partition per dataset name (a folder under RECLM_DATA_DIR, or 'demo'): runs on
# several datasets live side by side, each in its own DuckDB schema.
dataset_partitions = dg.DynamicPartitionsDefinition(name="datasets")


def schema_of(context: dg.AssetExecutionContext) -> str:
    return settings.schema_name(context.partition_key)


def run_id_of(context) -> str:
    """The run's id from an asset or check context; 'EPHEMERAL' when a test calls the function directly."""
    try:
        return context.run.run_id
    except dg.DagsterError:  # DagsterInvalidPropertyError on direct invocation: there is no run
        return "EPHEMERAL"


def preview(df: pd.DataFrame, rows: int = 5, max_chars: int = 60) -> dg.MarkdownMetadataValue:
    """A markdown preview of a table's first rows, long cells shortened."""
    head = df.head(rows).copy()
    for col in head.columns:
        head[col] = head[col].map(lambda v: (s if len(s := str(v)) <= max_chars else s[: max_chars - 1] + "…"))
    return dg.MetadataValue.md(head.to_markdown(index=False))


def table_meta(df: pd.DataFrame, **extra: object) -> dict[str, object]:
    return {"dagster/row_count": len(df), "preview": preview(df), **extra}


STEP_SECONDS, STEP_PEAK_RSS, STEP_RSS_BEFORE = "step_seconds", "step_peak_rss_mb", "step_rss_before_mb"


def _with_profile(result, start: float, rss_before: float):
    if not isinstance(result, dg.MaterializeResult | dg.Output):
        return result
    profile = {STEP_SECONDS: round(time.perf_counter() - start, 2), STEP_PEAK_RSS: round(peak_rss_mb(), 1),
               STEP_RSS_BEFORE: round(rss_before, 1)}
    if isinstance(result, dg.Output):  # a value for the IO manager: keep it, add to its metadata
        return result.with_metadata({**(result.metadata or {}), **profile})
    return result._replace(metadata={**(result.metadata or {}), **profile})


def profiled(fn):
    """Add the step's seconds and the process's peak RSS (MiB) to every Output or MaterializeResult an asset
    returns or yields (issue 13.1; peak RSS is monotonic, so the step where it jumps allocated).
    `benchmarks/pipeline.py` reads them back into a per-step table."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            start, before = time.perf_counter(), rss_mb()
            for result in fn(*args, **kwargs):
                yield _with_profile(result, start, before)
        return gen

    @functools.wraps(fn)
    def run(*args, **kwargs):
        start, before = time.perf_counter(), rss_mb()
        return _with_profile(fn(*args, **kwargs), start, before)
    return run
