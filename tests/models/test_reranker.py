"""The learned re-ranker: candidates, features, what it learns, its stored form, and who it sees."""

import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.models.reranker import (
    CandidateFeatures, LearnedReranker, NotEnoughRerankerData, RerankerConfig, split_validation_users,
)


def test_candidates_exclude_history_and_include_cold_items_by_text():
    cfg = RerankerConfig(n_candidates=2, n_cold_candidates=1, cold_max_train=0)
    popularity = np.array([5, 5, 5, 0, 0])  # items 3 and 4 are cold
    feats = CandidateFeatures(cfg, popularity)
    fused = np.array([[9.0, 8.0, 7.0, 1.0, 0.0]], np.float32)
    text = np.array([[0.0, 0.0, 0.0, 0.1, 0.9]], np.float32)
    history = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], np.float32))
    rows, items = feats.candidates(fused, text, history)
    assert sorted(items.tolist()) == [1, 2, 4]  # top-2 fused without the consumed 0, plus the best cold item by text


def _synthetic(rng, n_users=300, n_items=60):
    """Relevance is driven by the 'text' signal only; 'cf' is noise. The fused score (cf) misleads."""
    text = rng.normal(size=(n_users, n_items)).astype(np.float32)
    cf = rng.normal(size=(n_users, n_items)).astype(np.float32)
    labels = np.zeros((n_users, n_items), np.float32)
    top = np.argsort(-text, axis=1)[:, :3]
    np.put_along_axis(labels, top, 1.0, axis=1)
    return {"cf": cf, "text": text, "lexical": np.zeros_like(cf)}, cf.copy(), sp.csr_matrix(labels)


def test_ranker_learns_the_signal_that_predicts_relevance_and_round_trips():
    rng = np.random.default_rng(0)
    signals, fused, labels = _synthetic(rng)
    n_users, n_items = fused.shape
    history = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    holdout = rng.random(n_users) < 0.3
    cfg = RerankerConfig(n_candidates=n_items, n_cold_candidates=0, n_estimators=50, min_child_samples=5)
    ranker = LearnedReranker(cfg).fit(signals, fused, history, labels, np.zeros(n_users, bool), holdout,
                                      item_popularity=np.full(n_items, 10), n_jobs=1)
    importance = ranker.feature_importance()
    assert max(importance, key=importance.get) in ("text_z", "text_logrank")
    scores = ranker.rerank(signals, fused, history, np.zeros(n_users, bool))
    top3 = np.argsort(-scores, axis=1)[:, :3]
    hits = np.take_along_axis(labels.toarray(), top3, axis=1).mean()
    fused_hits = np.take_along_axis(labels.toarray(), np.argsort(-fused, axis=1)[:, :3], axis=1).mean()
    assert hits > 0.8 and hits > fused_hits + 0.5
    restored = LearnedReranker.from_model_string(ranker.to_model_string(), np.full(n_items, 10), cfg)
    np.testing.assert_allclose(restored.rerank(signals, fused, history, np.zeros(n_users, bool)), scores, rtol=1e-5, atol=1e-5)


def test_items_outside_the_candidates_stay_below_in_fused_order():
    rng = np.random.default_rng(1)
    signals, fused, labels = _synthetic(rng, n_users=120, n_items=30)
    history = sp.csr_matrix(fused.shape, dtype=np.float32)
    cfg = RerankerConfig(n_candidates=5, n_cold_candidates=0, n_estimators=20, min_child_samples=5)
    ranker = LearnedReranker(cfg).fit(signals, fused, history, labels, np.zeros(120, bool), rng.random(120) < 0.3,
                                      item_popularity=np.full(30, 10), n_jobs=1)
    scores = ranker.rerank({k: v[:1] for k, v in signals.items()}, fused[:1], history[:1], np.zeros(1, bool))
    cand = np.argsort(-fused[0])[:5]
    rest = np.setdiff1d(np.arange(30), cand)
    assert scores[0, cand].min() > scores[0, rest].max()
    np.testing.assert_array_equal(scores[0, rest], fused[0, rest])


def test_validation_user_roles_are_seeded_disjoint_and_cover_everyone():
    roles = split_validation_users(2000, RerankerConfig(seed=7))
    masks = np.stack([roles.train, roles.early_stop, roles.decide])
    assert (masks.sum(axis=0) == 1).all()  # each user has exactly one role
    again = split_validation_users(2000, RerankerConfig(seed=7))
    np.testing.assert_array_equal(masks, np.stack([again.train, again.early_stop, again.decide]))
    assert not np.array_equal(roles.decide, split_validation_users(2000, RerankerConfig(seed=8)).decide)
    sizes = roles.sizes()
    assert sum(sizes.values()) == 2000 and 300 < sizes["decide_users"] < 500 and 300 < sizes["early_stop_users"] < 500


def test_fit_ignores_users_outside_train_and_early_stop_and_rejects_overlap():
    rng = np.random.default_rng(2)
    signals, fused, labels = _synthetic(rng, n_users=90, n_items=20)
    history = sp.csr_matrix(fused.shape, dtype=np.float32)
    cfg = RerankerConfig(n_candidates=20, n_cold_candidates=0, n_estimators=5, min_child_samples=5)
    train, holdout = np.arange(90) < 40, (np.arange(90) >= 40) & (np.arange(90) < 60)  # users 60.. are neither
    args = (signals, fused, history, labels, np.zeros(90, bool))
    ranker = LearnedReranker(cfg).fit(*args, holdout=holdout, train=train, item_popularity=np.full(20, 10), n_jobs=1)
    assert ranker.n_training_rows_ == 40 * 20  # only the train users' candidates
    with pytest.raises(ValueError, match="disjoint"):
        LearnedReranker(cfg).fit(*args, holdout=holdout, train=holdout | train, item_popularity=np.full(20, 10))
    with pytest.raises(NotEnoughRerankerData):
        LearnedReranker(cfg).fit(*args, holdout=np.zeros(90, bool), train=train, item_popularity=np.full(20, 10))
