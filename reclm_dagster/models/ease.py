"""EASE^R (Steck 2019): closed-form shallow linear autoencoder.

B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ and diag(B) = 0. Only one dense
n_items² array is ever held: the gram matrix is written block-wise into it,
factorised in place by Cholesky (LAPACK potrf) and inverted in place from the
factor (potri), then rescaled column-wise in place into B.

When the model is fitted on fewer rows than items (users plus side-feature rows: Last.fm
has 6k rows for 17.6k items, ml-latest-small 610 users for 9.7k items), the same B comes
from the *dual* (Woodbury): with R the stacked rows, ``P = (I - Rᵀ M R) / λ`` where
``M = (λI + R Rᵀ)⁻¹`` is only rows². B is then never formed: ``diag(P)`` comes from R and M
in item blocks and a user batch is scored as ``H - (H P) / diag(P)`` through R and M, so
the fit costs rows³ + nnz(R)·rows instead of items³ and holds no items² array (equal to the
primal to float rounding: tests/models/test_ease_dual.py).

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


_DUAL_BLOCK_CELLS = 2**22  # item rows of Rᵀ M computed per step for diag(P) (~32 MB float64)


def stacked_rows(X: sp.spmatrix, side: sp.spmatrix | None = None, dense: np.ndarray | None = None, *,
                 binarize: bool = True, side_weight: float = 0.0, dense_weight: float = 0.0) -> sp.csr_matrix:
    """EASE's rows: the interactions, then ``g · sideᵀ`` and ``g_e · denseᵀ`` as pseudo-users."""
    R = _binarize(X) if binarize else sp.csr_matrix(X, dtype=np.float32)
    n = R.shape[1]
    blocks = [R]
    if side is not None and side_weight > 0 and side.shape[1] > 0:
        if side.shape[0] != n:
            raise ValueError(f"side has {side.shape[0]} item rows, X has {n} items")
        blocks.append(side_weight * sp.csr_matrix(side, dtype=np.float32).T)
    if dense is not None and dense_weight > 0 and dense.shape[1] > 0:
        if dense.shape[0] != n:
            raise ValueError(f"dense has {dense.shape[0]} item rows, X has {n} items")
        blocks.append(sp.csr_matrix(np.asarray(dense, np.float32).T * np.float32(dense_weight)))
    return sp.vstack(blocks, format="csr", dtype=np.float32) if len(blocks) > 1 else sp.csr_matrix(R)


def ease_rows(X: sp.spmatrix, side: sp.spmatrix | None = None, dense: np.ndarray | None = None, *,
              side_weight: float = 0.0, dense_weight: float = 0.0) -> int:
    """How many rows EASE stacks for these inputs (users + side features + dense dims)."""
    m = X.shape[0]
    if side is not None and side_weight > 0:
        m += side.shape[1]
    if dense is not None and dense_weight > 0:
        m += dense.shape[1]
    return m


SOLVERS = ("auto", "primal", "dual")
# The solver an EASE built without one uses (every fit in the evaluation and the runs): the leakage
# canary sets it to run each solver through every fit.
DEFAULT_SOLVER = "auto"


def ease_order(n_rows: int, n_items: int) -> int:
    """The side of the dense square EASE inverts and keeps: items, or rows when fewer (the dual)."""
    return min(n_rows, n_items)


class EASE:
    """EASE^R item-item model; ``score = X_user @ B``.

    ``l2`` is λ. ``binarize=True`` (default) scores implicit feedback.
    ``dtype`` float32 halves memory; float64 is the numerically safer choice
    for tiny λ. ``solver``: ``"primal"`` inverts the items² gram; ``"dual"`` inverts the
    rows² one (module docstring); ``"auto"`` picks the dual when there are fewer rows than items;
    None: ``DEFAULT_SOLVER``.
    """

    def __init__(self, l2: float = 200.0, dtype=np.float32, binarize: bool = True, side_weight: float = 0.0,
                 dense_weight: float = 0.0, solver: str | None = None) -> None:
        solver = DEFAULT_SOLVER if solver is None else solver
        if solver not in SOLVERS:
            raise ValueError(f"EASE solver must be one of {SOLVERS}, got {solver!r}")
        self.l2 = l2
        self.dtype = dtype
        self.binarize = binarize
        self.side_weight = side_weight  # g: weight of the side-information rows
        self.dense_weight = dense_weight  # g_e: weight of the dense (embedding) side-information rows
        self.solver = solver

    def fit(self, X: sp.spmatrix, side: sp.spmatrix | None = None, dense: np.ndarray | None = None) -> "EASE":
        """``side``: optional item × feature matrix (rows aligned with X's columns); ``dense``:
        optional item × d matrix (e.g. reduced text embeddings), stacked as ``g_e · denseᵀ`` rows,
        which adds ``g_e² · dense denseᵀ`` to the gram: semantics shapes B for warm and cold items."""
        m = ease_rows(X, side, dense, side_weight=self.side_weight, dense_weight=self.dense_weight)
        self.solver_ = self.solver if self.solver != "auto" else ("dual" if m < X.shape[1] else "primal")
        if self.solver_ == "dual":
            return self._fit_dual(stacked_rows(X, side, dense, binarize=self.binarize, side_weight=self.side_weight,
                                               dense_weight=self.dense_weight))
        R = stacked_rows(X, side, binarize=self.binarize, side_weight=self.side_weight)
        P = gram_matrix(R, dtype=self.dtype)
        if dense is not None and self.dense_weight > 0 and dense.shape[1] > 0:
            if dense.shape[0] != P.shape[0]:
                raise ValueError(f"dense has {dense.shape[0]} item rows, X has {P.shape[0]} items")
            # dense rows go straight into the gram: as sparse rows they would be items·d nonzeros
            add_outer_inplace(P, np.asarray(dense, self.dtype) * self.dtype(self.dense_weight))
        P[np.diag_indices_from(P)] += self.l2
        P = inverse_spd_inplace(P)
        d = np.diag(P).copy()
        P /= -d[None, :]  # B_ij = -P_ij / P_jj
        np.fill_diagonal(P, 0.0)
        self._B = P
        return self

    def _fit_dual(self, R: sp.csr_matrix) -> "EASE":
        """M = (λI + R Rᵀ)⁻¹ in float64 (rows²) and λ·diag(P) = 1 - r_jᵀ M r_j per item."""
        Rt = R.T.tocsr().astype(np.float64)  # items × rows: the only form scoring reads
        K = np.asarray((Rt.T @ Rt).toarray())
        K[np.diag_indices_from(K)] += self.l2
        M = inverse_spd_inplace(K)
        q = np.empty(R.shape[1])
        step = max(1, _DUAL_BLOCK_CELLS // max(R.shape[0], 1))
        for s in range(0, R.shape[1], step):
            block = Rt[s : s + step]
            q[s : s + step] = np.asarray(block.multiply(block @ M).sum(axis=1)).ravel()
        # λ·P_jj lies in (0, 1]; the float64 difference keeps its digits for items in many rows
        self.lam_diag_ = np.maximum(1.0 - q, np.finfo(np.float64).tiny).astype(self.dtype)
        self.M_ = M.astype(self.dtype)
        self.Rt_ = Rt.astype(self.dtype)
        self._B = None
        return self

    @property
    def B_(self) -> np.ndarray:
        """The items² weight matrix. The dual forms it only here, on request (inspection, tests)."""
        if self._B is None:
            n = self.Rt_.shape[0]
            return self._dual_scores(sp.identity(n, dtype=self.dtype, format="csr"))
        return self._B

    def _dual_scores(self, H: sp.csr_matrix) -> np.ndarray:
        """``H B`` with ``B = I - P / diag(P)``: ``(H Rᵀ M R - H) / (λ diag P) + H``."""
        A = np.asarray((H @ self.Rt_).toarray(), dtype=self.dtype) @ self.M_  # users × rows
        S = np.ascontiguousarray((self.Rt_ @ A.T).T, dtype=np.float32)  # A R, computed as (Rᵀ Aᵀ)ᵀ
        rows, cols = np.repeat(np.arange(H.shape[0]), np.diff(H.indptr)), H.indices
        S[rows, cols] -= H.data
        S /= self.lam_diag_[None, :]
        S[rows, cols] += H.data
        return S

    def score(self, user_rows: np.ndarray, X: sp.spmatrix) -> np.ndarray:
        H = sp.csr_matrix(X)[np.asarray(user_rows, dtype=np.int64)]
        H = _binarize(H) if self.binarize else sp.csr_matrix(H, dtype=self.dtype)
        if self._B is None:
            return self._dual_scores(sp.csr_matrix(H, dtype=self.dtype))
        return np.asarray(H @ self._B, dtype=np.float32)
