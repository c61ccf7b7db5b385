"""Full-ranking offline evaluation over all items, in user batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from reclm_dagster.evaluation.metrics import head_items, metrics_from_hits
from reclm_dagster.models.matrix import binarize
from reclm_dagster.models.ranking import topk

RANKING_METRICS = ("precision", "recall", "f1", "ndcg", "map", "hit", "mrr")


def relevant_matrix(test_X: sp.spmatrix, exclude_X: sp.spmatrix | None) -> sp.csr_matrix:
    """Binary test interactions minus anything in ``exclude_X``.

    An excluded (e.g. train) item can never be recommended, so keeping it as
    relevant would only deflate recall; dropping it also guarantees train
    pairs are never counted as hits.
    """
    R = binarize(test_X)
    if exclude_X is not None:
        R = binarize(R - R.multiply(binarize(exclude_X)))
    return R


def evaluate(
    score_fn: Callable[[np.ndarray], np.ndarray],
    train_X: sp.spmatrix,
    test_X: sp.spmatrix,
    exclude_X: sp.spmatrix | None,
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 512,
    cold_items: np.ndarray | None = None,
    item_popularity: np.ndarray | None = None,
    progress: bool = False,
) -> dict:
    """Rank all non-excluded items for every user with ≥1 test item; average metrics.

    ``score_fn(user_rows) -> (len(user_rows), n_items)`` dense scores.
    ``exclude_X`` (usually train, or train+valid) items get -inf; ``None``
    excludes nothing. ``item_popularity`` (distinct train users per item;
    default from ``train_X``) drives novelty and popularity bias.
    ``cold_items`` (bool mask over items) adds ``result['cold']``: the same
    ranking metrics with relevance restricted to cold test items, over users
    that have at least one.
    """
    train_X = sp.csr_matrix(train_X)
    n_users, n_items = train_X.shape
    ks = sorted(set(int(k) for k in ks))
    kmax = ks[-1]
    R = relevant_matrix(test_X, exclude_X)
    if R.shape != (n_users, n_items):
        raise ValueError(f"test_X shape {R.shape} != train_X shape {train_X.shape}")
    ex = sp.csr_matrix(exclude_X) if exclude_X is not None else None
    if item_popularity is None:
        item_popularity = np.asarray(binarize(train_X).sum(axis=0)).ravel()
    info = -np.log2(np.maximum(np.asarray(item_popularity, np.float64), 1.0) / n_users)
    head = head_items(item_popularity, 0.1)
    R_cold = None
    if cold_items is not None:
        cold_items = np.asarray(cold_items, dtype=bool)
        R_cold = sp.csr_matrix(R.multiply(cold_items[None, :].astype(np.float32)))
        R_cold.eliminate_zeros()

    users = np.flatnonzero(np.diff(R.indptr) > 0)
    per = {f"{m}@{k}": [] for k in ks for m in RANKING_METRICS + ("novelty", "popularity_bias")}
    per_cold = {f"{m}@{k}": [] for k in ks for m in RANKING_METRICS}
    covered = {k: np.zeros(n_items, dtype=bool) for k in ks}

    batches = range(0, len(users), batch_size)
    # A bar for a single batch is noise (`make run` printed 118 of them); finished bars are cleared.
    for start in tqdm(batches, desc="evaluate", disable=not progress or len(batches) <= 1, unit="batch", leave=False):
        rows = users[start : start + batch_size]
        scores = np.asarray(score_fn(rows), dtype=np.float32)
        if scores.shape != (len(rows), n_items):
            raise ValueError(f"score_fn returned {scores.shape}, expected {(len(rows), n_items)}")
        idx, _ = topk(scores, kmax, exclude=None if ex is None else ex[rows], copy=False)
        if idx.shape[1] < kmax:  # a catalogue smaller than k: the missing ranks are empty slots
            idx = np.pad(idx, ((0, 0), (0, kmax - idx.shape[1])), constant_values=-1)
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        hits = np.take_along_axis(R[rows].toarray() > 0, safe, axis=1) & valid
        n_rel = np.diff(R[rows].indptr)
        for k in ks:
            for m, v in metrics_from_hits(hits, n_rel, k).items():
                per[f"{m}@{k}"].append(v)
            vk = valid[:, :k]
            covered[k][idx[:, :k][vk]] = True
            n_valid = np.maximum(vk.sum(axis=1), 1)
            per[f"novelty@{k}"].append(np.where(vk, info[safe[:, :k]], 0.0).sum(axis=1) / n_valid)
            per[f"popularity_bias@{k}"].append((head[safe[:, :k]] & vk).sum(axis=1) / k)
        if R_cold is not None:
            Rc = R_cold[rows]
            has = np.diff(Rc.indptr) > 0
            if has.any():
                hc = np.take_along_axis(Rc.toarray() > 0, safe, axis=1) & valid
                for k in ks:
                    for m, v in metrics_from_hits(hc[has], np.diff(Rc.indptr)[has], k).items():
                        per_cold[f"{m}@{k}"].append(v)

    result: dict = {name: _mean(vals) for name, vals in per.items()}
    for k in ks:
        result[f"coverage@{k}"] = float(covered[k].sum() / n_items)
    result["n_users"] = int(len(users))
    if R_cold is not None:
        cold = {name: _mean(vals) for name, vals in per_cold.items()}
        cold["n_users"] = int(sum(len(v) for v in per_cold[f"ndcg@{ks[0]}"]))
        cold["n_items"] = int(cold_items.sum())
        result["cold"] = cold
    return result


def _mean(chunks: list[np.ndarray]) -> float:
    if not chunks:
        return float("nan")
    return float(np.concatenate(chunks).mean())


def metric_rows(model: str, result: dict) -> list[tuple[str, str, str, float]]:
    """``evaluate()`` output as (model, slice, metric, value) rows."""
    rows = []
    for slice_name, values in (("all", result), ("cold", result.get("cold", {}))):
        for metric, value in values.items():
            if isinstance(value, (int, float, np.floating, np.integer)):
                rows.append((model, slice_name, metric, float(value)))
    return rows
