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


def evaluate(score_fn: Callable[[np.ndarray], np.ndarray], train_X: sp.spmatrix, test_X: sp.spmatrix,
             exclude_X: sp.spmatrix | None, **options) -> dict:
    """Rank all non-excluded items for every user with ≥1 test item; average metrics.

    ``score_fn(user_rows) -> (len(user_rows), n_items)`` dense scores.
    ``exclude_X`` (usually train, or train+valid) items get -inf; ``None``
    excludes nothing. ``item_popularity`` (distinct train users per item;
    default from ``train_X``) drives novelty and popularity bias.
    ``cold_items`` (bool mask over items) adds ``result['cold']``: the same
    ranking metrics with relevance restricted to cold test items, over users
    that have at least one.
    ``options``: ``evaluate_many``'s (ks=(5, 10, 20), batch_size=512, cold_items, item_popularity, progress).
    """
    return evaluate_many({"": score_fn}, train_X, test_X, exclude_X, **options)[""]


def evaluate_many(
    score_fns: dict[str, Callable[[np.ndarray], np.ndarray]],
    train_X: sp.spmatrix,
    test_X: sp.spmatrix,
    exclude_X: sp.spmatrix | None,
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 512,
    cold_items: np.ndarray | None = None,
    item_popularity: np.ndarray | None = None,
    progress: bool = False,
) -> dict[str, dict]:
    """``evaluate`` of several scorers in one pass: each batch of users is scored by every
    ``score_fns[name]`` in turn, so scorers that share work per batch (one model's signals,
    fused and re-ranked) can compute it once. ``{name: evaluate's result}``."""
    train_X = sp.csr_matrix(train_X)
    n_users, n_items = train_X.shape
    ks = sorted(set(int(k) for k in ks))
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
    tallies = {name: _Tally(ks, n_items, info, head) for name in score_fns}

    users = np.flatnonzero(np.diff(R.indptr) > 0)
    batches = range(0, len(users), batch_size)
    # A bar for a single batch is noise (`make run` printed 118 of them); finished bars are cleared.
    for start in tqdm(batches, desc="evaluate", disable=not progress or len(batches) <= 1, unit="batch", leave=False):
        rows = users[start : start + batch_size]
        relevant, n_rel = R[rows].toarray() > 0, np.diff(R[rows].indptr)
        Rc = R_cold[rows] if R_cold is not None else None
        for name, score_fn in score_fns.items():
            scores = np.asarray(score_fn(rows), dtype=np.float32)
            if scores.shape != (len(rows), n_items):
                raise ValueError(f"score_fn returned {scores.shape}, expected {(len(rows), n_items)}")
            # excluded items are masked in place: only into a copy when scorers may share arrays
            idx, _ = topk(scores, ks[-1], exclude=None if ex is None else ex[rows], copy=len(score_fns) > 1)
            del scores
            tallies[name].add(idx, relevant, n_rel, Rc)
    return {name: tally.result(len(users), cold_items) for name, tally in tallies.items()}


class _Tally:
    """One scorer's metrics, batch by batch: per-user values, covered items, the cold slice."""

    def __init__(self, ks: list[int], n_items: int, info: np.ndarray, head: np.ndarray):
        self.ks, self.n_items, self.info, self.head = ks, n_items, info, head
        self.per = {f"{m}@{k}": [] for k in ks for m in RANKING_METRICS + ("novelty", "popularity_bias")}
        self.per_cold = {f"{m}@{k}": [] for k in ks for m in RANKING_METRICS}
        self.covered = {k: np.zeros(n_items, dtype=bool) for k in ks}

    def add(self, idx: np.ndarray, relevant: np.ndarray, n_rel: np.ndarray, Rc: sp.csr_matrix | None) -> None:
        ks, kmax = self.ks, self.ks[-1]
        if idx.shape[1] < kmax:  # a catalogue smaller than k: the missing ranks are empty slots
            idx = np.pad(idx, ((0, 0), (0, kmax - idx.shape[1])), constant_values=-1)
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        hits = np.take_along_axis(relevant, safe, axis=1) & valid
        for k in ks:
            for m, v in metrics_from_hits(hits, n_rel, k).items():
                self.per[f"{m}@{k}"].append(v)
            vk = valid[:, :k]
            self.covered[k][idx[:, :k][vk]] = True
            n_valid = np.maximum(vk.sum(axis=1), 1)
            self.per[f"novelty@{k}"].append(np.where(vk, self.info[safe[:, :k]], 0.0).sum(axis=1) / n_valid)
            self.per[f"popularity_bias@{k}"].append((self.head[safe[:, :k]] & vk).sum(axis=1) / k)
        if Rc is not None:
            has = np.diff(Rc.indptr) > 0
            if has.any():
                hc = np.take_along_axis(Rc.toarray() > 0, safe, axis=1) & valid
                for k in ks:
                    for m, v in metrics_from_hits(hc[has], np.diff(Rc.indptr)[has], k).items():
                        self.per_cold[f"{m}@{k}"].append(v)

    def result(self, n_users: int, cold_items: np.ndarray | None) -> dict:
        result: dict = {name: _mean(vals) for name, vals in self.per.items()}
        for k in self.ks:
            result[f"coverage@{k}"] = float(self.covered[k].sum() / self.n_items)
        result["n_users"] = int(n_users)
        if cold_items is not None:
            cold = {name: _mean(vals) for name, vals in self.per_cold.items()}
            cold["n_users"] = int(sum(len(v) for v in self.per_cold[f"ndcg@{self.ks[0]}"]))
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
