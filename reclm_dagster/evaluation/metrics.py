"""Top-k ranking metrics with textbook definitions.

Inputs everywhere: ``ranked`` — 2-D int array (users × ≥k) of item indices,
best first, where -1 pads a position with no admissible item (never a hit);
``relevant`` — one collection of relevant item indices per user (sets,
arrays, or the rows of a csr matrix). Each metric returns the mean over users
or, with ``per_user=True``, one value per user. Users with no relevant items
get 0 for every accuracy metric (the protocol never evaluates them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import scipy.sparse as sp

Relevant = Sequence[Collection[int]] | sp.spmatrix


def _relevant_sets(relevant: Relevant) -> list[set[int]]:
    if sp.issparse(relevant):
        R = sp.csr_matrix(relevant)
        return [set(R.indices[R.indptr[u] : R.indptr[u + 1]].tolist()) for u in range(R.shape[0])]
    return [set(int(i) for i in r) for r in relevant]


def hit_matrix(ranked: np.ndarray, relevant: Relevant, k: int) -> np.ndarray:
    """Boolean users × k: is the item at rank r relevant for that user."""
    ranked = np.asarray(ranked)[:, :k]
    if sp.issparse(relevant):
        R = sp.csr_matrix(relevant)
        if R.shape[0] != ranked.shape[0]:
            raise ValueError("ranked and relevant have different numbers of users")
        dense = R.toarray() > 0
        safe = np.where(ranked >= 0, ranked, 0)
        return np.take_along_axis(dense, safe, axis=1) & (ranked >= 0)
    sets = _relevant_sets(relevant)
    if len(sets) != ranked.shape[0]:
        raise ValueError("ranked and relevant have different numbers of users")
    return np.array(
        [[int(i) in s for i in row] for row, s in zip(ranked, sets)], dtype=bool
    ).reshape(ranked.shape)


def n_relevant(relevant: Relevant) -> np.ndarray:
    if sp.issparse(relevant):
        return np.diff(sp.csr_matrix(relevant).indptr).astype(np.int64)
    return np.array([len(set(r)) for r in relevant], dtype=np.int64)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))  # rank r (1-based) -> 1/log2(r+1)


def metrics_from_hits(hits: np.ndarray, n_rel: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user precision, recall, f1, ndcg, ap, hit, mrr @k from a hit matrix."""
    h = hits[:, :k].astype(np.float64)
    n_rel = np.asarray(n_rel, dtype=np.float64)
    has = n_rel > 0
    n_hit = h.sum(axis=1)
    prec = n_hit / k
    rec = np.divide(n_hit, n_rel, out=np.zeros_like(n_hit), where=has)
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(denom), where=denom > 0)
    disc = _discounts(k)
    dcg = h @ disc
    ideal_len = np.minimum(n_rel, k).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(disc)])[ideal_len]
    ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    ranks = np.arange(1, k + 1)
    prec_at_r = np.cumsum(h, axis=1) / ranks
    ap = np.divide(
        (prec_at_r * h).sum(axis=1), np.minimum(n_rel, k),
        out=np.zeros_like(n_hit), where=has,
    )
    any_hit = h.any(axis=1)
    first = np.argmax(h > 0, axis=1)
    mrr = np.where(any_hit, 1.0 / (first + 1), 0.0)
    return {
        "precision": prec, "recall": rec, "f1": f1, "ndcg": ndcg,
        "map": ap, "hit": any_hit.astype(np.float64), "mrr": mrr,
    }


def _metric(name: str):
    def fn(ranked, relevant: Relevant, k: int, per_user: bool = False):
        hits = hit_matrix(np.asarray(ranked), relevant, k)
        if hits.shape[1] < k:  # fewer than k recommended: missing ranks are misses
            hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])))
        vals = metrics_from_hits(hits, n_relevant(relevant), k)[name]
        return vals if per_user else float(vals.mean()) if len(vals) else 0.0

    fn.__name__ = fn.__qualname__ = f"{name}_at_k"
    return fn


precision_at_k = _metric("precision")
precision_at_k.__doc__ = "|top-k ∩ rel| / k."
recall_at_k = _metric("recall")
recall_at_k.__doc__ = "|top-k ∩ rel| / |rel|."
f1_at_k = _metric("f1")
f1_at_k.__doc__ = "Per-user harmonic mean of precision@k and recall@k (0 if both 0)."
ndcg_at_k = _metric("ndcg")
ndcg_at_k.__doc__ = "DCG with binary gains and 1/log2(rank+1) discount over the ideal DCG of min(|rel|, k) hits."
average_precision_at_k = _metric("map")
average_precision_at_k.__doc__ = "AP@k: sum of precision@r at each hit rank r ≤ k, over min(|rel|, k). Mean = MAP@k."
map_at_k = average_precision_at_k
hit_rate_at_k = _metric("hit")
hit_rate_at_k.__doc__ = "1 if any of the top-k is relevant."
mrr_at_k = _metric("mrr")
mrr_at_k.__doc__ = "1 / rank of the first relevant item within the top-k (0 if none)."


def catalog_coverage(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    top = np.asarray(ranked)[:, :k].ravel()
    return len(np.unique(top[top >= 0])) / n_items


def novelty(ranked: np.ndarray, item_popularity: np.ndarray, n_users: int, k: int,
            per_user: bool = False):
    """Mean self-information -log2(pop(i) / n_users) of the recommended items.

    ``pop`` counts train users per item; items with pop 0 (cold) are counted
    as pop 1 so their information is finite (the maximum, log2(n_users)).
    Per user: mean over that user's recommended positions; then mean over users.
    """
    top = np.asarray(ranked)[:, :k]
    pop = np.maximum(np.asarray(item_popularity, dtype=np.float64), 1.0)
    info = -np.log2(pop / n_users)
    valid = top >= 0
    vals = np.where(valid, info[np.where(valid, top, 0)], 0.0)
    per = np.divide(vals.sum(axis=1), valid.sum(axis=1),
                    out=np.zeros(len(top)), where=valid.sum(axis=1) > 0)
    return per if per_user else float(per.mean()) if len(per) else 0.0


def head_items(item_popularity: np.ndarray, share: float = 0.1) -> np.ndarray:
    """Boolean mask of the ceil(share × n_items) most popular items (ties: lower index)."""
    pop = np.asarray(item_popularity)
    n_head = int(np.ceil(share * len(pop)))
    mask = np.zeros(len(pop), dtype=bool)
    mask[np.argsort(-pop, kind="stable")[:n_head]] = True
    return mask


def popularity_bias(ranked: np.ndarray, item_popularity: np.ndarray, k: int = 10,
                    head_share: float = 0.1, per_user: bool = False):
    """Share of each user's top-k that lies in the ``head_share`` most popular train items."""
    head = head_items(item_popularity, head_share)
    top = np.asarray(ranked)[:, :k]
    in_head = np.where(top >= 0, head[np.where(top >= 0, top, 0)], False)
    per = in_head.sum(axis=1) / k
    return per if per_user else float(per.mean()) if len(per) else 0.0
