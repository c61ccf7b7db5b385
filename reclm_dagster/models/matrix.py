"""User × item interaction matrices with a stable string-id index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp


def _as_str_array(ids: Sequence[str] | np.ndarray | pd.Index) -> np.ndarray:
    arr = np.array([str(x) for x in ids], dtype=object)
    if len(pd.unique(arr)) != len(arr):
        raise ValueError("index ids must be unique")
    return arr


def _weights(df: pd.DataFrame) -> np.ndarray:
    if "weight" in df.columns:
        return df["weight"].to_numpy(dtype=np.float32)
    return np.ones(len(df), dtype=np.float32)


def to_matrix(
    df: pd.DataFrame,
    users: Sequence[str] | np.ndarray,
    items: Sequence[str] | np.ndarray,
) -> tuple[sp.csr_matrix, int]:
    """Build a csr (len(users) × len(items), float32) aligned to a given index.

    Pairs whose user or item is not in the index are dropped; returns
    ``(X, n_dropped)`` so callers can log how much of e.g. a test set fell
    outside the training index. Duplicate pairs are summed. A missing
    ``weight`` column counts each row as 1.
    """
    users = _as_str_array(users)
    items = _as_str_array(items)
    # pandas Index.get_indexer is a vectorised dict lookup (-1 = unknown)
    u = pd.Index(users).get_indexer(df["user_id"].astype(str))
    i = pd.Index(items).get_indexer(df["item_id"].astype(str))
    keep = (u >= 0) & (i >= 0)
    w = _weights(df)[keep]
    X = sp.csr_matrix(
        (w, (u[keep], i[keep])), shape=(len(users), len(items)), dtype=np.float32
    )
    X.sum_duplicates()
    X.sort_indices()
    return X, int((~keep).sum())


class InteractionMatrix:
    """Interactions (user_id, item_id[, weight]) as a csr matrix plus its index.

    ``users`` / ``items`` default to the sorted distinct ids in ``df``; pass
    them explicitly to share one index between train/valid/test matrices.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        users: Sequence[str] | np.ndarray | None = None,
        items: Sequence[str] | np.ndarray | None = None,
    ) -> None:
        if users is None:
            users = np.sort(df["user_id"].astype(str).unique())
        if items is None:
            items = np.sort(df["item_id"].astype(str).unique())
        self.users: np.ndarray = _as_str_array(users)
        self.items: np.ndarray = _as_str_array(items)
        self.user_index: dict[str, int] = {u: n for n, u in enumerate(self.users)}
        self.item_index: dict[str, int] = {i: n for n, i in enumerate(self.items)}
        self.X, self.n_dropped = to_matrix(df, self.users, self.items)

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape

    @property
    def nnz(self) -> int:
        return self.X.nnz

    def align(self, df: pd.DataFrame) -> tuple[sp.csr_matrix, int]:
        """Matrix of ``df`` on this object's index: ``(X, n_dropped)``."""
        return to_matrix(df, self.users, self.items)

    def item_popularity(self) -> np.ndarray:
        """Number of distinct users per item (int64)."""
        return np.asarray((self.X > 0).sum(axis=0)).ravel().astype(np.int64)

    def __repr__(self) -> str:
        return f"InteractionMatrix({self.shape[0]} users × {self.shape[1]} items, nnz={self.nnz})"


def binarize(X: sp.spmatrix) -> sp.csr_matrix:
    """Copy of X as csr float32 with every stored positive entry set to 1."""
    B = sp.csr_matrix(X, dtype=np.float32, copy=True)
    B.data = (B.data > 0).astype(np.float32)
    B.eliminate_zeros()
    return B
