"""The knowledge graph of the catalogue: entities, relations and triples with provenance, and the
entity mentions in users' own words, in DuckDB."""


import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from reclm_dagster import checks, settings, store
from reclm_dagster.defs.common import dataset_partitions, preview, schema_of, table_meta, profiled
from reclm_dagster.defs.io_manager import WRITTEN_BY_ASSET
from reclm_dagster.defs.resources import EncoderResource
from reclm_dagster.defs.text import text_tokens
from reclm_dagster.kg import build_knowledge_graph, co_consumption_triples
from reclm_dagster.encoders.cache import CachedEncoder
from reclm_dagster.kg.linking import EntityLinker, link_descriptions, mention_summary

# Co-consumption partners kept per item. One common user is enough: in the long tail (an
# artist with a single listener) it is the only link there is, and explanations say
# "a listener of A" rather than "listeners of A" for it.
CO_TOP_K = 10
CO_MIN_COMMON = 1


def _kg_config() -> dict:
    return dict(settings.load_config().get("kg", {}) or {})


_RAW = ("items", "catalogue_facts", "descriptions", "user_links")


# The three tables are committed together by the asset (WRITTEN_BY_ASSET): never a graph whose
# triples name entities of another run. The IO manager records their metadata and loads them.
@dg.multi_asset(
    outs={
        "kg_entities": dg.AssetOut(group_name="knowledge_graph", metadata={WRITTEN_BY_ASSET: True},
                                   description="Entities (id, type, name, aliases): items, people, genres, tags, brands, … with merged spellings."),
        "kg_triples": dg.AssetOut(group_name="knowledge_graph", metadata={WRITTEN_BY_ASSET: True},
                                  description="Triples (head, relation, tail, weight, provenance), incl. co-consumption from interactions."),
        "kg_relations": dg.AssetOut(group_name="knowledge_graph", metadata={WRITTEN_BY_ASSET: True},
                                    description="One row per relation and head/tail type: counts, what the weight counts, a readable label."),
    },
    ins={"interactions": dg.AssetIn(metadata={"columns": ["user_id", "item_id", "weight"]})},
    internal_asset_deps={"kg_entities": {dg.AssetKey(t) for t in _RAW},
                         "kg_triples": {dg.AssetKey(t) for t in (*_RAW, "interactions")},
                         "kg_relations": {dg.AssetKey(t) for t in (*_RAW, "interactions")}},
    partitions_def=dataset_partitions,
)
@profiled
def knowledge_graph(context: dg.AssetExecutionContext, items: pd.DataFrame, catalogue_facts: pd.DataFrame,
                    descriptions: pd.DataFrame, user_links: pd.DataFrame, interactions: pd.DataFrame, duckdb: DuckDBResource):
    schema = schema_of(context)
    facts, links = catalogue_facts, user_links
    co = co_consumption_triples(interactions, min_common=CO_MIN_COMMON, top_k=CO_TOP_K)
    kg = build_knowledge_graph(items, facts, links, extra_triples=co, descriptions=descriptions)
    entities = kg.entities.copy()
    entities["aliases"] = entities["aliases"].astype(str)
    relations = kg.relations()
    with duckdb.get_connection() as con:
        store.replace_tables(con, schema, {"kg_entities": entities, "kg_triples": kg.triples, "kg_relations": relations})
    summary = kg.summary()
    context.log.info(f"knowledge graph: {summary}")
    per_type = {f"entities/{k}": v for k, v in summary["entities_per_type"].items()}
    per_relation = {f"triples/{k}": v for k, v in summary["triples_per_relation"].items()}
    n_aliased = int((entities["aliases"] != "").sum())
    yield dg.Output(entities, output_name="kg_entities", metadata=table_meta(
        entities, n_entities=summary["n_entities"], n_with_aliases=n_aliased, **per_type))
    yield dg.Output(kg.triples, output_name="kg_triples", metadata=table_meta(
        kg.triples, n_triples=summary["n_triples"], n_relations=len(per_relation), **per_relation))
    yield dg.Output(relations, output_name="kg_relations", metadata={
        "dagster/row_count": len(relations),
        "preview": preview(relations[["relation", "label", "head_type", "tail_type", "n_triples", "n_heads", "n_tails"]], rows=20),
    })


# text_tokens is upstream for order only: it stores the dataset's encoder choice the linker reads
# (through the resource, which the linker's embedding cache also needs).
@dg.asset(
    group_name="knowledge_graph",
    partitions_def=dataset_partitions,
    ins={"descriptions": dg.AssetIn(metadata={"columns": ["description_id", "user_id", "item_id", "kind", "text"]})},
    deps=[text_tokens],
    description="Entity mentions in users' descriptions: one row per mention with span, surface text, entity, method (exact | alias | embedding) and score.",
)
@profiled
def kg_mentions(context: dg.AssetExecutionContext, descriptions: pd.DataFrame, kg_entities: pd.DataFrame,
                duckdb: DuckDBResource, encoder: EncoderResource) -> dg.Output:
    schema = schema_of(context)
    cfg = _kg_config()
    use_embeddings = bool(cfg.get("link_embeddings", True))
    threshold = float(cfg.get("link_threshold", 0.65))
    with duckdb.get_connection() as con:
        linker_encoder = None
        if use_embeddings and len(descriptions):
            linker_encoder = CachedEncoder(encoder.for_dataset(con, schema), con)
        linker = EntityLinker(kg_entities, encoder=linker_encoder, threshold=threshold)
        mentions = link_descriptions(descriptions, linker)
    summary = mention_summary(mentions, descriptions)
    context.log.info(f"entity mentions: {summary}")
    shown = mentions[["description_id", "surface", "entity_id", "method", "score"]]
    return dg.Output(mentions, metadata=table_meta(shown, link_embeddings=use_embeddings, link_threshold=threshold, **summary))


@dg.asset_check(asset="kg_triples", partitions_def=dataset_partitions, blocking=True, description="Every triple's head and tail is a stored entity.")
def triples_reference_entities(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        passed, meta = checks.triples_valid(con, schema_of(context))
    return dg.AssetCheckResult(passed=passed, metadata=meta)


@dg.asset_check(asset=kg_mentions, partitions_def=dataset_partitions, blocking=True,
                description="Every mention names a stored entity and its span holds the surface text.")
def mentions_are_valid(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        passed, meta = checks.mentions_valid(con, schema_of(context))
    return dg.AssetCheckResult(passed=passed, metadata=meta)
