"""Step 7 — the request index: the items as a free-text request sees them, stored once per run.

`reclm recommend --query` and `reclm serve` read it (``serving.QueryIndex``) instead of
rebuilding it from every description's embedding on each call; it is used only while its
fingerprint (raw tables, encoder, the chosen said-share) matches what is stored.
"""

import dagster as dg
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings
from reclm_dagster.defs.common import dataset_partitions, profiled, schema_of
from reclm_dagster.defs.selection import SELECTION_IN, TABLE_INS, dataset_tables
from reclm_dagster.serving import (
    QUERY_ENTITY_KEYS_TABLE,
    QUERY_ITEMS_TABLE,
    entity_keys_fingerprint,
    entity_keys_table,
    query_items_fingerprint,
    query_items_table,
)
from reclm_dagster.training import chosen_config_from


@dg.asset(
    group_name="serving",
    partitions_def=dataset_partitions,
    ins={**TABLE_INS, "hybrid_selection": SELECTION_IN},  # hybrid_selection: the said-share items' text is mixed with
    description="Every item's vector and tokens as a request is matched against them (catalogue text plus what "
                "users said), and the graph's entity dictionary a request is linked with (table query_entity_keys), "
                "so a request reads them instead of rebuilding them from every description and entity.",
)
@profiled
def query_index(context: dg.AssetExecutionContext, items: pd.DataFrame, interactions: pd.DataFrame,
                descriptions: pd.DataFrame, catalogue_facts: pd.DataFrame, text_tokens: pd.DataFrame,
                text_embeddings: pa.Table, hybrid_selection: dict[str, pd.DataFrame], kg_entities: pd.DataFrame,
                duckdb: DuckDBResource) -> dg.Output:  # duckdb: the stored raw tables' fingerprint
    tables = dataset_tables(items, interactions, descriptions, catalogue_facts, text_tokens, text_embeddings)
    config = chosen_config_from(hybrid_selection, settings.load_config())
    with duckdb.get_connection() as con:
        fingerprint = query_items_fingerprint(con, schema_of(context), tables.encoder_version, config)
        keys = entity_keys_table(kg_entities, entity_keys_fingerprint(con, schema_of(context), fingerprint))
    table = query_items_table(tables, config, fingerprint)
    return dg.Output({QUERY_ITEMS_TABLE: table, QUERY_ENTITY_KEYS_TABLE: keys}, metadata={
        "dagster/row_count": table.num_rows, "encoder_version": tables.encoder_version, "entity_keys": len(keys),
        "dims": int(tables.item_vectors.shape[1]) if tables.item_vectors.ndim == 2 else 0,
        "tokens_per_item": round(sum(map(len, table.column("tokens").to_pylist())) / max(table.num_rows, 1), 1),
    })
