"""The in-process cache of sparse CF fits: a hit only for the same config on the same rows."""

import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.models import fit_cache
from reclm_dagster.models import large_catalogue as lc
from reclm_dagster.models.large_catalogue import SparseCFConfig, SparseItemCF


def _data(seed=0, users=120, items=40, features=6):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix((rng.random((users, items)) < 0.15).astype(np.float32))
    side = sp.csr_matrix((rng.random((items, features)) < 0.3).astype(np.float32))
    return X, side


@pytest.fixture()
def solves(monkeypatch):
    calls = []
    real = lc.restricted_ease
    monkeypatch.setattr(lc, "restricted_ease", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def _fit(X, side=None, **config):
    return SparseItemCF(SparseCFConfig(**{"k_neighbors": 10, "side_weight": 1.0, **config})).fit(X, side=side)


def test_a_second_fit_on_the_same_rows_is_the_first_without_solving_again(solves):
    X, side = _data()
    first = _fit(X, side)
    again = _fit(X.copy(), side.copy())  # equal content, other objects
    assert len(solves) == 1
    assert (again.similarity_ != first.similarity_).nnz == 0 and np.array_equal(again.item_pop_, first.item_pop_)
    fit_cache.clear()
    fresh = _fit(X, side)
    assert len(solves) == 2 and (fresh.similarity_ != first.similarity_).nnz == 0


def test_other_rows_or_another_setting_are_fitted_anew(solves):
    X, side = _data()
    base = _fit(X, side)
    one_more = X.tolil()
    one_more[0, np.flatnonzero(X[0].toarray().ravel() == 0)[0]] = 1.0  # one more interaction
    word = side.tolil()
    word[3, np.flatnonzero(side[3].toarray().ravel() == 0)[0]] = 1.0  # one more side feature: a word
    others = [_fit(one_more.tocsr(), side), _fit(X, word.tocsr()), _fit(X, side, l2=50.0), _fit(X, None),
              _fit(X, side, side_weight=2.0)]
    assert len(solves) == 1 + len(others)
    assert all((m.similarity_ != base.similarity_).nnz for m in others)


def test_a_lambda_re_solved_from_the_kept_gram_serves_a_fit_at_that_lambda(solves):
    X, side = _data(1)
    kept = SparseItemCF(SparseCFConfig(k_neighbors=10, side_weight=1.0), keep_gram=True).fit(X, side=side)
    resolved = kept.with_l2(500.0)
    assert len(solves) == 2
    served = _fit(X, side, l2=500.0)
    assert len(solves) == 2 and (served.similarity_ != resolved.similarity_).nnz == 0


def test_a_fit_that_keeps_its_gram_is_never_served_without_one(solves):
    X, _ = _data(2)
    _fit(X)
    kept = SparseItemCF(SparseCFConfig(k_neighbors=10, side_weight=1.0), keep_gram=True).fit(X)
    assert len(solves) == 2 and kept.gram_ is not None


def test_the_cache_keeps_at_most_its_budget_least_recent_first(monkeypatch):
    monkeypatch.setattr(fit_cache, "MAX_BYTES", 100)
    fit_cache.put("a", {"v": 1}, 60)
    fit_cache.put("b", {"v": 2}, 30)
    assert fit_cache.get("a") == {"v": 1}  # a is now the most recent
    fit_cache.put("c", {"v": 3}, 30)  # 120 > 100: b goes
    assert fit_cache.get("b") is None and fit_cache.get("a") and fit_cache.get("c")
    fit_cache.put("huge", {"v": 4}, 101)
    assert fit_cache.get("huge") is None and fit_cache.get("a")


def test_the_data_key_reads_every_stored_value_and_the_shape():
    X, _ = _data(3)
    k = fit_cache.data_key(X)
    assert fit_cache.data_key(sp.coo_matrix(X)) == k  # the same matrix in another format
    Y = X.copy()
    Y.data[0] = 2.0
    assert fit_cache.data_key(Y) != k
    wider = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], X.shape[1] + 1))
    assert fit_cache.data_key(wider) != k
    assert fit_cache.data_key(X, None) != fit_cache.data_key(X)
