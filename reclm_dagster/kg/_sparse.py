"""Sparse helpers shared by co-consumption and KG similarity."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_k_per_row(m: sp.spmatrix, k: int) -> sp.csr_matrix:
    """Keep the k largest values of each row (ties: lower column first)."""
    m = sp.csr_matrix(m, copy=True)
    m.sum_duplicates()  # also sorts column indices, which the stable sort relies on for ties
    lengths = np.diff(m.indptr)
    if k <= 0:
        return sp.csr_matrix(m.shape, dtype=m.dtype)
    long_rows = np.flatnonzero(lengths > k)
    if long_rows.size == 0:
        return m
    keep = np.ones(m.nnz, dtype=bool)
    # Per-row selection in O(row length): wide rows (popular genres) make any sort the bottleneck.
    for r in long_rows:
        start, end = m.indptr[r], m.indptr[r + 1]
        seg = m.data[start:end]
        threshold = np.partition(seg, seg.size - k)[seg.size - k]
        above = seg > threshold
        ties = np.flatnonzero(seg == threshold)[: k - int(above.sum())]
        row_keep = above
        row_keep[ties] = True
        keep[start:end] = row_keep
    indptr = np.concatenate([[0], np.cumsum(np.minimum(lengths, k))])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


def blockwise_top_k(
    left: sp.csr_matrix,
    right_t: sp.csr_matrix,
    k: int,
    min_value: float = 0.0,
    block_size: int = 2048,
    column_bonus: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Top-k per row of ``left @ right_t`` with the diagonal dropped, one row block at a time.

    Values must exceed ``min_value``. Only a block of the product exists at once, so a
    popular genre or a heavy user never materialises a dense items x items matrix.
    ``column_bonus`` (one value per column, each in [0, 0.5)) is added to every kept value
    after the ``min_value`` test: a tie-break among equal integer counts that callers
    remove again with ``floor``.
    """
    n_rows, n_cols = left.shape[0], right_t.shape[1]
    parts = []
    for start in range(0, n_rows, block_size):
        block = sp.csr_matrix(left[start : start + block_size] @ right_t)
        rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        block.data[(block.indices == rows + start) | (block.data <= min_value)] = 0
        block.eliminate_zeros()
        if column_bonus is not None:
            block.data += column_bonus[block.indices]
        parts.append(top_k_per_row(block, k))
    if not parts:
        return sp.csr_matrix((n_rows, n_cols))
    return sp.vstack(parts, format="csr")
