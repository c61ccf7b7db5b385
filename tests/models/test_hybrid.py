"""The hybrid's fusion: popularity only where evidence is thin, ties broken by the crowd."""

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from reclm_dagster.models.hybrid import HybridConfig, HybridRecommender, UserText


def _model(config):
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 12
    # item 0 is by far the most popular; users 0..29 are heavy, 30..39 have one interaction (item 11)
    X = np.zeros((n_users, n_items), np.float32)
    X[:30, 0] = 1
    for u in range(30):
        X[u, rng.choice(np.arange(1, 11), 6, replace=False)] = 1
    X[30:, 11] = 1
    X = sp.csr_matrix(X)
    vectors = rng.normal(size=(n_items, 4)).astype(np.float32)
    text = UserText(np.zeros((n_users, 4), np.float32), [[] for _ in range(n_users)])
    model = HybridRecommender(config).fit(X, vectors, [["w"]] * n_items, text)
    return model, X


def test_users_with_no_evidence_get_the_popular_items():
    model, X = _model(HybridConfig(cf_model="itemknn", weights={"cf": 1.0, "text": 0.0, "lexical": 0.0}))
    empty = sp.csr_matrix(X.shape, dtype=np.float32)  # nobody has a history here
    scores = model.score(np.array([0]), empty)
    assert int(np.argmax(scores[0])) == 0


def test_short_history_popularity_fades_with_history_length():
    base = HybridConfig(cf_model="itemknn", weights={"cf": 1.0, "text": 0.0, "lexical": 0.0})
    model, X = _model(base)
    rows = np.array([0, 35])  # a heavy user and a one-interaction user
    plain = model.score(rows, X)
    model.config = replace(base, short_history_popularity=4.0)
    boosted = model.score(rows, X)
    lift = boosted - plain
    # the popularity term fades as 2^(-|history|/3): 7 interactions -> 2^(-7/3), one -> 2^(-1/3)
    spread = lift.max(axis=1) - lift.min(axis=1)
    assert spread[0] > 0 and np.isclose(spread[1] / spread[0], 2 ** (-1 / 3) / 2 ** (-7 / 3), rtol=1e-3)
    assert int(np.argmax(boosted[1] - np.where(X[35].toarray()[0] > 0, np.inf, 0))) == 0


def test_cold_boost_lifts_only_cold_items_with_evidence():
    n_items = 8
    X = sp.csr_matrix(np.array([[1, 1, 1, 0, 0, 0, 0, 1]] * 4 + [[0, 0, 0, 1, 1, 0, 0, 0]], np.float32))
    text = UserText(np.zeros((5, 4), np.float32), [[] for _ in range(5)])
    model = HybridRecommender(HybridConfig(cf_model="itemknn", weights={"cf": 1.0, "text": 0.0, "lexical": 0.0}))
    model.fit(X, np.eye(n_items, 4, dtype=np.float32), [["w"]] * n_items, text)
    cold = model.cold_items_  # items 3..6 have at most 2 interactions
    assert cold.any() and not cold.all()
    rng = np.random.default_rng(1)
    signals = {"cf": rng.normal(size=(2, n_items)).astype(np.float32),
               "lexical": rng.normal(size=(2, n_items)).astype(np.float32),
               "kg": rng.normal(size=(2, n_items)).astype(np.float32)}
    plain = model.fuse(signals)
    model.config = replace(model.config, weights={"cf": 1.0, "text": 0.0, "lexical": 0.0, "cold": 1.0})
    boosted = model.fuse(signals)
    lift = boosted - plain
    np.testing.assert_array_equal(lift[:, ~cold], 0.0)  # warm items untouched
    assert (lift[:, cold] >= 0).all() and lift[:, cold].max() > 0


def test_a_catalogue_above_the_dense_cap_gets_the_sparse_ease(monkeypatch):
    """Issue 13.3: the hybrid's side-information EASE switches to the sparse restricted EASE when
    its n_items² arrays would not fit (RECLM_DENSE_MAX_ITEMS stands in for a small machine)."""
    from reclm_dagster.models.ease import EASE
    from reclm_dagster.models.large_catalogue import SparseItemCF

    config = HybridConfig(cf_model="ease", weights={"cf": 1.0, "text": 0.0, "lexical": 0.0})
    dense, X = _model(config)
    monkeypatch.setenv("RECLM_DENSE_MAX_ITEMS", "11")  # the catalogue has 12 items
    sparse, _ = _model(config)
    assert isinstance(dense.cf_, EASE) and isinstance(sparse.cf_, SparseItemCF)
    rows = np.arange(30)
    a, b = dense.score(rows, X), sparse.score(rows, X)
    top = lambda s: set(np.argsort(-s[np.isfinite(s)])[:3])  # noqa: E731
    assert np.mean([top(a[u]) == top(b[u]) for u in range(len(rows))]) > 0.5  # mostly the same top items
