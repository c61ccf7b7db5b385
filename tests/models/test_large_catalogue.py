"""The large-catalogue CF path: SparseItemCF, the memory decision and the switch (issue 13.3)."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.models.ease import EASE
from reclm_dagster.models.large_catalogue import (
    ENV_DENSE_MAX_ITEMS,
    SparseCFConfig,
    SparseItemCF,
    cf_for_catalogue,
    dense_ease_bytes,
    dense_ease_fits,
    dense_max_items,
    restricted_ease,
    topk_per_row,
)
from reclm_dagster.models.neighbors import ItemKNN, RP3beta

# 6 users × 5 items: items 0 and 1 are nearly always consumed together, 2 and 3 together,
# item 4 by one user alone.
X_TINY = sp.csr_matrix(np.array([
    [1, 1, 0, 0, 0],
    [1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0],
    [0, 0, 1, 1, 0],
    [0, 0, 1, 1, 0],
    [1, 0, 0, 0, 1],
], dtype=np.float32))


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv(ENV_DENSE_MAX_ITEMS, raising=False)


def _random_X(seed=0, shape=(80, 40), p=0.15):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix(((rng.random(shape) < p) * rng.integers(1, 4, shape)).astype(np.float32))


@pytest.mark.parametrize("similarity", ["ease", "rp3beta", "cosine"])
def test_co_consumed_item_ranks_first_and_seen_items_are_left_to_the_caller(similarity):
    m = SparseItemCF(similarity=similarity, k_neighbors=10).fit(X_TINY)
    H = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 1, 0]], dtype=np.float32))
    scores = m.score(np.arange(2), H)
    assert scores.shape == (2, 5) and scores.dtype == np.float32
    # seen items are not masked by score() (as EASE / ItemKNN): the evaluator excludes them
    unseen0 = np.where(H.toarray()[0] > 0, -np.inf, scores[0])
    unseen1 = np.where(H.toarray()[1] > 0, -np.inf, scores[1])
    assert np.argmax(unseen0) == 1  # 0's partner
    assert np.argmax(unseen1) == 2  # 3's partner
    assert scores[1, 0] == 0 and scores[1, 1] == 0 and scores[1, 4] == 0  # no co-consumption: no score
    items, vals = m.recommend(np.arange(2), H, k=3)
    assert items[0, 0] == 1 and items[1, 0] == 2
    assert 0 not in items[0] and 3 not in items[1]  # recommend() excludes the history
    assert np.all(np.diff(vals, axis=1) <= 0)


@pytest.mark.parametrize("weighted_input", [False, True])
def test_full_neighbourhoods_match_the_dense_block_models(weighted_input):
    X = _random_X(1) if weighted_input else sp.csr_matrix((_random_X(1) > 0).astype(np.float32))
    n = X.shape[1]
    rows = np.arange(X.shape[0])
    rp3 = SparseItemCF(similarity="rp3beta", k_neighbors=n, alpha=0.7, beta=0.3, block_products=200).fit(X)
    ref = RP3beta(alpha=0.7, beta=0.3, k_neighbors=n).fit(X)
    np.testing.assert_allclose(rp3.score(rows, X), ref.score(rows, X), rtol=1e-5, atol=1e-6)
    cos = SparseItemCF(similarity="cosine", k_neighbors=n, block_products=200).fit(X)
    ref = ItemKNN(k_neighbors=n).fit(X)
    np.testing.assert_allclose(cos.score(rows, X), ref.score(rows, X), rtol=1e-5, atol=1e-6)


def test_restricted_ease_is_ease_when_every_pair_co_occurs():
    rng = np.random.default_rng(4)
    X = sp.csr_matrix((rng.random((300, 25)) < 0.5).astype(np.float32))
    Xd = X.toarray().astype(np.float64)
    assert ((Xd.T @ Xd) > 0).all()  # full neighbourhoods = EASE's full support
    m = SparseItemCF(similarity="ease", k_neighbors=24, l2=5.0, block_products=500).fit(X)
    ref = EASE(l2=5.0, dtype=np.float64).fit(X)
    np.testing.assert_allclose(m.similarity_.toarray(), ref.B_, atol=1e-5)
    # a smaller support: each target's weights solve its own ridge problem on its k neighbours
    m = SparseItemCF(similarity="ease", k_neighbors=6, l2=5.0, gram_neighbors=10).fit(X)
    G = Xd.T @ Xd
    B = m.similarity_.toarray()
    for j in range(25):
        N = np.flatnonzero(B[:, j])
        assert 0 < len(N) <= 6 and j not in N
        w = np.linalg.solve(G[np.ix_(N, N)] + 5.0 * np.eye(len(N)), G[N, j])
        np.testing.assert_allclose(B[N, j], w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("jobs", [2, 3])
def test_restricted_ease_split_between_threads_is_the_single_thread_result(jobs):
    X = _random_X(seed=5, shape=(150, 70), p=0.25)
    G = topk_per_row(sp.csr_matrix(X.T @ X - sp.diags((X.T @ X).diagonal()), dtype=np.float32), 10)
    diag = np.asarray(X.multiply(X).sum(axis=0)).ravel()
    alone = restricted_ease(G, diag, 20.0, batch=3, jobs=1)
    split = restricted_ease(G, diag, 20.0, batch=3, jobs=jobs)
    assert alone.nnz > 0 and (alone != split).nnz == 0 and np.array_equal(alone.indptr, split.indptr)


def test_restricted_ease_at_another_l2_from_the_kept_gram_is_a_fresh_fit_at_it():
    X = _random_X(seed=2, shape=(120, 60), p=0.2)
    side = sp.csr_matrix((np.random.default_rng(3).random((60, 7)) < 0.3).astype(np.float32))
    first = SparseItemCF(l2=50.0, k_neighbors=8, max_per_source=5, side_weight=0.5, keep_gram=True).fit(X, side)
    assert SparseItemCF(l2=50.0).fit(X).gram_ is None  # kept only when asked (k · gram_neighbors per item)
    for l2 in (5.0, 500.0):
        fresh = SparseItemCF(l2=l2, k_neighbors=8, max_per_source=5, side_weight=0.5).fit(X, side)
        refit = first.with_l2(l2)
        assert refit.config == fresh.config
        assert (refit.similarity_ != fresh.similarity_).nnz == 0 and refit.similarity_.nnz == fresh.similarity_.nnz
        np.testing.assert_array_equal(refit.score(np.arange(10), X), fresh.score(np.arange(10), X))
        assert (refit.similarity_ != first.similarity_).nnz > 0  # λ changed the weights
    with pytest.raises(ValueError, match="keep_gram"):
        SparseItemCF(l2=50.0).fit(X).with_l2(5.0)


def test_k_neighbors_per_source_item_and_no_self_similarity():
    X = _random_X(2, shape=(200, 60), p=0.2)
    m = SparseItemCF(similarity="rp3beta", k_neighbors=7, block_products=500).fit(X)
    assert np.diff(m.similarity_.indptr).max() <= 7
    assert m.similarity_.diagonal().sum() == 0
    m = SparseItemCF(similarity="ease", k_neighbors=7).fit(X)  # ease: k per target (column)
    assert np.diff(m.similarity_.tocsc().indptr).max() <= 7
    assert m.similarity_.diagonal().sum() == 0


def test_topk_per_row_keeps_the_largest():
    rng = np.random.default_rng(3)
    D = rng.random((20, 30)) * (rng.random((20, 30)) < 0.5)
    P = topk_per_row(sp.csr_matrix(D), 4).toarray()
    for r in range(20):
        nz = np.sort(D[r][D[r] > 0])[::-1][:4]
        np.testing.assert_allclose(np.sort(P[r][P[r] > 0])[::-1], nz)


def test_recommend_fills_short_lists_by_popularity_then_pads():
    m = SparseItemCF(k_neighbors=10).fit(X_TINY)
    H = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=np.float32))
    items, vals = m.recommend(np.arange(3), H, k=4)
    assert items[0, 0] == 0 and vals[0, 0] > 0  # item 4's only co-consumed item
    assert set(items[0]) == {0, 1, 2, 3}  # the rest from popularity, never the seen item 4
    assert list(items[1]) == [0, 1, 2, 3]  # empty history: most popular first (ties by id)
    assert np.all(items[2] == -1)  # nothing left to recommend


def test_side_information_reaches_items_without_interactions():
    X = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32))
    side = sp.csr_matrix(np.array([[1], [0], [1]], dtype=np.float32))  # items 0 and 2 share a feature
    plain = SparseItemCF(similarity="cosine").fit(X)
    with_side = SparseItemCF(similarity="cosine", side_weight=1.0).fit(X, side=side)
    H = sp.csr_matrix(np.array([[1, 0, 0]], dtype=np.float32))
    assert plain.score(np.array([0]), H)[0, 2] == 0
    assert with_side.score(np.array([0]), H)[0, 2] > 0


def test_dense_ease_fits_from_free_bytes():
    need = dense_ease_bytes(10_000)  # two float32 n² arrays
    assert need == 2 * 4 * 10_000**2
    assert dense_ease_fits(10_000, free_bytes=int(need / 0.75) + 1)
    assert not dense_ease_fits(10_000, free_bytes=int(need / 0.75) - 10**6)
    assert not dense_ease_fits(40_000, free_bytes=8 * 2**30)  # 12.8 GB peak vs 8 GiB free
    assert dense_ease_fits(40_000, free_bytes=24 * 2**30)
    assert dense_max_items(24 * 2**30) == pytest.approx(np.sqrt(0.75 * 24 * 2**30 / 8), abs=1)
    assert dense_ease_fits(1000)  # the machine's own free memory: a 1000-item EASE fits anywhere


def test_env_override_decides_alone(monkeypatch):
    monkeypatch.setenv(ENV_DENSE_MAX_ITEMS, "5000")
    assert dense_ease_fits(5000, free_bytes=0)
    assert not dense_ease_fits(5001, free_bytes=10**15)
    monkeypatch.setenv(ENV_DENSE_MAX_ITEMS, "lots")
    with pytest.raises(ValueError):
        dense_ease_fits(10)


def test_switch_returns_the_sparse_model_above_the_threshold(monkeypatch):
    free = 10**9  # 1 GB: dense fits up to sqrt(0.75e9 / 8) ≈ 9.7k items
    small = cf_for_catalogue(5_000, ease_l2=300.0, side_weight=0.5, free_bytes=free)
    assert isinstance(small, EASE) and small.l2 == 300.0 and small.side_weight == 0.5
    big = cf_for_catalogue(20_000, side_weight=0.5, free_bytes=free)
    assert isinstance(big, SparseItemCF) and big.config.side_weight == 0.5
    cfg = SparseCFConfig(similarity="cosine", k_neighbors=50)
    assert cf_for_catalogue(20_000, free_bytes=free, sparse=cfg).config is cfg
    monkeypatch.setenv(ENV_DENSE_MAX_ITEMS, "100")
    assert isinstance(cf_for_catalogue(101), SparseItemCF)  # a tiny budget proves the switch
    assert isinstance(cf_for_catalogue(100), EASE)
    # the sparse model is a drop-in: fit / score on the same arguments as EASE
    m = cf_for_catalogue(X_TINY.shape[1] + 200).fit(X_TINY)
    assert m.score(np.arange(2), X_TINY).shape == (2, 5)


def test_fit_memory_is_o_nnz_not_o_n_squared():
    n_items, n_users, nnz = 50_000, 20_000, 400_000
    rng = np.random.default_rng(0)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8  # power-law popularity, as real catalogues
    items = rng.choice(n_items, nnz, p=pop / pop.sum())
    users = rng.integers(0, n_users, nnz)
    X = sp.csr_matrix((np.ones(nnz, np.float32), (users, items)), shape=(n_users, n_items))
    X.sum_duplicates()
    tracemalloc.start()
    m = SparseItemCF(k_neighbors=20, block_products=2**20).fit(X)  # the default model: restricted EASE
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dense = 4 * n_items**2  # 10 GB: one float32 n² array
    assert m.similarity_.nnz <= 20 * n_items
    assert m.nbytes <= 12 * 20 * n_items + 8 * (n_items + 1) + 4 * n_items
    # O(nnz + n · k) plus one product block (block_products) while fitting, not n²
    assert peak < dense / 50
    items_out, _ = m.recommend(np.arange(100), X, k=20)
    assert (items_out >= 0).all()
