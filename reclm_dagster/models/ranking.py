"""Top-k selection over dense score batches, with consumed items excluded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import scipy.sparse as sp


class Scorer(Protocol):
    """What every recommender model in reclm implements."""

    def fit(self, X: sp.csr_matrix) -> "Scorer": ...

    def score(self, user_rows: np.ndarray, X: sp.csr_matrix) -> np.ndarray: ...


def mask_excluded(scores: np.ndarray, exclude: sp.spmatrix | None) -> np.ndarray:
    """Set ``scores[r, j] = -inf`` wherever ``exclude[r, j]`` is stored (in place)."""
    if exclude is None:
        return scores
    ex = sp.csr_matrix(exclude)
    if ex.shape != scores.shape:
        raise ValueError(f"exclude shape {ex.shape} != scores shape {scores.shape}")
    rows = np.repeat(np.arange(ex.shape[0]), np.diff(ex.indptr))
    scores[rows, ex.indices] = -np.inf
    return scores


def topk(
    scores: np.ndarray,
    k: int,
    exclude: sp.spmatrix | None = None,
    copy: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row: ``(indices int64, values float32)``, best first.

    ``exclude`` holds one row per score row (e.g. the users' train items);
    those entries get -inf. Positions that only an excluded (-inf) item could
    fill are returned as index -1, so they can never count as a hit.
    The returned list is ordered by score, then by item index; which of several
    items tied at the k-th score make the cut follows np.argpartition
    (deterministic for a given input).
    """
    scores = np.array(scores, dtype=np.float32, copy=copy, ndmin=2)
    mask_excluded(scores, exclude)
    n_rows, n_items = scores.shape
    k = min(int(k), n_items)
    if k <= 0:
        return np.empty((n_rows, 0), np.int64), np.empty((n_rows, 0), np.float32)
    if k < n_items:
        # argpartition is O(n); only the k survivors get sorted
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    vals = np.take_along_axis(scores, part, axis=1)
    # sort by value desc, then by index asc for reproducible tie order
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1)
    idx[~np.isfinite(vals) & (vals < 0)] = -1
    return idx, vals


def recommend_batches(
    model: Scorer,
    X_history: sp.csr_matrix,
    user_rows: np.ndarray,
    k: int,
    batch_size: int = 512,
    exclude_history: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(user_rows_batch, top_idx, top_vals)`` for users in batches.

    Only ``batch_size × n_items`` scores are ever dense at once.
    """
    X_history = sp.csr_matrix(X_history)
    user_rows = np.asarray(user_rows, dtype=np.int64)
    for start in range(0, len(user_rows), batch_size):
        rows = user_rows[start : start + batch_size]
        scores = model.score(rows, X_history)
        ex = X_history[rows] if exclude_history else None
        idx, vals = topk(scores, k, exclude=ex, copy=False)
        yield rows, idx, vals
