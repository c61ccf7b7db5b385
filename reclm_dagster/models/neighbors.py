"""Popularity, item-kNN and RP3beta scorers over a user × item csr matrix.

All follow one interface: ``fit(X) -> self`` and ``score(user_rows, X)`` ->
dense float32 ``len(user_rows) × n_items``, where ``X`` holds the users'
known interactions (train, or train+valid) so one fitted model can score
against different histories.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from reclm_dagster.models.matrix import binarize

# Dense similarity blocks are capped at this many cells (~64 MB float32).
_BLOCK_CELLS = 2**24


def _block_size(n_items: int) -> int:
    return max(1, min(n_items, _BLOCK_CELLS // max(n_items, 1)))


def _history(X: sp.spmatrix, user_rows: np.ndarray, binary: bool) -> sp.csr_matrix:
    H = sp.csr_matrix(X)[np.asarray(user_rows, dtype=np.int64)]
    return binarize(H) if binary else sp.csr_matrix(H, dtype=np.float32)


def _topk_columns(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ids and values of the k largest entries in each column of ``block``."""
    n = block.shape[0]
    if k >= n:
        rows = np.broadcast_to(np.arange(n)[:, None], block.shape)
    else:
        # copy: a view would pin the whole n × block int64 array in memory
        rows = np.argpartition(-block, k - 1, axis=0)[:k].copy()
    return rows, np.take_along_axis(block, rows, axis=0)


# A similarity block sparser than this is pruned entry by entry: a dense n × block array and its
# argpartition would cost n × block however few items co-occur (Last.fm: ~1.5% of pairs do).
_SPARSE_TOPK_DENSITY = 0.1


def _ranked_groups(group: np.ndarray, other: np.ndarray, vals: np.ndarray, depth: int | None = None):
    """``(group, other, vals, rank)`` sorted by group, then ``vals`` descending (ties: the lower
    ``other`` first); ``rank`` is each entry's place in its group. Zeros are dropped, as ``_assemble`` would.
    ``depth``: only the entries ranked below it are returned (the same entries, in the same order)."""
    nz = vals != 0
    group, other, vals = group[nz], other[nz], vals[nz]
    if depth is not None and len(group) and np.all(group[1:] >= group[:-1]):
        keep = _best_of_groups(group, other, vals, depth)  # sort only what can be kept
        if keep is not None:
            group, other, vals = group[keep], other[keep], vals[keep]
    order = np.lexsort((other, -vals, group))
    group, other, vals = group[order], other[order], vals[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(group)]))
    return group, other, vals, np.arange(len(group)) - first


def _best_of_groups(group: np.ndarray, other: np.ndarray, vals: np.ndarray, depth: int) -> np.ndarray | None:
    """Mask of each group's ``depth`` best entries (largest ``vals``, ties: the lower ``other``), for
    groups in contiguous runs; None when no group is longer. A partition per long group instead of
    sorting every entry: a popular item co-occurs with tens of thousands of items, k of them are kept."""
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(group)]
    long = np.flatnonzero(ends - starts > depth)
    if not len(long):
        return None
    keep = np.ones(len(group), dtype=bool)
    for g in long:
        lo, hi = starts[g], ends[g]
        seg = vals[lo:hi]
        t = -np.partition(-seg, depth - 1)[depth - 1]  # the depth-th largest value
        drop = seg < t
        tied = np.flatnonzero(seg == t)
        room = depth - int((seg > t).sum())  # places left for the entries tied at t: the lower ``other`` first
        if len(tied) > room:
            drop[tied[np.argsort(other[lo:hi][tied], kind="stable")[room:]]] = True
        keep[lo:hi] = ~drop
    return keep


def _topk_groups(group: np.ndarray, other: np.ndarray, vals: np.ndarray, k: int):
    """The ``k`` largest ``vals`` of each ``group`` (ties: the lower ``other`` first), as ``(group, other, vals)``."""
    group, other, vals, rank = _ranked_groups(group, other, vals, depth=k)
    keep = rank < k
    return group[keep], other[keep], vals[keep]


def _sparse_block(block: sp.spmatrix, n_cells: int) -> sp.csr_matrix | None:
    """``block`` as csr when it is sparse enough to prune entry by entry (else None: go dense)."""
    return sp.csr_matrix(block) if block.nnz <= _SPARSE_TOPK_DENSITY * n_cells else None


def _entries(B: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) of a csr matrix's stored entries."""
    return np.repeat(np.arange(B.shape[0]), np.diff(B.indptr)), B.indices, B.data.astype(np.float64)


def _assemble(rows: list, cols: list, vals: list, n: int) -> sp.csr_matrix:
    r, c, v = (np.concatenate(a) if a else np.empty(0) for a in (rows, cols, vals))
    keep = v != 0  # padding from top-k on short columns is all zeros
    S = sp.csr_matrix(
        (v[keep].astype(np.float32), (r[keep], c[keep])), shape=(n, n), dtype=np.float32
    )
    S.sort_indices()
    return S


def _prune_rows(S: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest stored values per row of a csr matrix."""
    S = sp.csr_matrix(S, copy=True)
    for r in range(S.shape[0]):
        lo, hi = S.indptr[r], S.indptr[r + 1]
        if hi - lo > k:
            seg = S.data[lo:hi]
            drop = np.argpartition(-seg, k - 1)[k:]
            seg[drop] = 0
    S.eliminate_zeros()
    return S


class Popularity:
    """Scores every item by its number of distinct users in the training data."""

    def fit(self, X: sp.spmatrix) -> "Popularity":
        self.item_pop_ = np.asarray(binarize(X).sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, user_rows: np.ndarray, X: sp.spmatrix | None = None) -> np.ndarray:
        return np.tile(self.item_pop_, (len(user_rows), 1))


class ItemKNN:
    """Item-based kNN with cosine similarity (Sarwar et al. 2001; Dacrema et al. 2019).

    ``S[i, j]`` is the (shrunk) cosine between items i and j, kept only for the
    ``k_neighbors`` most similar i of each target item j; a user's score for
    j is ``sum_i x_ui * S[i, j]``. ``weighted=False`` binarizes interactions.
    ``normalize=False`` uses raw co-occurrence dot products instead of cosine.
    """

    def __init__(
        self,
        k_neighbors: int = 100,
        shrink: float = 0.0,
        normalize: bool = True,
        weighted: bool = False,
    ) -> None:
        self.k_neighbors = k_neighbors
        self.shrink = shrink
        self.normalize = normalize
        self.weighted = weighted

    def fit(self, X: sp.spmatrix) -> "ItemKNN":
        [self.similarity_] = self._similarities(X, (self.k_neighbors,))
        return self

    @classmethod
    def fit_grid(cls, X: sp.spmatrix, ks, **kwargs) -> list["ItemKNN"]:
        """``[ItemKNN(k_neighbors=k, **kwargs).fit(X) for k in ks]`` from one pass over the
        co-occurrence blocks: each block is multiplied, normalised and ranked once and cut at each k
        (the same entries, in the same order, as a fit per k)."""
        models = [cls(k_neighbors=k, **kwargs) for k in ks]
        for model, S in zip(models, models[0]._similarities(X, ks)):
            model.similarity_ = S
        return models

    def _similarities(self, X: sp.spmatrix, ks) -> list[sp.csr_matrix]:
        Xb = _history(X, np.arange(X.shape[0]), binary=not self.weighted).tocsc()
        n = Xb.shape[1]
        Xt = Xb.T.tocsr()
        norms = np.sqrt(np.asarray(Xb.multiply(Xb).sum(axis=0)).ravel())
        ks = [min(k, n) for k in ks]
        parts = [([], [], []) for _ in ks]  # (rows, cols, vals) of each k
        step = _block_size(n)
        for s in range(0, n, step):
            e = min(n, s + step)
            co = Xt @ Xb[:, s:e]  # n × (e-s) co-occurrences
            sparse = _sparse_block(co.T, n * (e - s))  # targets × sources
            if sparse is not None:
                target, source, v = _entries(sparse)
                target = target + s
                if self.normalize:
                    v = v / (norms[source] * norms[target] + self.shrink + 1e-6)
                elif self.shrink:
                    v = v / (1.0 + self.shrink)
                v[source == target] = 0.0  # no self-similarity
                t, r, v, rank = _ranked_groups(target, source, v, depth=max(ks))
                for (rows, cols, vals), k in zip(parts, ks):
                    keep = rank < k
                    rows.append(r[keep])
                    cols.append(t[keep])
                    vals.append(v[keep])
                continue
            block = co.toarray()
            if self.normalize:
                block /= np.outer(norms, norms[s:e]) + self.shrink + 1e-6
            elif self.shrink:
                block /= 1.0 + self.shrink
            block[np.arange(s, e), np.arange(e - s)] = 0.0  # no self-similarity
            for (rows, cols, vals), k in zip(parts, ks):
                r, v = _topk_columns(block, k)
                rows.append(r.ravel())
                cols.append(np.broadcast_to(np.arange(s, e), r.shape).ravel())
                vals.append(v.ravel())
        return [_assemble(rows, cols, vals, n) for rows, cols, vals in parts]

    def score(self, user_rows: np.ndarray, X: sp.spmatrix) -> np.ndarray:
        H = _history(X, user_rows, binary=not self.weighted)
        return np.asarray((H @ self.similarity_).toarray(), dtype=np.float32)

    def similar_items(self, k: int | None = None) -> sp.csr_matrix:
        """Item × item csr: row i holds i's ``k`` most similar items (≤ k_neighbors)."""
        S = self.similarity_.T.tocsr()
        return S if k is None or k >= self.k_neighbors else _prune_rows(S, k)


class RP3beta:
    """Random walk user→item→user→item with popularity penalty (Paudel et al. 2017).

    Follows the Dacrema et al. (2019) implementation: ``W = Piu @ Pui`` with
    both transition matrices L1-row-normalised and raised elementwise to
    ``alpha``, target columns divided by ``degree_j ** beta``, the diagonal
    zeroed and only the ``k_neighbors`` largest entries kept per row.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.5,
        k_neighbors: int = 100,
        binarize: bool = True,
        normalize_similarity: bool = False,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.k_neighbors = k_neighbors
        self.binarize = binarize
        self.normalize_similarity = normalize_similarity

    def fit(self, X: sp.spmatrix) -> "RP3beta":
        [self.similarity_] = self._similarities(X, (self.beta,))
        return self

    @classmethod
    def fit_grid(cls, X: sp.spmatrix, betas, **kwargs) -> list["RP3beta"]:
        """``[RP3beta(beta=b, **kwargs).fit(X) for b in betas]`` with one random-walk product per
        block: β only divides its columns by degree^β before the pruning (the same arithmetic as a fit per β)."""
        models = [cls(beta=b, **kwargs) for b in betas]
        for model, W in zip(models, models[0]._similarities(X, betas)):
            model.similarity_ = W
        return models

    def _similarities(self, X: sp.spmatrix, betas) -> list[sp.csr_matrix]:
        from sklearn.preprocessing import normalize  # here: sklearn is not needed to answer a request

        R = _history(X, np.arange(X.shape[0]), binary=self.binarize)
        n = R.shape[1]
        Pui = normalize(R, norm="l1", axis=1).astype(np.float32)
        Xt = binarize(R.T)  # item degrees count users, not weights
        degree = np.asarray(Xt.sum(axis=1)).ravel()
        nz = degree > 0
        deg_pows = []
        for beta in betas:
            deg_pow = np.zeros(n, dtype=np.float32)
            deg_pow[nz] = np.power(degree[nz], -beta)
            deg_pows.append(deg_pow)
        Piu = normalize(Xt, norm="l1", axis=1).astype(np.float32)
        if self.alpha != 1.0:
            Pui.data **= self.alpha
            Piu.data **= self.alpha
        k = min(self.k_neighbors, n)
        parts = [([], [], []) for _ in betas]  # (rows, cols, vals) of each β
        step = _block_size(n)
        for s in range(0, n, step):
            e = min(n, s + step)
            walk = Piu[s:e] @ Pui
            sparse = _sparse_block(walk, n * (e - s))
            if sparse is not None:
                source, target, walked = _entries(sparse)
                source = source + s
                own = source == target
                for (rows, cols, vals), deg_pow in zip(parts, deg_pows):
                    v = walked * deg_pow[target]
                    v[own] = 0.0
                    r, c, v = _topk_groups(source, target, v, k)
                    rows.append(r)
                    cols.append(c)
                    vals.append(v)
                continue
            walked = walk.toarray()
            for (rows, cols, vals), deg_pow in zip(parts, deg_pows):
                block = walked * deg_pow[None, :]
                block[np.arange(e - s), np.arange(s, e)] = 0.0
                # top-k per row == top-k per column of the transpose
                c, v = _topk_columns(block.T, k)
                cols.append(c.T.ravel())
                rows.append(np.broadcast_to(np.arange(s, e)[:, None], (e - s, c.shape[0])).ravel())
                vals.append(v.T.ravel())
        similarities = []
        for rows, cols, vals in parts:
            W = _assemble(rows, cols, vals, n)
            similarities.append(normalize(W, norm="l1", axis=1).astype(np.float32) if self.normalize_similarity else W)
        return similarities

    def score(self, user_rows: np.ndarray, X: sp.spmatrix) -> np.ndarray:
        H = _history(X, user_rows, binary=self.binarize)
        return np.asarray((H @ self.similarity_).toarray(), dtype=np.float32)
