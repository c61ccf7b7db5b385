"""Shared pieces of the Dagster wiring: the dataset partitions and metadata helpers."""


import warnings

import dagster as dg
import pandas as pd

from reclm_dagster import settings

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
