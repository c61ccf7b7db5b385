"""Collaborative filtering for catalogues too large for a dense EASE (issue 13.3).

Dense EASE holds one float32 order² array, the order being the items or, when fewer, the
stacked rows it is fitted on (the dual, models/ease.py): 6.4 GB at 40k, 30 GB at 87k, and
validation tuning briefly holds two. Above the order that fits the machine's free
memory, CF switches to :class:`SparseItemCF`, an item-item model that never allocates
n_items² (nor users × items): its gram / similarity is built in row blocks of a sparse
product and pruned block by block, so memory is O(nnz(X) + n_items · k) plus one block.

The default, ``similarity="ease"``, is EASE restricted to each item's k most co-occurring
items (``restricted_ease``): for every target j the ridge problem of EASE's column j is
solved on that support, a k × k system whose gram entries come from pruned gram rows 4k
long. With every co-occurring item in the support it *is* EASE's column. Measured with the
project's protocol (``benchmarks/large_catalogue.py``, ``benchmarks/results/large_catalogue.json``)
it keeps 98-100% of dense EASE's test NDCG@10 on ml-latest-small and Last.fm (1.002, 0.982),
where RP3beta and cosine item-kNN (also here: ``similarity="rp3beta"`` / ``"cosine"``, far
cheaper to fit) keep 86-91% and ALS / BPR from ``implicit`` 80-93% / 53-67%. Each source
item keeps its ``max_per_source`` largest weights, so scoring costs at most that per history
item (a popular item is a neighbour of nearly every target). ``sansa`` (sparse approximate-inverse EASE)
could not be a candidate: it needs ``scikit-sparse``, which ships no wheel.

``dense_ease_fits`` decides whether the dense model fits; ``cf_for_catalogue`` returns the
model to use. ``RECLM_DENSE_MAX_ITEMS`` (an item count) overrides the measured threshold.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from reclm_dagster.cores import default_jobs
from reclm_dagster.models import fit_cache
from reclm_dagster.models.ease import EASE, ease_order
from reclm_dagster.models.matrix import binarize

log = logging.getLogger(__name__)

ENV_DENSE_MAX_ITEMS = "RECLM_DENSE_MAX_ITEMS"
# Dense EASE's peak while tuning: the fitted B of the leader plus the candidate being fitted.
DENSE_PEAK_ARRAYS = 2.0
# Share of the free memory the dense arrays may take (the rest: X, scores, the interpreter, ...).
DENSE_MEMORY_SHARE = 0.75


def available_memory_bytes() -> int:
    """Memory the process can still take without swapping: psutil's ``available`` or
    /proc/meminfo's MemAvailable; 0 when neither can be read (so the dense path is refused)."""
    try:
        import psutil  # optional

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def dense_ease_bytes(n_items: int, dtype_bytes: int = 4, peak_arrays: float = DENSE_PEAK_ARRAYS) -> int:
    """Peak bytes of dense EASE on ``n_items``: ``peak_arrays`` n_items² arrays."""
    return int(peak_arrays * dtype_bytes * float(n_items) ** 2)


def dense_max_items(free_bytes: int, dtype_bytes: int = 4, share: float = DENSE_MEMORY_SHARE,
                    peak_arrays: float = DENSE_PEAK_ARRAYS) -> int:
    """The largest catalogue whose dense EASE peak fits ``share`` of ``free_bytes``."""
    return int(np.sqrt(max(0.0, share * free_bytes) / (peak_arrays * dtype_bytes)))


def dense_ease_fits(n_items: int, free_bytes: int | None = None, dtype_bytes: int = 4,
                    share: float = DENSE_MEMORY_SHARE) -> bool:
    """Whether a dense EASE of order ``n_items`` (``ease.ease_order``: items, or its rows when
    fewer) fits in memory, with the ~2 n² peak of tuning.

    ``RECLM_DENSE_MAX_ITEMS`` (that order), when set, decides alone: the operator's
    override beats the measurement. Otherwise the peak ``2 · n² · dtype_bytes`` must fit in
    ``share`` of ``free_bytes`` (default: the memory available now).
    """
    override = os.environ.get(ENV_DENSE_MAX_ITEMS, "").strip()
    if override:
        try:
            return n_items <= int(float(override))
        except ValueError:
            raise ValueError(f"{ENV_DENSE_MAX_ITEMS} must be an item count, got {override!r}") from None
    if free_bytes is None:
        free_bytes = available_memory_bytes()
    return dense_ease_bytes(n_items, dtype_bytes) <= share * free_bytes


@dataclass(frozen=True)
class SparseCFConfig:
    """Settings of :class:`SparseItemCF`.

    ``similarity``: ``"ease"`` (the default: EASE restricted to each target's ``k_neighbors``
    most co-occurring items, ridge ``l2``), ``"rp3beta"`` (random walk item→user→item,
    targets divided by ``popularity ** beta``, transitions raised to ``alpha``; k per source)
    or ``"cosine"`` (item-kNN, co-occurrence over ``|i||j| + shrink``; k per target).
    ``block_products`` bounds the multiply-adds (and so the stored entries) of one block of
    the sparse gram product: it caps the fit's transient memory at roughly
    ``16 · block_products`` bytes.
    """

    similarity: Literal["rp3beta", "cosine", "ease"] = "ease"
    k_neighbors: int = 100
    alpha: float = 1.0
    beta: float = 0.35
    shrink: float = 0.0
    l2: float = 200.0  # λ of the restricted EASE
    gram_neighbors: int = 4  # restricted EASE: gram entries kept per item for its K × K systems, × k_neighbors
    # restricted EASE: largest weights kept per source item (None: all). A popular item is a
    # neighbour of most targets; capping its row bounds scoring at max_per_source per history item
    max_per_source: int | None = 200
    support: Literal["cooccurrence", "cosine"] = "cooccurrence"  # how the restricted EASE picks neighbours
    side_weight: float = 0.0  # g: weight of side-information pseudo-user rows (as in EASE)
    block_products: int = 2**24


def _block_bounds(cost: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges whose summed ``cost`` stays within ``budget`` (≥ 1 row each)."""
    bounds, s, n = [], 0, len(cost)
    csum = np.concatenate([[0.0], np.cumsum(cost, dtype=np.float64)])
    while s < n:
        e = int(np.searchsorted(csum, csum[s] + budget, side="right")) - 1
        e = min(n, max(e, s + 1))
        bounds.append((s, e))
        s = e
    return bounds


def topk_per_row(M: sp.csr_matrix, k: int, key: np.ndarray | None = None) -> sp.csr_matrix:
    """The ``k`` largest stored entries of each row of a csr matrix (others dropped).

    ``key`` (one number per stored entry, default the values) ranks the entries; the kept
    entries keep their own values.
    """
    M = sp.csr_matrix(M)
    counts = np.diff(M.indptr)
    long_rows = np.flatnonzero(counts > k)
    if len(long_rows) == 0:
        return M
    rank_by = M.data if key is None else key
    keep = np.ones(M.nnz, dtype=bool)
    indptr = M.indptr
    for r in long_rows:
        lo, hi = indptr[r], indptr[r + 1]
        drop = np.argpartition(rank_by[lo:hi], hi - lo - k)[: hi - lo - k]
        keep[lo + drop] = False
    rows = np.repeat(np.arange(M.shape[0], dtype=np.int64), counts)[keep]
    out = sp.csr_matrix((M.data[keep], (rows, M.indices[keep])), shape=M.shape, dtype=M.dtype)
    out.sort_indices()
    return out


def restricted_ease(G: sp.csr_matrix, diag: np.ndarray, l2: float, batch: int | None = None,
                    lookup: sp.csr_matrix | None = None, jobs: int | None = None) -> sp.csr_matrix:
    """EASE with each item's weights restricted to its neighbours (source × target csr).

    ``G`` row j holds the gram values ``G[j, a]`` of j's neighbours a (≤ K, no diagonal),
    ``diag`` the gram's diagonal. For every target j with neighbours N, EASE's column
    problem ``min ||x_j - X_N b||² + λ||b||²`` is solved on the support N:
    ``(G_NN + λI) b = G_Nj`` — exactly EASE's column when N holds every co-occurring item.
    ``G_NN``'s off-diagonal entries come from ``lookup`` (default ``G``): pruned gram rows,
    longer than G's (an entry present in either row is exact; one pruned from both counts as
    0, so keep lookup rows several times longer than K). Each problem is K × K: the fit is
    O(n · K³) time and O(n · K') memory, never n².

    Targets go in batches of ``batch``: the union U of their neighbours is scattered into one
    dense (batch · K)² float32 buffer (≤ 17 MB by default), from which each target's
    system is gathered. The batches are split between ``jobs`` threads (default: every core
    unless the machine is busy): numpy's and scipy's kernels release the GIL, and each batch
    is solved exactly as alone, so the result does not depend on ``jobs``.
    """
    G = sp.csr_matrix(G, dtype=np.float32)
    G.sort_indices()
    L = G if lookup is None else sp.csr_matrix(lookup, dtype=np.float32)
    n = G.shape[0]
    K = int(np.diff(G.indptr).max(initial=0))
    if K == 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    batch = max(1, 2048 // K) if batch is None else int(batch)
    # batch targets that share neighbours: order by their strongest neighbour
    order = _targets_by_strongest(G)
    n_batches = -(-n // batch)
    jobs = max(1, min(default_jobs() if jobs is None else int(jobs), n_batches))
    per = -(-n_batches // jobs) * batch  # whole batches per thread, in order
    parts = [order[s:s + per] for s in range(0, n, per)]
    if jobs == 1:
        solved = [_solve_targets(G, L, diag, l2, part, batch, K) for part in parts]
    else:
        with ThreadPoolExecutor(jobs) as pool:
            solved = list(pool.map(lambda part: _solve_targets(G, L, diag, l2, part, batch, K), parts))
    r, c, v = (np.concatenate([a for part in solved for a in part[i]]) for i in range(3))
    B = sp.csr_matrix((v, (r, c)), shape=(n, n), dtype=np.float32)
    B.sort_indices()
    return B


def _solve_targets(G: sp.csr_matrix, L: sp.csr_matrix, diag: np.ndarray, l2: float, order: np.ndarray,
                   batch: int, K: int) -> tuple[list, list, list]:
    """``restricted_ease`` for the targets ``order``, ``batch`` at a time: (source, target, weight) parts."""
    n = G.shape[0]
    counts = np.diff(G.indptr)
    where = np.full(n + 1, -1, dtype=np.int64)  # item -> its index in the batch's union (reset per batch)
    spare = min(n, batch * K)  # a zero row / column of the buffer for the padding slots
    GU = np.zeros((spare + 1, spare + 1), dtype=np.float32)  # dense gram block of a batch's union
    slots = np.arange(K)
    out_rows, out_cols, out_vals = [], [], []
    for s in range(0, len(order), batch):
        targets = order[s:s + batch]
        m = len(targets)
        cnt = counts[targets]
        starts = G.indptr[targets]
        jl = np.repeat(np.arange(m), cnt)  # local target of each neighbour entry
        p = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)  # slot within the target
        gi = np.repeat(starts, cnt) + p
        nbr = G.indices[gi].astype(np.int64)
        U = np.unique(nbr)
        u = len(U)
        where[U] = np.arange(u)
        # dense gram block of the union, one spare zero row / column for the padding slots; scipy's
        # row and column selection (C++) keeps only the union's own entries of the lookup rows
        sub = L[U][:, U]
        gr, gc = np.repeat(np.arange(u), np.diff(sub.indptr)), sub.indices
        GU[gr, gc] = sub.data
        idx = np.full((m, K), spare, dtype=np.int64)
        idx[jl, p] = where[nbr]
        A = GU[idx[:, :, None], idx[:, None, :]].astype(np.float64)
        GU[gr, gc] = 0.0  # the buffer is all zeros again for the next batch
        np.maximum(A, A.transpose(0, 2, 1), out=A)  # present in either row: the exact value
        A[jl, p, p] = diag[nbr] + l2
        pj, pp = np.nonzero(slots[None, :] >= cnt[:, None])  # padding: identity rows, zero right-hand side
        A[pj, pp, pp] = 1.0
        b = np.zeros((m, K), dtype=np.float64)
        b[jl, p] = G.data[gi]
        w = np.linalg.solve(A, b[..., None])[..., 0]
        where[U] = -1
        out_rows.append(nbr)
        out_cols.append(targets[jl])
        out_vals.append(w[jl, p].astype(np.float32))
    return out_rows, out_cols, out_vals


def _targets_by_strongest(G: sp.csr_matrix) -> np.ndarray:
    """Items ordered by their strongest neighbour (then id): consecutive targets share neighbours."""
    n = G.shape[0]
    counts = np.diff(G.indptr)
    rows = np.repeat(np.arange(n), counts)
    best = np.full(n, n, dtype=np.int64)
    if G.nnz:
        order = np.lexsort((-G.data, rows))  # per row, largest first
        first = G.indptr[:-1][counts > 0]
        best[counts > 0] = G.indices[order[first]]
    return np.lexsort((np.arange(n), best))


class SparseItemCF:
    """Top-K item-item CF that never allocates n_items² (see the module docstring).

    ``similarity_[i, j]`` is the weight of source item i for target item j (sparse: ≤ k per
    target column for ``ease`` and ``cosine``, ≤ k per source row for ``rp3beta``); a user's score for j is ``sum_i x_ui · similarity_[i, j]`` over the binarised history.
    ``score`` returns dense scores like the other models (seen items are not masked: the
    caller excludes them, as for EASE and ItemKNN); ``recommend`` masks seen items and
    stays sparse.
    """

    def __init__(self, config: SparseCFConfig | None = None, keep_gram: bool = False, **overrides) -> None:
        base = config or SparseCFConfig()
        self.config = SparseCFConfig(**{**base.__dict__, **overrides}) if overrides else base
        # restricted EASE: keep the pruned gram (k · gram_neighbors entries per item) for ``with_l2``
        self.keep_gram = keep_gram
        self.gram_: tuple[sp.csr_matrix, np.ndarray] | None = None

    # -- fit --------------------------------------------------------------------------------
    def fit(self, X: sp.spmatrix, side: sp.spmatrix | None = None, dense: np.ndarray | None = None) -> "SparseItemCF":
        """``side`` (items × features) is stacked as ``g · sideᵀ`` pseudo-user rows as in EASE;
        ``dense`` (item embeddings) is not used here: its gram is n_items² by construction."""
        cfg = self.config
        R = binarize(X)
        n = R.shape[1]
        if dense is not None:
            log.info("SparseItemCF ignores dense side information (its item gram is n_items² dense)")
        if side is not None and cfg.side_weight > 0 and side.shape[1] > 0:
            if side.shape[0] != n:
                raise ValueError(f"side has {side.shape[0]} item rows, X has {n} items")
            R = sp.vstack([R, cfg.side_weight * sp.csr_matrix(side, dtype=np.float32).T]).tocsr()
        R.sum_duplicates()
        # the same config on the same rows (interactions and side rows) was fitted before in this process
        self.data_key_ = fit_cache.data_key(R, np.asarray(X.shape))
        if not self.keep_gram and self._from_cache():
            return self
        k = max(1, min(int(cfg.k_neighbors), max(n - 1, 1)))
        Rt = R.T.tocsr()  # items × users
        user_deg = np.asarray(R.sum(axis=1)).ravel()  # (weighted) row sums
        item_users = np.diff(Rt.indptr)
        self.item_pop_ = np.asarray(binarize(X).sum(axis=0)).ravel().astype(np.float32)
        # multiply-adds of row i of Rt @ R: the degrees of i's users
        nnz_deg = (R != 0).astype(np.float32)
        cost = np.asarray(nnz_deg.T @ np.diff(R.indptr).astype(np.float32)).ravel()
        if cfg.similarity == "rp3beta":
            left, right, col_scale, row_scale = self._rp3beta_factors(R, Rt, user_deg, item_users)
        elif cfg.similarity in ("cosine", "ease"):
            left, right = Rt, R
            norms = np.sqrt(np.asarray(Rt.multiply(Rt).sum(axis=1)).ravel()).astype(np.float32)
            col_scale, row_scale = norms, norms
        else:
            raise ValueError(f"unknown similarity {cfg.similarity!r} (use 'rp3beta', 'cosine' or 'ease')")
        parts = []
        for s, e in _block_bounds(cost, int(cfg.block_products)):
            block = sp.csr_matrix(left[s:e] @ right, dtype=np.float32)  # (e-s) × n, sparse
            rows = np.repeat(np.arange(s, e, dtype=np.int64), np.diff(block.indptr))
            diag = block.indices == rows
            if cfg.similarity == "ease":  # keep raw gram values; rank neighbours by co-occurrence or cosine
                block.data[diag] = 0.0
                block.eliminate_zeros()
                rows = np.repeat(np.arange(s, e, dtype=np.int64), np.diff(block.indptr))
                key = None
                if cfg.support == "cosine":
                    key = block.data / (row_scale[rows] * col_scale[block.indices] + cfg.shrink + 1e-6)
                parts.append(topk_per_row(block, min(n - 1, k * max(1, int(cfg.gram_neighbors))), key=key))
                continue
            self._weigh(block, rows, col_scale, row_scale)
            block.data[diag] = 0.0  # no self-similarity
            block.eliminate_zeros()
            parts.append(topk_per_row(block, k))
        S = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((n, n), dtype=np.float32)
        del parts
        if cfg.similarity == "ease":
            gram = (S, np.asarray(Rt.multiply(Rt).sum(axis=1)).ravel())
            if self.keep_gram:  # λ does not enter the pruned gram: ``with_l2`` re-solves from it
                self.gram_ = gram
            self._solve_ease(*gram)
            return self
        if cfg.similarity == "cosine":
            # symmetric before pruning, so a row holds a target's k best sources: transpose to source × target
            S = S.T.tocsr()
        # rp3beta keeps the k best targets per source row already
        self.similarity_ = S
        self.similarity_.sort_indices()
        self._to_cache()
        return self

    def _cache_key(self) -> str:
        return fit_cache.fit_key(type(self).__name__, self.config, self.data_key_)

    def _from_cache(self) -> bool:
        hit = fit_cache.get(self._cache_key())
        if hit is not None:
            self.similarity_, self.item_pop_ = hit["similarity_"], hit["item_pop_"]
        return hit is not None

    def _to_cache(self) -> None:
        fit_cache.put(self._cache_key(), {"similarity_": self.similarity_, "item_pop_": self.item_pop_},
                      fit_cache.nbytes_of(self.similarity_, self.item_pop_))

    def _solve_ease(self, lookup: sp.csr_matrix, gram_diag: np.ndarray) -> None:
        cfg = self.config
        k = max(1, min(int(cfg.k_neighbors), max(lookup.shape[0] - 1, 1)))
        S = restricted_ease(topk_per_row(lookup, k), gram_diag, float(cfg.l2), lookup=lookup)
        self.similarity_ = topk_per_row(S, int(cfg.max_per_source)) if cfg.max_per_source else S
        self.similarity_.sort_indices()
        self._to_cache()

    def with_l2(self, l2: float) -> "SparseItemCF":
        """This restricted EASE at ridge ``l2``, re-solved from the pruned gram this fit kept
        (``keep_gram=True``): what a fit at ``l2`` on the same rows gives, without the gram product."""
        if self.gram_ is None:
            raise ValueError("with_l2 needs a restricted-EASE fit made with keep_gram=True")
        other = SparseItemCF(self.config, l2=float(l2))
        other.item_pop_, other.keep_gram, other.gram_ = self.item_pop_, True, self.gram_
        other.data_key_ = self.data_key_  # the same rows: its result is a fit at l2 on them (cached as one)
        other._solve_ease(*self.gram_)
        return other

    def _rp3beta_factors(self, R, Rt, user_deg, item_users):
        cfg = self.config
        inv_user = np.where(user_deg > 0, 1.0 / np.maximum(user_deg, 1e-12), 0.0).astype(np.float32)
        Pui = sp.csr_matrix(sp.diags(inv_user) @ R, dtype=np.float32)  # rows L1-normalised
        item_deg = np.asarray(Rt.sum(axis=1)).ravel()
        inv_item = np.where(item_deg > 0, 1.0 / np.maximum(item_deg, 1e-12), 0.0).astype(np.float32)
        Piu = sp.csr_matrix(sp.diags(inv_item) @ Rt, dtype=np.float32)
        if cfg.alpha != 1.0:
            Pui.data **= cfg.alpha
            Piu.data **= cfg.alpha
        # popularity penalty on the target item: distinct users ** -beta (interaction rows only)
        deg_pow = np.zeros(R.shape[1], dtype=np.float32)
        nz = item_users > 0
        deg_pow[nz] = np.power(item_users[nz].astype(np.float64), -cfg.beta)
        return Piu, Pui, deg_pow, None

    def _weigh(self, block: sp.csr_matrix, rows: np.ndarray, col_scale, row_scale) -> None:
        """Scale a block's entries in place (``rows``: the global row of each entry)."""
        cfg = self.config
        cols = block.indices
        if cfg.similarity == "rp3beta":
            block.data *= col_scale[cols]
        else:
            block.data /= row_scale[rows] * col_scale[cols] + cfg.shrink + 1e-6

    # -- score ------------------------------------------------------------------------------
    def _history(self, user_rows: np.ndarray, X: sp.spmatrix) -> sp.csr_matrix:
        return binarize(sp.csr_matrix(X)[np.asarray(user_rows, dtype=np.int64)])

    def score(self, user_rows: np.ndarray, X: sp.spmatrix) -> np.ndarray:
        """Dense ``len(user_rows) × n_items`` float32 scores (seen items not masked)."""
        H = self._history(user_rows, X)
        return np.asarray((H @ self.similarity_).toarray(), dtype=np.float32)

    def recommend(self, user_rows: np.ndarray, X: sp.spmatrix, k: int = 100,
                  exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)``, each ``len(user_rows) × k``, best first, without a dense array.

        Items the similarity cannot reach are filled from the most popular unseen items
        (score 0), so every user gets ``k`` items while the catalogue has them; ``-1`` pads
        beyond that.
        """
        H = self._history(user_rows, X)
        C = sp.csr_matrix(H @ self.similarity_)
        if exclude_seen:
            C = C - C.multiply(H)  # H is binary: removes the seen entries' scores
        C.data[C.data <= 0] = 0.0
        C.eliminate_zeros()
        C = topk_per_row(C, k)
        m, n = C.shape
        items = np.full((m, k), -1, dtype=np.int64)
        scores = np.zeros((m, k), dtype=np.float32)
        counts = np.diff(C.indptr)
        row_of = np.repeat(np.arange(m), counts)
        order = np.lexsort((C.indices, -C.data, row_of))  # per row: best score first, ties by item id
        rank = np.arange(C.nnz) - C.indptr[row_of[order]]
        items[row_of[order], rank] = C.indices[order]
        scores[row_of[order], rank] = C.data[order]
        short = np.flatnonzero(counts < min(k, n))
        if len(short):
            popular = np.argsort(-self.item_pop_, kind="stable")
            for r in short:
                taken = set(items[r, : counts[r]].tolist())
                if exclude_seen:
                    taken.update(H.indices[H.indptr[r] : H.indptr[r + 1]].tolist())
                need = k - counts[r]
                fill = [i for i in popular[: need + len(taken)] if i not in taken][:need]
                items[r, counts[r] : counts[r] + len(fill)] = fill
        return items, scores

    @property
    def nbytes(self) -> int:
        """Bytes held by the fitted model (similarity csr + popularity)."""
        S = self.similarity_
        return int(S.data.nbytes + S.indices.nbytes + S.indptr.nbytes + self.item_pop_.nbytes)


def cf_for_catalogue(n_items: int, *, ease_l2: float = 200.0, side_weight: float = 0.0, dense_weight: float = 0.0,
                     free_bytes: int | None = None, sparse: SparseCFConfig | None = None,
                     n_rows: int | None = None) -> EASE | SparseItemCF:
    """The CF model for a catalogue of ``n_items`` fitted on ``n_rows`` stacked rows (users plus
    side features; None: as many as items): dense EASE where its ``ease_order``² arrays fit
    (``dense_ease_fits``), else :class:`SparseItemCF` (``sparse``, default config, with
    ``side_weight`` carried over). Both take ``fit(X[, side, dense])`` and ``score(rows, X)``."""
    if dense_ease_fits(ease_order(n_rows if n_rows is not None else n_items, n_items), free_bytes):
        return EASE(l2=ease_l2, side_weight=side_weight, dense_weight=dense_weight)
    cfg = sparse or SparseCFConfig(l2=ease_l2, side_weight=side_weight)
    log.info("catalogue of %d items: dense EASE does not fit, using SparseItemCF(%s)", n_items, cfg)
    return SparseItemCF(cfg)
