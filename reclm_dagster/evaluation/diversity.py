"""KG-aware diversity in the offline evaluation: MMR re-ranking and intra-list diversity.

``mmr_scorer`` wraps any scorer: per user it takes the top ``n_candidates`` unconsumed
items, re-orders the first ``k`` of them by maximal marginal relevance over the items'
entity sets (``kg/diversity.py``, scores min-max scaled to the similarity's 0..1 range),
and leaves every other item below them in its original order. The evaluation reports it
as its own model next to the hybrid, with ``ild@10`` (mean pairwise 1 − entity cosine of
the top 10) for both, so the accuracy cost of diversity is visible.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from reclm_dagster.kg.diversity import intra_list_diversity, mmr_rerank
from reclm_dagster.models.ranking import topk


def mmr_scorer(score_fn, history: sp.csr_matrix, item_entity: sp.spmatrix, lambda_: float = 0.7,
               n_candidates: int = 50, k: int = 20):
    history = sp.csr_matrix(history)

    def scores(rows: np.ndarray) -> np.ndarray:
        S = np.asarray(score_fn(rows), dtype=np.float32)
        idx, vals = topk(S, min(n_candidates, S.shape[1]), exclude=history[rows])
        out = S.copy()
        top = np.nanmax(np.where(np.isfinite(S), S, np.nan), axis=1)
        for r in range(len(rows)):
            ok = idx[r] >= 0
            cand, rel = idx[r][ok], vals[r][ok].astype(np.float64)
            if len(cand) < 2:
                continue
            span = rel.max() - rel.min()
            rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
            order = mmr_rerank(cand, rel, item_entity, lambda_=lambda_, k=min(k, len(cand)))
            # MMR's picks go above everything else, in MMR order
            out[r, order] = top[r] + 1.0 + np.arange(len(order), 0, -1, dtype=np.float32)
        return out

    return scores


def list_diversity(score_fns: dict, users: np.ndarray, history: sp.csr_matrix, item_entity: sp.spmatrix, k: int = 10,
                   batch_size: int = 512) -> dict[str, float]:
    """``ild@k`` of each scorer: intra-list diversity of the users' top-``k`` unconsumed items over item
    entities. The scorers see each batch of users in turn, so they may share one batch's scores."""
    history = sp.csr_matrix(history)
    lists: dict[str, list[np.ndarray]] = {name: [] for name in score_fns}
    for start in range(0, len(users), batch_size):
        rows = users[start : start + batch_size]
        for name, score_fn in score_fns.items():
            idx, _ = topk(np.asarray(score_fn(rows), np.float32), k, exclude=history[rows])
            lists[name] += [row[row >= 0] for row in idx]
    return {name: intra_list_diversity(top, item_entity) for name, top in lists.items()}
