"""Each item's nearest items by text and co-consumption, fused, without a z-scored n_items² pass.

The ``item_similarity`` asset ranks, for every item, the other items by
``z(text) + z(cf)``: each signal z-scored over the item's whole row (population std, as
``fusion.zscore_rows``). Materialising both z-scored rows costs two float64 n-wide passes per
item, which dominated the asset at 100k items. Neither is needed:

- the row statistics come from one pass over the text row (its sum and sum of squares) and
  from the cf row's few stored entries (every other entry is 0);
- among items the cf row does not store, the fused score is increasing in the text score, so
  the best ``k`` of them are among the text's top ``k + 1 + nnz`` (the +1: the item itself).

So the fused score is computed exactly on those candidates and the cf row's own items only,
and the result equals the full fusion up to float rounding of the statistics.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from reclm_dagster.models.ranking import topk


def _row_z(sums: np.ndarray, squares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, 1/std)`` per row from sums and sums of squares; a constant row scores 0 (as zscore_rows)."""
    mean = sums / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    return mean, np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)


def fused_neighbours(E: np.ndarray, C: sp.csr_matrix, rows: np.ndarray, k: int):
    """``(idx, fused, text, cf)``, each ``len(rows) × k``, best first: the items most similar to
    each of ``rows`` (itself excluded) by ``z(E @ Eᵀ) + z(C)``; ``idx`` -1 where fewer exist."""
    rows = np.asarray(rows, dtype=np.int64)
    n = E.shape[0]
    k = min(int(k), n)  # as topk over a whole row: k columns at most n, -1 where only the item itself is left
    T = E[rows] @ E.T  # float32, the only n-wide rows kept
    Cr = sp.csr_matrix(C[rows], dtype=np.float32)
    t_mean, t_inv = _row_z(T.sum(axis=1, dtype=np.float64), np.einsum("ij,ij->i", T, T, dtype=np.float64), n)
    c_sum = np.asarray(Cr.sum(axis=1), dtype=np.float64).ravel()
    c_sq = np.asarray(Cr.multiply(Cr).sum(axis=1), dtype=np.float64).ravel()
    c_mean, c_inv = _row_z(c_sum, c_sq, n)
    stored = np.diff(Cr.indptr)
    width = int(stored.max(initial=0))
    depth = min(n, k + 1 + width)
    by_text = np.argpartition(-T, depth - 1, axis=1)[:, :depth] if depth < n else np.broadcast_to(np.arange(n), T.shape)
    cf_cols = np.full((len(rows), width), -1, dtype=np.int64)
    r_of = np.repeat(np.arange(len(rows)), stored)
    cf_cols[r_of, np.arange(Cr.nnz) - Cr.indptr[r_of]] = Cr.indices
    cand = np.concatenate([np.asarray(by_text, dtype=np.int64), cf_cols], axis=1)
    cand.sort(axis=1)  # an item among both the text's best and the cf row counts once
    dup = np.zeros(cand.shape, dtype=bool)
    dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
    valid = (cand >= 0) & ~dup & (cand != rows[:, None])
    safe = np.where(valid, cand, 0)
    text = np.take_along_axis(T, safe, axis=1)
    cf = np.asarray(Cr[np.repeat(np.arange(len(rows)), cand.shape[1]), safe.ravel()]).reshape(cand.shape)
    fused = (((text - t_mean[:, None]) * t_inv[:, None]).astype(np.float32)
             + ((cf - c_mean[:, None]) * c_inv[:, None]).astype(np.float32))
    fused[~valid] = -np.inf
    local, vals = topk(fused, k, copy=False)
    found = local >= 0
    pick = np.where(found, local, 0)
    idx = np.where(found, np.take_along_axis(cand, pick, axis=1), -1)
    return (idx, vals, np.take_along_axis(text, pick, axis=1).astype(np.float32),
            np.take_along_axis(cf, pick, axis=1).astype(np.float32))
