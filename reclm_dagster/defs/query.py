"""Step 7 — the request index: the items as a free-text request sees them, stored once per run.

`reclm recommend --query` and `reclm serve` read it (``serving.QueryIndex``) instead of
rebuilding it from every description's embedding on each call; it is used only while its
fingerprint (raw tables, encoder, the chosen said-share) matches what is stored.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings, store
from reclm_dagster.defs.common import dataset_partitions, profiled, schema_of
from reclm_dagster.defs.selection import TABLE_INPUTS
from reclm_dagster.serving import QUERY_ITEMS_TABLE, query_items_fingerprint, query_items_table
from reclm_dagster.training import DatasetTables, chosen_hybrid_config


@dg.asset(
    group_name="serving",
    partitions_def=dataset_partitions,
    deps=["hybrid_selection", *TABLE_INPUTS],  # hybrid_selection: the said-share the item text is mixed with
    description="Every item's vector and tokens as a request is matched against them (catalogue text plus what "
                "users said), so a request reads them instead of rebuilding them from every description.",
)
@profiled
def query_index(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    schema = schema_of(context)
    with duckdb.get_connection() as con:
        tables = DatasetTables.load(con, schema)
        config = chosen_hybrid_config(con, schema, settings.load_config())
        fingerprint = query_items_fingerprint(con, schema, tables.encoder_version, config)
    table = query_items_table(tables, config, fingerprint)
    with duckdb.get_connection() as con:
        store.replace_tables(con, schema, {QUERY_ITEMS_TABLE: table})
    return dg.MaterializeResult(metadata={
        "dagster/row_count": table.num_rows, "dims": int(tables.item_vectors.shape[1]) if tables.item_vectors.ndim == 2 else 0,
        "encoder_version": tables.encoder_version,
        "tokens_per_item": round(sum(map(len, table.column("tokens").to_pylist())) / max(table.num_rows, 1), 1),
    })
