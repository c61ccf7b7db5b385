"""EASE^R (Steck 2019): closed-form shallow linear autoencoder.

B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ and diag(B) = 0. Only one dense
n_items² array is ever held: the gram matrix is written block-wise into it,
factorised in place by Cholesky (LAPACK potrf) and inverted in place from the
factor (potri), then rescaled column-wise in place into B.

Side information ("collective" EASE, cf. Jeunen et al. 2020, Steck 2019's
side-information remark): item features F (items × features, e.g. the tags users
put on an item, its genres, its director) are stacked under the interaction
matrix as extra pseudo-user rows ``g · Fᵀ``, so the gram becomes
``XᵀX + g²·F Fᵀ``. Items that share features co-occur in those rows, which both
sharpens B for warm items and gives cold items (no or few interactions, but
features) non-zero weights, so they can be recommended at all.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from reclm_dagster.models.matrix import binarize as _binarize

_BLOCK_CELLS = 2**25  # rows of the gram filled per step (~128 MB float32)


def gram_matrix(X: sp.spmatrix, dtype=np.float32) -> np.ndarray:
    """Dense XᵀX (n_items²) built in row blocks without a second n² temporary."""
    X = sp.csr_matrix(X, dtype=dtype)
    Xt = X.T.tocsr()
    n = X.shape[1]
    G = np.zeros((n, n), dtype=dtype)
    step = max(1, _BLOCK_CELLS // max(n, 1))
    for s in range(0, n, step):
        e = min(n, s + step)
        # toarray(out=) writes straight into the row slice (C-contiguous)
        (Xt[s:e] @ X).toarray(out=G[s:e])
    return G


def add_outer_inplace(G: np.ndarray, E: np.ndarray) -> None:
    """``G += E Eᵀ`` in row blocks: no second n² temporary."""
    step = max(1, _BLOCK_CELLS // max(G.shape[0], 1))
    for s in range(0, G.shape[0], step):
        G[s : s + step] += E[s : s + step] @ E.T


def _fill_upper_from_lower(A: np.ndarray, block: int = 2048) -> None:
    """Make a C-ordered array symmetric from its lower triangle, in place."""
    n = A.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        D = A[s:e, s:e]
        A[s:e, s:e] = np.tril(D) + np.tril(D, -1).T
        if e < n:
            A[s:e, e:] = A[e:, s:e].T


def inverse_spd_inplace(G: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite C-ordered array, reusing its memory.

    Returns the inverse (the same buffer as ``G`` when LAPACK could work in
    place, which it does for C- or F-contiguous float32/float64 input).
    """
    # A symmetric C array's transpose is the same matrix in Fortran order,
    # which is what LAPACK needs to overwrite it instead of copying.
    F = G.T
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (F,))
    c, info = potrf(F, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky failed (info={info}); raise l2")
    inv, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed (info={info})")
    # F's upper triangle is valid == the C view's lower triangle
    P = np.ascontiguousarray(inv.T)
    _fill_upper_from_lower(P)
    return P


class EASE:
    """EASE^R item-item model; ``score = X_user @ B``.

    ``l2`` is λ. ``binarize=True`` (default) scores implicit feedback.
    ``dtype`` float32 halves memory; float64 is the numerically safer choice
    for tiny λ.
    """

    def __init__(self, l2: float = 200.0, dtype=np.float32, binarize: bool = True, side_weight: float = 0.0,
                 dense_weight: float = 0.0) -> None:
        self.l2 = l2
        self.dtype = dtype
        self.binarize = binarize
        self.side_weight = side_weight  # g: weight of the side-information rows
        self.dense_weight = dense_weight  # g_e: weight of the dense (embedding) side-information rows

    def fit(self, X: sp.spmatrix, side: sp.spmatrix | None = None, dense: np.ndarray | None = None) -> "EASE":
        """``side``: optional item × feature matrix (rows aligned with X's columns); ``dense``:
        optional item × d matrix (e.g. reduced text embeddings), stacked as ``g_e · denseᵀ`` rows,
        which adds ``g_e² · dense denseᵀ`` to the gram: semantics shapes B for warm and cold items."""
        R = _binarize(X) if self.binarize else sp.csr_matrix(X)
        if side is not None and self.side_weight > 0 and side.shape[1] > 0:
            if side.shape[0] != R.shape[1]:
                raise ValueError(f"side has {side.shape[0]} item rows, X has {R.shape[1]} items")
            R = sp.vstack([R, self.side_weight * sp.csr_matrix(side, dtype=np.float32).T]).tocsr()
        P = gram_matrix(R, dtype=self.dtype)
        if dense is not None and self.dense_weight > 0 and dense.shape[1] > 0:
            if dense.shape[0] != P.shape[0]:
                raise ValueError(f"dense has {dense.shape[0]} item rows, X has {P.shape[0]} items")
            add_outer_inplace(P, np.asarray(dense, self.dtype) * self.dtype(self.dense_weight))
        P[np.diag_indices_from(P)] += self.l2
        P = inverse_spd_inplace(P)
        d = np.diag(P).copy()
        P /= -d[None, :]  # B_ij = -P_ij / P_jj
        np.fill_diagonal(P, 0.0)
        self.B_ = P
        return self

    def score(self, user_rows: np.ndarray, X: sp.spmatrix) -> np.ndarray:
        H = sp.csr_matrix(X)[np.asarray(user_rows, dtype=np.int64)]
        H = _binarize(H) if self.binarize else sp.csr_matrix(H, dtype=self.dtype)
        return np.asarray(H @ self.B_, dtype=np.float32)
