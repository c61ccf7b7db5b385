"""Per-user normalisation and fusion of score matrices (batch × items).

Convention shared with ``ranking.topk``: ``-inf`` marks an excluded item
(already consumed). Normalisation ignores those entries and keeps them -inf;
fusion keeps an item -inf if any source excluded it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _finite_mask(S: np.ndarray) -> np.ndarray:
    return np.isfinite(S)


def zscore_rows(S: np.ndarray, min_std: float = 0.0, dtype=np.float32) -> np.ndarray:
    """(s - mean) / std per row over finite entries (computed in float64, returned as ``dtype``);
    rows whose std is at most ``min_std`` (constant rows) become 0; non-finite entries -inf."""
    S = np.asarray(S, dtype=np.float64)
    n = max(S.shape[1], 1)
    total = S.sum(axis=1, keepdims=True)
    if np.isfinite(total).all():  # no inf or nan in any row (the common case): no mask, one working copy
        D = S - total / n
        std = np.sqrt((D * D).sum(axis=1, keepdims=True) / n)
        flat = std <= min_std
        D /= np.where(flat, 1.0, std)
        if flat.any():
            D[flat[:, 0]] = 0.0
        return D.astype(dtype)
    m = _finite_mask(S)
    cnt = np.maximum(m.sum(axis=1, keepdims=True), 1)
    Z = np.where(m, S, 0.0)
    mean = Z.sum(axis=1, keepdims=True) / cnt
    var = np.where(m, (S - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / cnt
    std = np.sqrt(var)
    flat = std <= min_std
    out = np.where(m & ~flat, (Z - mean) / np.where(flat, 1.0, std), np.where(m, 0.0, -np.inf))
    return out.astype(dtype)


def ordinal_ranks(S: np.ndarray, tie_order: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of every entry per row (0 = highest); ties broken by ``tie_order`` (a
    permutation of the columns: earlier wins), or by column order when None."""
    S = np.asarray(S)
    if tie_order is None:
        order = np.argsort(-S, axis=1, kind="stable")
    else:
        order = tie_order[np.argsort(-S[:, tie_order], axis=1, kind="stable")]
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(S.shape[1])[None, :].repeat(len(S), 0), axis=1)
    return ranks


def minmax_rows(S: np.ndarray) -> np.ndarray:
    """(s - min) / (max - min) per row over finite entries; constant rows become 0."""
    S = np.asarray(S, dtype=np.float64)
    m = _finite_mask(S)
    lo = np.where(m, S, np.inf).min(axis=1, keepdims=True)
    hi = np.where(m, S, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    span = np.where(np.isfinite(span) & (span > 0), span, 1.0)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    out = np.where(m, (np.where(m, S, 0.0) - lo) / span, -np.inf)
    return out.astype(np.float32)


_NORMS = {"zscore": zscore_rows, "minmax": minmax_rows, None: lambda S: np.asarray(S, np.float32)}


def _normalised(norm: str | None, S: np.ndarray, min_std: float, dtype) -> np.ndarray:
    if norm == "zscore":
        return zscore_rows(S, min_std=min_std, dtype=dtype)
    return _NORMS[norm](S)


def _check(score_dict: Mapping[str, np.ndarray]) -> tuple[int, int]:
    if not score_dict:
        raise ValueError("score_dict is empty")
    shapes = {np.shape(v) for v in score_dict.values()}
    if len(shapes) != 1:
        raise ValueError(f"score matrices differ in shape: {shapes}")
    shape = shapes.pop()
    if len(shape) != 2:
        raise ValueError("score matrices must be 2-D (batch × items)")
    return shape


def _excluded_anywhere(score_dict: Mapping[str, np.ndarray]) -> np.ndarray:
    ex = None
    for S in score_dict.values():
        e = np.isneginf(S)
        ex = e if ex is None else (ex | e)
    return ex


def linear_fusion(
    score_dict: Mapping[str, np.ndarray],
    weights: Mapping[str, float] | None = None,
    norm: str | None = "zscore",
    dtype=np.float32,
    min_std: float = 0.0,
) -> np.ndarray:
    """Weighted sum of per-row normalised scores. ``weights`` default to 1 each.

    ``dtype`` / ``min_std``: precision of the z-scores and sum, and the std at or below which a
    row counts as constant (``zscore_rows``); the query evaluation uses float64 and 1e-12."""
    _check(score_dict)
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {list(_NORMS)}")
    weights = {k: 1.0 for k in score_dict} if weights is None else dict(weights)
    unknown = set(weights) - set(score_dict)
    if unknown:
        raise KeyError(f"weights for unknown sources: {sorted(unknown)}")
    out = None
    for name, S in score_dict.items():
        w = float(weights.get(name, 0.0))
        if w == 0.0:
            continue
        term = w * _normalised(norm, S, min_std, dtype)
        if out is None:
            out = term
        else:
            out += term
    if out is None:
        out = np.zeros(np.shape(next(iter(score_dict.values()))))
    out = out.astype(dtype, copy=False)
    # A finite sum had only finite terms: what is left to mark is what a weight-0 source excluded.
    # Anything else (an excluded item, a nan) takes the masked sum below, entry by entry as before.
    if np.isfinite(out).all():
        zero_weight = {n: S for n, S in score_dict.items() if float(weights.get(n, 0.0)) == 0.0}
        if zero_weight:
            out[_excluded_anywhere(zero_weight)] = -np.inf
        return out
    return _masked_fusion(score_dict, weights, norm, dtype, min_std)


def _masked_fusion(score_dict, weights, norm, dtype, min_std) -> np.ndarray:
    """``linear_fusion`` with excluded entries: each term's -inf counts as 0, then any excluded item is -inf."""
    out = None
    for name, S in score_dict.items():
        w = float(weights.get(name, 0.0))
        if w == 0.0:
            continue
        N = _normalised(norm, S, min_std, dtype)
        term = w * np.where(np.isneginf(N), 0.0, N)
        out = term if out is None else out + term
    out = out.astype(dtype)
    out[_excluded_anywhere(score_dict)] = -np.inf
    return out


def reciprocal_rank_fusion(
    score_dict: Mapping[str, np.ndarray],
    k: float = 60,
    weights: Mapping[str, float] | None = None,
    tie_order: np.ndarray | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """RRF (Cormack et al. 2009): sum_s w_s / (k + rank_s(i)), rank 1 = best.

    Tied scores share their average rank, so a constant row contributes the
    same amount to every item; with ``tie_order`` (a column permutation) ranks are
    ordinal instead, ties going to the item earlier in it (the query evaluation's
    seeded tie-break). Excluded (-inf) entries contribute nothing and stay -inf.
    """
    _check(score_dict)
    weights = {n: 1.0 for n in score_dict} if weights is None else dict(weights)
    unknown = set(weights) - set(score_dict)
    if unknown:
        raise KeyError(f"weights for unknown sources: {sorted(unknown)}")
    out = None
    for name, S in score_dict.items():
        w = float(weights.get(name, 0.0))
        if w == 0.0:
            continue
        S = np.asarray(S, dtype=np.float64)
        from scipy.stats import rankdata  # here, not at the top: scipy.stats costs ~1 s of a request's start-up

        ranks = rankdata(-S, method="average", axis=1) if tie_order is None else ordinal_ranks(S, tie_order) + 1
        term = np.where(np.isneginf(S), 0.0, w / (k + ranks))
        out = term if out is None else out + term
    if out is None:
        out = np.zeros(np.shape(next(iter(score_dict.values()))))
    out = out.astype(dtype)
    out[_excluded_anywhere(score_dict)] = -np.inf
    return out
