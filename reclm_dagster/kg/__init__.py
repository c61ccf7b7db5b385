"""Knowledge graph: entity merging, co-consumption, entity linking, KG similarity and signal,
explanations (with coverage/faithfulness checks) and KG-aware diversity."""

from reclm_dagster.kg.build import (
    KnowledgeGraph,
    build_knowledge_graph,
    co_consumption_triples,
    merge_triples,
    normalize_name,
    relations_table,
)
from reclm_dagster.kg.coverage import explanation_coverage, explanation_report
from reclm_dagster.kg.diversity import intra_list_diversity, mmr_rerank
from reclm_dagster.kg.linking import EntityLinker, link_descriptions, link_request
from reclm_dagster.kg.signals import KGScorer, kg_scores, mentions_matrix, user_entity_affinity
from reclm_dagster.kg.explain import Explanation, explain, explain_many, item_facts, verify_path
from reclm_dagster.kg.similarity import entity_idf, item_entity_matrix, kg_item_similarity

__all__ = [
    "EntityLinker",
    "Explanation",
    "KGScorer",
    "explanation_coverage",
    "explanation_report",
    "intra_list_diversity",
    "kg_scores",
    "link_descriptions",
    "link_request",
    "mentions_matrix",
    "mmr_rerank",
    "relations_table",
    "user_entity_affinity",
    "KnowledgeGraph",
    "build_knowledge_graph",
    "co_consumption_triples",
    "entity_idf",
    "explain",
    "explain_many",
    "item_entity_matrix",
    "item_facts",
    "kg_item_similarity",
    "merge_triples",
    "normalize_name",
    "verify_path",
]
