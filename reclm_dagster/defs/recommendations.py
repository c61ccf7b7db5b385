"""Step 5 — KG-enriched recommendation lists: each item with its facts and a true explanation."""


import json

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from reclm_dagster import checks, settings, store
from reclm_dagster.defs.common import dataset_partitions, run_id_of, schema_of, table_meta, profiled
from reclm_dagster.kg import KnowledgeGraph, explain_many
from reclm_dagster.kg.coverage import credible_evidence
from reclm_dagster.kg.evidence import tag_user_counts
from reclm_dagster.kg.build import node_type, node_value
from reclm_dagster.kg.coverage import explanation_coverage

FACT_LIMIT = 5  # entities shown per relation in a list


def facts_by_item(kg: KnowledgeGraph, item_ids) -> dict[str, str]:
    """item_id -> JSON {relation: [entity names]} from the graph's content triples."""
    t = kg.triples
    heads = {f"item:{i}" for i in item_ids}
    t = t[t["head"].isin(heads) & ~t["tail"].map(node_type).isin({"item", "user"})]
    names = kg.entities.set_index("entity_id")["name"]
    t = t.assign(name=t["tail"].map(names).fillna(t["tail"].map(node_value)))
    t = t.sort_values(["head", "relation", "weight"], ascending=[True, True, False])
    out: dict[str, str] = {}
    for head, group in t.groupby("head", sort=False):
        facts = {rel: list(g["name"].head(FACT_LIMIT)) for rel, g in group.groupby("relation", sort=False)}
        out[node_value(head)] = json.dumps(facts, ensure_ascii=False)
    return out


def matched_terms_fn(descriptions: pd.DataFrame, tokens: pd.DataFrame):
    """(user, item) -> the user's own words that also occur in the item's text."""
    desc_tok = tokens[tokens["source"] == "description"].set_index("id")["tokens"]
    user_words: dict[str, set[str]] = {}
    for user, did in zip(descriptions["user_id"].astype(str), descriptions["description_id"].astype(str)):
        if did in desc_tok.index:
            user_words.setdefault(user, set()).update(desc_tok[did])
    item_words = {i: set(t) for i, t in tokens[tokens["source"] == "item"].set_index("id")["tokens"].items()}

    def fn(user: str, item: str) -> list[str]:
        words = user_words.get(user, set()) & item_words.get(item, set())
        return sorted(words, key=len, reverse=True)[:3]

    return fn


def lists_info(con, schema: str, run_id: str) -> pd.DataFrame:
    """The raw tables' fingerprint (and the run that ingested them) these lists are built from."""
    from reclm_dagster.datasets import INGEST_INFO_TABLE

    info = store.read_df(con, schema, INGEST_INFO_TABLE) if store.table_exists(con, schema, INGEST_INFO_TABLE) else pd.DataFrame()
    first = info.iloc[0] if len(info) else {}
    return pd.DataFrame({
        "run_id": [run_id],
        "built_at": [pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)],
        "ingest_run_id": pd.Series([first.get("run_id")], dtype="string"),
        "fingerprint": pd.Series([first.get("fingerprint")], dtype="string"),
    })


# The resource is kept for ingest_info (the raw tables' fingerprint the lists record), not an asset.
@dg.asset(
    group_name="recommendations",
    partitions_def=dataset_partitions,
    ins={
        "interactions": dg.AssetIn(metadata={"columns": ["user_id", "item_id", "weight"]}),
        "descriptions": dg.AssetIn(metadata={"columns": ["description_id", "user_id", "item_id", "kind", "text"]}),
        "text_tokens": dg.AssetIn(metadata={"columns": ["source", "id", "tokens"]}),
        "items": dg.AssetIn(metadata={"columns": ["item_id", "title", "domain"]}),
        "kg_mentions": dg.AssetIn(metadata={"columns": ["user_id", "entity_id", "surface", "kind"]}),
    },
    description="Per user, the top items with per-signal scores, knowledge-graph facts and a one-line explanation built from edges that exist.",
)
@profiled
def recommendations(context: dg.AssetExecutionContext, user_item_scores: pd.DataFrame, interactions: pd.DataFrame,
                    descriptions: pd.DataFrame, text_tokens: pd.DataFrame, items: pd.DataFrame, kg_entities: pd.DataFrame,
                    kg_triples: pd.DataFrame, kg_mentions: pd.DataFrame, duckdb: DuckDBResource) -> dg.Output:
    schema = schema_of(context)
    length = int(settings.load_config().get("list_length", 20))
    recs = user_item_scores[user_item_scores["rank"] <= length].reset_index(drop=True)
    tokens, mentions = text_tokens, kg_mentions
    kg = KnowledgeGraph(entities=kg_entities, triples=kg_triples)
    with duckdb.get_connection() as con:
        built_from = lists_info(con, schema, run_id_of(context))
    titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str)))
    explained = explain_many(recs, interactions, kg, matched_terms_fn=matched_terms_fn(descriptions, tokens), titles=titles,
                             mentions=mentions, descriptions=descriptions)
    facts = facts_by_item(kg, recs["item_id"].unique())
    table = explained.merge(items, on="item_id", how="left")
    table["facts"] = table["item_id"].map(facts).fillna("{}")
    table = table.sort_values(["user_id", "rank"]).reset_index(drop=True)
    kinds = table["explanation_kind"].value_counts(normalize=True).round(3).to_dict()
    # coverage counts only top-10 items whose stated path was verified edge by edge in the graph
    coverage = explanation_coverage(table, kg, k=10, interactions=interactions, mentions=mentions)
    # ...and how many cite something credible: a catalogue fact, a tag ≥ MIN_TAG_USERS people gave, the user's own words
    credible = credible_evidence(table, kg, 10, tag_user_counts(descriptions, mentions), mentions)
    shown = table[["user_id", "rank", "title", "score", "explanation"]]
    return dg.Output(
        # the lists and what they were built from, in one transaction: a kill never leaves half of them
        {"recommendations": table, store.LISTS_INFO_TABLE: built_from},
        metadata=table_meta(
            shown,
            n_users=int(table["user_id"].nunique()),
            list_length=length,
            explanation_coverage_top10=round(float(coverage["coverage"]), 4),
            explanation_unfaithful=int(coverage["unfaithful"]),
            explanation_credible_top10=round(float(credible["credible"]), 4),
            **{f"explanation_kind/{k}": v for k, v in kinds.items()},
        )
    )


@dg.asset_check(asset=recommendations, partitions_def=dataset_partitions, blocking=True,
                description="No duplicate (user, item), no item the user already consumed, every explanation path exists in the graph.")
def recommendations_are_valid(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        passed, meta = checks.recommendations_valid(con, schema_of(context))
    return dg.AssetCheckResult(passed=passed, metadata=meta)
