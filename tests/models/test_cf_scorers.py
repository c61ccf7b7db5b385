import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics.pairwise import cosine_similarity

import reclm_dagster.models.ease as ease_mod
import reclm_dagster.models.neighbors as nb_mod
from reclm_dagster.models.ease import EASE, gram_matrix, inverse_spd_inplace
from reclm_dagster.models.neighbors import ItemKNN, Popularity, RP3beta

X_SMALL = np.array(
    [[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float32
)  # 4 users × 3 items


def _random_X(seed=0, shape=(30, 12), p=0.3):
    rng = np.random.default_rng(seed)
    return ((rng.random(shape) < p) * rng.integers(1, 5, shape)).astype(np.float32)


def test_ease_matches_closed_form_on_4x3():
    lam = 2.0
    G = X_SMALL.T @ X_SMALL + lam * np.eye(3)
    P = np.linalg.inv(G)
    B_ref = np.eye(3) - P / np.diag(P)[None, :]
    np.fill_diagonal(B_ref, 0.0)
    m = EASE(l2=lam, dtype=np.float64).fit(sp.csr_matrix(X_SMALL))
    np.testing.assert_allclose(m.B_, B_ref, atol=1e-10)
    rows = np.array([3, 0])
    np.testing.assert_allclose(m.score(rows, sp.csr_matrix(X_SMALL)), X_SMALL[rows] @ B_ref, atol=1e-6)


def test_ease_binarizes_by_default_and_float32_close_to_float64():
    Xw = _random_X(2)
    Xb = (Xw > 0).astype(np.float64)
    G = Xb.T @ Xb + 10.0 * np.eye(Xb.shape[1])
    P = np.linalg.inv(G)
    B_ref = -P / np.diag(P)[None, :]
    np.fill_diagonal(B_ref, 0.0)
    m = EASE(l2=10.0).fit(sp.csr_matrix(Xw))
    assert m.B_.dtype == np.float32
    np.testing.assert_allclose(m.B_, B_ref, atol=1e-5)
    assert not np.allclose(EASE(l2=10.0, binarize=False, dtype=np.float64).fit(sp.csr_matrix(Xw)).B_, B_ref)


def test_gram_blocks_and_inplace_inverse(monkeypatch):
    X = _random_X(3, shape=(20, 9))
    monkeypatch.setattr(ease_mod, "_BLOCK_CELLS", 20)  # force several row blocks
    G = gram_matrix(sp.csr_matrix(X), dtype=np.float64)
    np.testing.assert_allclose(G, X.T.astype(np.float64) @ X)
    G += 5 * np.eye(9)
    ref = np.linalg.inv(G)
    P = inverse_spd_inplace(G)
    np.testing.assert_allclose(P, ref, atol=1e-10)
    assert np.shares_memory(P, G)  # no second n² buffer
    with pytest.raises(np.linalg.LinAlgError):
        inverse_spd_inplace(-np.eye(3))


def test_itemknn_cosine_equals_sklearn_when_no_pruning(monkeypatch):
    X = _random_X(4)
    monkeypatch.setattr(nb_mod, "_BLOCK_CELLS", 30)  # several column blocks
    m = ItemKNN(k_neighbors=100).fit(sp.csr_matrix(X))
    ref = cosine_similarity((X > 0).T)
    np.fill_diagonal(ref, 0.0)
    np.testing.assert_allclose(m.similarity_.toarray(), ref, atol=1e-5)
    rows = np.arange(5)
    np.testing.assert_allclose(m.score(rows, sp.csr_matrix(X)), (X[rows] > 0) @ ref, atol=1e-5)
    # weighted variant uses the raw values
    mw = ItemKNN(k_neighbors=100, weighted=True).fit(sp.csr_matrix(X))
    refw = cosine_similarity(X.T)
    np.fill_diagonal(refw, 0.0)
    np.testing.assert_allclose(mw.similarity_.toarray(), refw, atol=1e-5)


def test_itemknn_keeps_top_k_per_target_and_shrink():
    X = _random_X(5)
    full = ItemKNN(k_neighbors=100).fit(sp.csr_matrix(X)).similarity_.toarray()
    S = ItemKNN(k_neighbors=2).fit(sp.csr_matrix(X)).similarity_.toarray()
    assert ((S > 0).sum(axis=0) <= 2).all()
    for j in range(S.shape[1]):
        kept = np.sort(S[:, j][S[:, j] > 0])
        np.testing.assert_allclose(kept, np.sort(full[:, j])[-len(kept):], atol=1e-6)
    Xb = (X > 0).astype(np.float64)
    co = Xb.T @ Xb
    n = np.sqrt(np.diag(co))
    shrunk = co / (np.outer(n, n) + 10.0)
    np.fill_diagonal(shrunk, 0)
    Ss = ItemKNN(k_neighbors=100, shrink=10.0).fit(sp.csr_matrix(X)).similarity_.toarray()
    np.testing.assert_allclose(Ss, shrunk, atol=1e-5)


def test_itemknn_similar_items_rows_are_neighbours():
    X = _random_X(6)
    m = ItemKNN(k_neighbors=100).fit(sp.csr_matrix(X))
    sim = m.similar_items(k=3)
    full = m.similarity_.toarray()
    for i in range(sim.shape[0]):
        row = sim[i].toarray().ravel()
        assert (row > 0).sum() <= 3 and row[i] == 0
        if (row > 0).any():  # kept neighbours are the strongest ones of item i
            assert row[row > 0].min() >= np.sort(full[i])[-3] - 1e-6


def _rp3_dense(X, alpha, beta):
    Xb = (X > 0).astype(np.float64)
    Pui = Xb / Xb.sum(axis=1, keepdims=True).clip(min=1)
    Piu = Xb.T / Xb.T.sum(axis=1, keepdims=True).clip(min=1)
    deg = Xb.sum(axis=0)
    W = (Piu**alpha) @ (Pui**alpha) * np.where(deg > 0, deg, 1.0) ** -beta
    np.fill_diagonal(W, 0.0)
    return W


def test_rp3beta_matches_dense_random_walk_and_row_pruning():
    X = _random_X(7)
    m = RP3beta(alpha=0.8, beta=0.3, k_neighbors=100).fit(sp.csr_matrix(X))
    ref = _rp3_dense(X, 0.8, 0.3)
    np.testing.assert_allclose(m.similarity_.toarray(), ref, atol=1e-5)
    rows = np.array([0, 4, 9])
    np.testing.assert_allclose(m.score(rows, sp.csr_matrix(X)), (X[rows] > 0) @ ref, atol=1e-5)
    W1 = RP3beta(alpha=0.8, beta=0.3, k_neighbors=1).fit(sp.csr_matrix(X)).similarity_.toarray()
    assert ((W1 > 0).sum(axis=1) <= 1).all()
    np.testing.assert_allclose(W1.max(axis=1), ref.max(axis=1), atol=1e-6)


def test_popularity_counts_distinct_users():
    X = sp.csr_matrix(np.array([[5, 0, 1], [2, 0, 0], [0, 0, 3]], dtype=np.float32))
    s = Popularity().fit(X).score(np.array([0, 2]), X)
    assert s.shape == (2, 3) and s.dtype == np.float32
    np.testing.assert_array_equal(s[0], [2, 0, 2])


def test_ease_dense_side_information_is_stacked_rows():
    """Dense side information equals stacking g_e·Eᵀ under X as pseudo-users, and links cold items."""
    import numpy as np
    import scipy.sparse as sp

    from reclm_dagster.models.ease import EASE

    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((30, 6)) < 0.4).astype(np.float32))
    X[:, 5] = 0  # item 5: cold, nobody consumed it
    X.eliminate_zeros()
    E = rng.normal(size=(6, 3)).astype(np.float32)
    E[5] = E[0]  # ...but it reads like item 0
    dense = EASE(l2=5.0, dense_weight=0.7, dtype=np.float64).fit(X, dense=E)
    stacked = EASE(l2=5.0, dtype=np.float64, binarize=False).fit(sp.vstack([X, sp.csr_matrix(0.7 * E.T)]))
    assert np.allclose(dense.B_, stacked.B_)
    plain = EASE(l2=5.0, dtype=np.float64).fit(X)
    assert np.allclose(plain.B_[:, 5], 0) and abs(dense.B_[0, 5]) > 1e-3  # the cold item is reachable only with E


@pytest.mark.parametrize("make", [lambda: ItemKNN(k_neighbors=3), lambda: ItemKNN(k_neighbors=4, shrink=2.0),
                                  lambda: RP3beta(beta=0.3, k_neighbors=3)])
def test_sparse_and_dense_pruning_keep_the_same_neighbours(monkeypatch, make):
    """Sparse blocks are pruned entry by entry, dense ones by argpartition: per item the same
    kept weights (only which of two tied neighbours is kept may differ)."""
    rng = np.random.default_rng(7)
    X = sp.csr_matrix((rng.random((40, 60)) < 0.06) * rng.integers(1, 4, (40, 60)), dtype=np.float32)
    monkeypatch.setattr(nb_mod, "_SPARSE_TOPK_DENSITY", 1.1)  # every block sparse
    sparse = make().fit(X).similarity_
    monkeypatch.setattr(nb_mod, "_SPARSE_TOPK_DENSITY", -1.0)  # every block dense
    dense = make().fit(X).similarity_
    if isinstance(make(), RP3beta):  # kept per source row
        sparse, dense = sparse.T, dense.T
    sparse, dense = sp.csc_matrix(sparse), sp.csc_matrix(dense)
    assert sparse.nnz == dense.nnz > 0 and (sparse.diagonal() == 0).all()
    for j in range(X.shape[1]):
        a = np.sort(sparse.data[sparse.indptr[j]:sparse.indptr[j + 1]])
        b = np.sort(dense.data[dense.indptr[j]:dense.indptr[j + 1]])
        np.testing.assert_allclose(a, b, rtol=1e-5)
    assert (np.diff(sparse.indptr) <= 4).all()


@pytest.mark.parametrize("density", [1.1, -1.0])  # every block pruned entry by entry / every block dense
@pytest.mark.parametrize("grid", ["itemknn", "rp3beta", "rp3beta_normalised"])
def test_a_grid_fitted_in_one_pass_is_each_setting_fitted_alone(monkeypatch, density, grid):
    """The baselines' grids share the co-occurrence (random-walk) product: every model equals its
    own fit, entry for entry, ties included — in several blocks, sparse and dense."""
    rng = np.random.default_rng(11)
    X = sp.csr_matrix((rng.random((50, 70)) < 0.08) * rng.integers(1, 4, (50, 70)), dtype=np.float32)
    X[:, 3] = X[:, 4]  # two items with the same column: tied neighbours everywhere
    monkeypatch.setattr(nb_mod, "_SPARSE_TOPK_DENSITY", density)
    monkeypatch.setattr(nb_mod, "_BLOCK_CELLS", 70 * 9)  # blocks of 9 items
    if grid == "itemknn":
        ks = (1, 3, 5, 200)
        shared = ItemKNN.fit_grid(X, ks, shrink=1.5)
        alone = [ItemKNN(k_neighbors=k, shrink=1.5).fit(X) for k in ks]
    else:
        betas, extra = (0.0, 0.2, 0.35, 0.5), {"normalize_similarity": grid == "rp3beta_normalised"}
        shared = RP3beta.fit_grid(X, betas, alpha=0.8, k_neighbors=4, **extra)
        alone = [RP3beta(alpha=0.8, beta=b, k_neighbors=4, **extra).fit(X) for b in betas]
    assert all((m.similarity_ != shared[0].similarity_).nnz for m in shared[1:])  # the settings differ
    for a, b in zip(shared, alone):
        assert (a.similarity_ != b.similarity_).nnz == 0
        assert a.similarity_.nnz == b.similarity_.nnz and np.array_equal(a.similarity_.indices, b.similarity_.indices)


def test_ranking_only_each_groups_best_keeps_the_same_entries_in_the_same_order():
    """``_ranked_groups(depth=k)`` partitions long groups before sorting: the entries it returns are
    exactly the first k of the full sort, ties (equal values) broken by the lower ``other`` alike."""
    rng = np.random.default_rng(3)
    for trial in range(200):
        n, n_groups = int(rng.integers(1, 300)), int(rng.integers(1, 15))
        group = np.sort(rng.integers(0, n_groups, n))
        other = np.concatenate([rng.permutation(500)[: (group == g).sum()] for g in np.unique(group)])
        vals = rng.integers(-3, 4, n).astype(float) if trial % 2 else rng.random(n).round(1)  # many ties
        depth = int(rng.integers(1, 25))
        full = nb_mod._ranked_groups(group, other, vals)
        best = nb_mod._ranked_groups(group, other, vals, depth=depth)
        first = full[3] < depth
        for a, b in zip(full, best):
            np.testing.assert_array_equal(a[first], b)
