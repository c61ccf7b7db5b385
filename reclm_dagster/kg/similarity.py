"""Item-item similarity from shared KG entities, weighted by inverse entity frequency."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.kg._sparse import blockwise_top_k
from reclm_dagster.kg.build import KnowledgeGraph, item_node

# Nodes that are not descriptive entities: item-item and user edges say nothing about content.
_NON_CONTENT_PREFIXES = ("item:", "user:")


def item_entity_matrix(
    kg: KnowledgeGraph, item_ids: Sequence[str]
) -> tuple[sp.csr_matrix, list[str]]:
    """Binary item x entity matrix (rows aligned to ``item_ids``) and the entity id of each column.

    Only item -> content-entity triples count; items without facts get empty rows.
    """
    row_of = {item_node(i): r for r, i in enumerate(item_ids)}
    t = kg.triples
    heads = t["head"].map(row_of)
    is_content = ~t["tail"].str.startswith(_NON_CONTENT_PREFIXES)
    t = t[heads.notna() & is_content]
    rows = heads[t.index].to_numpy(dtype=np.int64)
    col_codes, entity_ids = pd.factorize(t["tail"])
    m = sp.csr_matrix(
        (np.ones(len(t)), (rows, col_codes)), shape=(len(item_ids), len(entity_ids))
    )
    m.sum_duplicates()
    m.data[:] = 1.0  # the same entity via two relations (actor and director) counts once
    return m, [str(e) for e in entity_ids]


def entity_idf(matrix: sp.csr_matrix) -> np.ndarray:
    """idf = log(n_items / df); an entity every item has carries no signal (0)."""
    n = matrix.shape[0]
    df = np.asarray((matrix > 0).sum(axis=0)).ravel().astype(float)
    idf = np.zeros_like(df)
    nz = df > 0
    idf[nz] = np.log(n / df[nz])
    return idf


def kg_item_similarity(
    kg: KnowledgeGraph,
    item_ids: Sequence[str],
    top_k: int = 20,
    block_size: int = 2048,
) -> sp.csr_matrix:
    """Cosine over idf-weighted item x entity rows; ``top_k`` neighbours per item, no self-similarity.

    Returns an (n_items x n_items) CSR matrix aligned to ``item_ids``.
    """
    m, _ = item_entity_matrix(kg, item_ids)
    weighted = sp.csr_matrix(m @ sp.diags(entity_idf(m)))
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.csr_matrix(sp.diags(inv) @ weighted)
    unit.eliminate_zeros()
    return blockwise_top_k(unit, unit.T.tocsr(), k=top_k, min_value=0.0, block_size=block_size)
