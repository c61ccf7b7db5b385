"""EASE's dual solver (Woodbury over the stacked rows) is the same model as the primal one."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.models.ease import EASE, ease_order
from reclm_dagster.models.large_catalogue import SparseItemCF, cf_for_catalogue


def _wide(seed=0, users=15, items=40, p=0.2):
    """Fewer users than items, with play counts (so binarize matters)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((users, items)) < p) * rng.integers(1, 6, (users, items))
    side = (rng.random((items, 6)) < 0.3).astype(np.float32)
    return sp.csr_matrix(X.astype(np.float32)), sp.csr_matrix(side), rng.normal(size=(items, 3)).astype(np.float32)


@pytest.mark.parametrize("binarize", [True, False])
@pytest.mark.parametrize("with_side,with_dense", [(False, False), (True, False), (True, True)])
def test_dual_equals_primal(binarize, with_side, with_dense):
    X, side, dense = _wide(1)
    kw = dict(l2=3.0, dtype=np.float64, binarize=binarize, side_weight=0.7 if with_side else 0.0,
              dense_weight=0.4 if with_dense else 0.0)
    primal = EASE(solver="primal", **kw).fit(X, side=side, dense=dense)
    dual = EASE(solver="dual", **kw).fit(X, side=side, dense=dense)
    assert dual.solver_ == "dual" and primal.solver_ == "primal"
    rows = np.array([4, 0, 9, 14])
    np.testing.assert_allclose(dual.score(rows, X), primal.score(rows, X), atol=1e-5)
    np.testing.assert_allclose(dual.B_, primal.B_, atol=1e-6)
    assert np.abs(np.diag(dual.B_)).max() < 1e-6  # B has a zero diagonal
    # the comparison can fail: another λ gives other scores
    other = EASE(solver="dual", **{**kw, "l2": 30.0}).fit(X, side=side, dense=dense)
    assert not np.allclose(other.score(rows, X), primal.score(rows, X), atol=1e-3)


def test_float32_dual_ranks_like_the_float64_primal():
    X, side, _ = _wide(2, users=60, items=300, p=0.05)
    ref = EASE(l2=5.0, side_weight=0.5, dtype=np.float64, solver="primal").fit(X, side=side)
    fast = EASE(l2=5.0, side_weight=0.5).fit(X, side=side)  # auto, float32
    assert fast.solver_ == "dual"
    rows = np.arange(60)
    a, b = fast.score(rows, X), ref.score(rows, X)
    np.testing.assert_allclose(a, b, atol=2e-5 * np.abs(b).max())
    top = lambda S: np.argsort(-np.where(X[rows].toarray() > 0, -np.inf, S), axis=1, kind="stable")[:, :10]
    assert (top(a) == top(b)).mean() > 0.99


def test_auto_picks_the_smaller_square():
    X, side, _ = _wide(3, users=15, items=40)
    assert EASE().fit(X).solver_ == "dual"  # 15 rows < 40 items
    assert EASE().fit(sp.csr_matrix(X.T)).solver_ == "primal"  # 40 rows > 15 items
    assert EASE(side_weight=1.0).fit(X[:, :20], side=sp.csr_matrix(np.ones((20, 10)))).solver_ == "primal"  # 25 rows
    assert ease_order(15, 40) == 15 and ease_order(40, 15) == 15
    with pytest.raises(ValueError, match="solver"):
        EASE(solver="eig")


def test_the_dual_never_holds_an_items_squared_array():
    """3,000 items on 40 users: one float32 items² array would be 36 MB; the dual's fit and a
    100-user batch's scores stay far below it (tracemalloc sees numpy's and scipy's buffers)."""
    rng = np.random.default_rng(4)
    n = 3000
    X = sp.random(40, n, density=0.02, format="csr", dtype=np.float32, random_state=rng)
    items_sq = 4 * n * n
    tracemalloc.start()
    try:
        model = EASE(l2=10.0).fit(X)
        scores = model.score(np.arange(40), X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model.solver_ == "dual" and scores.shape == (40, n)
    assert peak < items_sq / 4, f"peak {peak / 1e6:.1f} MB"
    # the same measurement catches the primal's items² array
    tracemalloc.start()
    try:
        EASE(l2=10.0, solver="primal").fit(X)
        _, peak_primal = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_primal >= items_sq


def test_few_rows_keep_a_big_catalogue_on_exact_ease():
    """The memory gate sizes EASE by its square: 20k items on 2k rows fit where 20k² do not."""
    free = 10**9  # dense fits up to ~9.7k of order
    assert isinstance(cf_for_catalogue(20_000, free_bytes=free), SparseItemCF)
    assert isinstance(cf_for_catalogue(20_000, n_rows=2_000, free_bytes=free), EASE)
    assert isinstance(cf_for_catalogue(20_000, n_rows=15_000, free_bytes=free), SparseItemCF)
