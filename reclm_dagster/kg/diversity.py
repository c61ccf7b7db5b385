"""KG-aware diversity: MMR re-ranking over shared entities, and intra-list diversity.

Two items are similar when they share entities: the cosine of their binary item x entity
rows (two films by the same director in the same genre are close; a film and a phone are 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp


def _unit_rows(item_entity_matrix: sp.spmatrix, rows: np.ndarray) -> sp.csr_matrix:
    m = sp.csr_matrix(item_entity_matrix, dtype=np.float64)[rows]
    m.data[:] = (m.data != 0).astype(np.float64)
    norms = np.sqrt(np.asarray(m.sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def entity_similarity(item_entity_matrix: sp.spmatrix, rows: Sequence[int]) -> np.ndarray:
    """Dense cosine between the entity sets of the given items (rows of the matrix)."""
    u = _unit_rows(item_entity_matrix, np.asarray(rows, dtype=np.int64))
    return np.asarray((u @ u.T).toarray())


def mmr_rerank(
    candidates: Sequence[int],
    scores: Sequence[float],
    item_entity_matrix: sp.spmatrix,
    lambda_: float = 0.7,
    k: int = 10,
) -> list[int]:
    """Maximal marginal relevance: pick ``k`` of ``candidates`` (rows of ``item_entity_matrix``).

    Each step takes ``argmax lambda_ * score(i) - (1 - lambda_) * max_{j picked} sim(i, j)``
    (ties: the earlier candidate). ``lambda_ = 1`` keeps the order by score; scores are used
    as given, so put them on the similarity's 0..1 scale (e.g. min-max) first.
    """
    cand = np.asarray(candidates, dtype=np.int64)
    rel = np.asarray(scores, dtype=np.float64)
    if cand.shape != rel.shape:
        raise ValueError("candidates and scores differ in length")
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError("lambda_ must be in [0, 1]")
    k = min(int(k), len(cand))
    if k <= 0:
        return []
    sim = entity_similarity(item_entity_matrix, cand)
    picked: list[int] = []
    max_sim = np.zeros(len(cand))
    available = np.ones(len(cand), dtype=bool)
    for _ in range(k):
        gain = lambda_ * rel - (1.0 - lambda_) * max_sim
        gain[~available] = -np.inf
        best = int(np.argmax(gain))  # first maximum = earlier candidate on ties
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sim[best])
    return [int(cand[p]) for p in picked]


def intra_list_diversity(lists: Iterable[Sequence[int]], item_entity_matrix: sp.spmatrix) -> float:
    """Mean over lists of the mean pairwise ``1 - cosine`` of the items' entity sets.

    Lists with fewer than two items are skipped; 0.0 when no list qualifies.
    """
    values = []
    for items in lists:
        rows = np.asarray(list(items), dtype=np.int64)
        n = len(rows)
        if n < 2:
            continue
        sim = entity_similarity(item_entity_matrix, rows)
        upper = sim[np.triu_indices(n, k=1)]
        values.append(float(np.mean(1.0 - upper)))
    return float(np.mean(values)) if values else 0.0
