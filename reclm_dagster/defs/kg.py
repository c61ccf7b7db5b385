"""The knowledge graph of the catalogue: entities and triples with provenance, in DuckDB."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from reclm_dagster import checks, store
from reclm_dagster.defs.common import dataset_partitions, schema_of, table_meta
from reclm_dagster.kg import build_knowledge_graph, co_consumption_triples


@dg.multi_asset(
    specs=[
        dg.AssetSpec("kg_entities", group_name="knowledge_graph", deps=["items", "catalogue_facts", "user_links"],
                      description="Entities: items, people, genres, tags, brands, … with merged spellings."),
        dg.AssetSpec("kg_triples", group_name="knowledge_graph", deps=["items", "catalogue_facts", "user_links", "interactions"],
                      description="Triples (head, relation, tail, weight, provenance), incl. co-consumption from interactions."),
    ],
    partitions_def=dataset_partitions,
)
def knowledge_graph(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    schema = schema_of(context)
    with duckdb.get_connection() as con:
        items = store.read_df(con, schema, "items")
        facts = store.read_df(con, schema, "catalogue_facts")
        links = store.read_df(con, schema, "user_links")
        interactions = store.read_df(con, schema, "interactions", "user_id, item_id, weight")
    kg = build_knowledge_graph(items, facts, links, extra_triples=co_consumption_triples(interactions))
    entities = kg.entities.copy()
    entities["aliases"] = entities["aliases"].astype(str)
    with duckdb.get_connection() as con:
        store.replace_tables(con, schema, {"kg_entities": entities, "kg_triples": kg.triples})
    summary = kg.summary()
    context.log.info(f"knowledge graph: {summary}")
    per_type = {f"entities/{k}": v for k, v in summary["entities_per_type"].items()}
    per_relation = {f"triples/{k}": v for k, v in summary["triples_per_relation"].items()}
    yield dg.MaterializeResult(asset_key="kg_entities", metadata=table_meta(entities, **per_type))
    yield dg.MaterializeResult(asset_key="kg_triples", metadata=table_meta(kg.triples, **per_relation))


@dg.asset_check(asset="kg_triples", partitions_def=dataset_partitions, blocking=True, description="Every triple's head and tail is a stored entity.")
def triples_reference_entities(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        passed, meta = checks.triples_valid(con, schema_of(context))
    return dg.AssetCheckResult(passed=passed, metadata=meta)
