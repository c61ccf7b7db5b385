"""Knowledge graph: entity merging, co-consumption, KG similarity and explanations."""

from reclm_dagster.kg.build import (
    KnowledgeGraph,
    build_knowledge_graph,
    co_consumption_triples,
    merge_triples,
    normalize_name,
)
from reclm_dagster.kg.explain import Explanation, explain, explain_many, item_facts, verify_path
from reclm_dagster.kg.similarity import entity_idf, item_entity_matrix, kg_item_similarity

__all__ = [
    "Explanation",
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
