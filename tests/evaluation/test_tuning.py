"""Validation-time choices: ties go to the long tail; per-user NDCG agrees with the protocol;
the re-ranker is judged on users it never saw, and only too little data may skip it."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reclm_dagster.evaluation.protocol import evaluate
from reclm_dagster.evaluation.tuning import choose_setting, per_user_ndcg


def test_ties_within_tolerance_go_to_the_setting_that_reaches_cold_items():
    table = pd.DataFrame({"ndcg@10": [0.300, 0.2985, 0.250], "cold_recall@10": [0.01, 0.03, 0.20]})
    assert choose_setting(table, tolerance=0.01) == 1  # 0.2985 is within 1% of 0.300; 0.25 is not
    assert choose_setting(table, tolerance=0.0) == 0


def test_per_user_ndcg_averages_to_the_protocols_ndcg():
    rng = np.random.default_rng(0)
    X_train = sp.csr_matrix((rng.random((30, 20)) < 0.2).astype(np.float32))
    X_test = sp.csr_matrix(((rng.random((30, 20)) < 0.15) & (X_train.toarray() == 0)).astype(np.float32))
    S = rng.normal(size=(30, 20)).astype(np.float32)
    users = np.arange(30)
    values = per_user_ndcg(lambda r: S[r], X_test, X_train, users, k=10)
    res = evaluate(lambda r: S[r], X_train, X_test, X_train, ks=(10,))
    assert len(values) == res["n_users"]
    assert np.isclose(values.mean(), res["ndcg@10"])


class FakeHybrid:
    """The slice of HybridRecommender that ``attach_reranker`` uses, over fixed per-user signals."""

    def __init__(self, signals: dict[str, np.ndarray]):
        self.signals, self.reranker_ = signals, None

    def score_signals(self, users, X):
        return {k: v[users] for k, v in self.signals.items()}

    @staticmethod
    def history_length(users, X):
        return np.diff(sp.csr_matrix(X)[users].indptr)

    def fuse(self, signals, lengths=None):
        return signals["cf"].copy()  # the misleading signal: only the ranker can learn 'text'

    def user_said(self, users):
        return np.zeros(len(users), bool)

    def scorer(self, name, X):
        def score(rows):
            signals = self.score_signals(rows, X)
            fused = self.fuse(signals)
            if self.reranker_ is None:
                return fused
            return self.reranker_.rerank(signals, fused, sp.csr_matrix(X)[rows], self.user_said(rows))
        return score


def _validation_task(n_users=300, n_items=60, seed=0):
    """(model, X_train, X_valid, popularity): validation items are the 'text' top 3; every 10th user has none."""
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(n_users, n_items)).astype(np.float32)
    cf = rng.normal(size=(n_users, n_items)).astype(np.float32)
    order = np.argsort(-text, axis=1)
    valid = np.zeros((n_users, n_items), np.float32)
    np.put_along_axis(valid, order[:, :3], 1.0, axis=1)
    valid[::10] = 0
    train = np.zeros((n_users, n_items), np.float32)
    np.put_along_axis(train, order[:, -2:], 1.0, axis=1)
    popularity = np.full(n_items, 10)
    return FakeHybrid({"cf": cf, "text": text}), sp.csr_matrix(train), sp.csr_matrix(valid), popularity


def test_reranker_decision_users_neither_trained_nor_early_stopped_the_ranker(monkeypatch):
    from reclm_dagster.evaluation import tuning
    from reclm_dagster.models.reranker import LearnedReranker

    seen: dict[str, np.ndarray] = {}
    real_users, real_fit, real_ndcg = tuning.validation_users, LearnedReranker.fit_batches, tuning.per_user_ndcg

    def spy_users(*args, **kwargs):
        seen["users"] = real_users(*args, **kwargs)
        return seen["users"]

    def spy_fit(self, *args, **kwargs):
        holdout = np.asarray(kwargs["holdout"] if "holdout" in kwargs else args[4], bool)
        train = kwargs.get("train")
        seen["early_stop"] = seen["users"][holdout]
        seen["train"] = seen["users"][~holdout if train is None else np.asarray(train, bool)]
        return real_fit(self, *args, **kwargs)

    def spy_ndcg(score_fn, X_target, exclude, users, *args, **kwargs):
        seen.setdefault("decide", users)
        return real_ndcg(score_fn, X_target, exclude, users, *args, **kwargs)

    monkeypatch.setattr(tuning, "validation_users", spy_users)
    monkeypatch.setattr(LearnedReranker, "fit_batches", spy_fit)
    monkeypatch.setattr(tuning, "per_user_ndcg", spy_ndcg)
    model, X_train, X_valid, popularity = _validation_task()
    report = tuning.attach_reranker(model, X_train, X_valid, popularity, seed=3)

    train, early, decide = (set(seen[k].tolist()) for k in ("train", "early_stop", "decide"))
    assert train and early and decide
    assert not early & decide and not train & decide and not train & early
    assert train | early | decide == set(seen["users"].tolist())  # every validation user has one role
    assert (report["train_users"], report["early_stop_users"], report["decide_users"]) == (len(train), len(early), len(decide))
    assert report["decide_paired_z"] >= tuning.RERANKER_MIN_Z and model.reranker_ is not None  # 'text' wins clearly
    # seeded: the same seed gives the same roles
    first = {k: seen.pop(k) for k in ("train", "early_stop", "decide")}
    tuning.attach_reranker(FakeHybrid(model.signals), X_train, X_valid, popularity, seed=3)
    for k, users in first.items():
        np.testing.assert_array_equal(np.sort(seen[k]), np.sort(users))


def test_an_unexpected_reranker_error_propagates(monkeypatch):
    from reclm_dagster.evaluation import tuning
    from reclm_dagster.models.reranker import LearnedReranker

    class Broken:
        def fit(self, *args, **kwargs):
            raise ValueError("lightgbm broke")  # a ValueError, yet not 'too little data'

    monkeypatch.setattr(LearnedReranker, "_ranker", lambda self, n_jobs: Broken())
    model, X_train, X_valid, popularity = _validation_task(n_users=100)
    with pytest.raises(ValueError, match="lightgbm broke"):
        tuning.attach_reranker(model, X_train, X_valid, popularity)


def test_too_little_reranker_data_is_reported_not_silent():
    from reclm_dagster.evaluation.tuning import attach_reranker

    # Validation items that no candidate set reaches: the worst-scored of 150 items, top 100 taken.
    n_users, n_items = 60, 150
    rng = np.random.default_rng(0)
    cf = rng.normal(size=(n_users, n_items)).astype(np.float32)
    valid = np.zeros((n_users, n_items), np.float32)
    valid[np.arange(n_users), np.argmin(cf, axis=1)] = 1.0
    model = FakeHybrid({"cf": cf})
    X_train = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    report = attach_reranker(model, X_train, sp.csr_matrix(valid), np.full(n_items, 10))
    assert "candidate hit" in report["skipped"] and model.reranker_ is None
    assert report["train_users"] + report["early_stop_users"] + report["decide_users"] == n_users

    few = attach_reranker(model, X_train, sp.csr_matrix(valid[:5]), np.full(n_items, 10))
    assert few == {"skipped": "only 5 validation users (< 20)"}


@pytest.mark.parametrize("weights", [{"cf": 1.0, "text": 0.25, "lexical": 0.1, "kg": 0.0, "cold": 0.0},
                                     {"cf": 1.0, "text": 0.5, "lexical": 0.0, "kg": 0.25, "cold": 1.0}])
def test_fusion_on_signals_z_scored_once_scores_exactly_as_fusing_the_raw_signals(weights):
    """The tuning grid z-scores each validation signal once; every setting must rank as ``fuse`` would."""
    from dataclasses import replace

    from test_eval_offline import synthetic_tables
    from reclm_dagster.evaluation.offline import EvaluationProtocol
    from reclm_dagster.evaluation.holdout import prepare_split
    from reclm_dagster.evaluation.tuning import ValidationFusion, validation_signals
    from reclm_dagster.models.hybrid import HybridConfig
    from reclm_dagster.training import fit_hybrid

    data = prepare_split(synthetic_tables(n_users=60), EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=1), "t")
    model, _ = fit_hybrid(data.tables, data.train, data.mask, HybridConfig(short_history_popularity=2.0))
    config = replace(model.config, weights=weights)
    users, raw = validation_signals(model, data.X_train, data.X_valid)
    lengths = model.history_length(users, data.X_train)
    fusion = ValidationFusion(model, data.X_train, data.X_valid, block=7)  # blocks smaller than the batch
    model.config = config
    for rows in (np.arange(len(users)), np.array([3, 1, 8])):  # a contiguous run (a view) and a gather
        expected = model.fuse({n: S[rows] for n, S in raw.items()}, lengths[rows])
        z_rows = fusion._rows(users[rows])
        got = model.fuse({n: Z[z_rows] for n, Z in fusion.z.items()}, fusion.lengths[z_rows], zscored=True)
        np.testing.assert_array_equal(got, expected)
    direct = evaluate(lambda r: model.fuse({n: S[np.searchsorted(users, r)] for n, S in raw.items()},
                                           lengths[np.searchsorted(users, r)]),
                      data.X_train, data.X_valid, data.X_train, ks=(10,), item_popularity=data.popularity)
    assert fusion.ndcg(model, config, data.popularity, 10)["ndcg@10"] == direct["ndcg@10"]


def test_a_cf_refit_for_another_side_weight_equals_a_fresh_fit_at_it():
    """fit_tuned_hybrid fits text, BM25 and KG once and refits only the CF for each g."""
    import copy
    from dataclasses import replace

    from test_eval_offline import synthetic_tables
    from reclm_dagster.evaluation.offline import EvaluationProtocol
    from reclm_dagster.evaluation.holdout import prepare_split
    from reclm_dagster.models.hybrid import HybridConfig
    from reclm_dagster.training import fit_hybrid

    data = prepare_split(synthetic_tables(n_users=60), EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=1), "t")
    at_half, matrix = fit_hybrid(data.tables, data.train, data.mask, HybridConfig(side_weight=0.5))
    fresh, _ = fit_hybrid(data.tables, data.train, data.mask, HybridConfig(side_weight=2.0))
    refit = copy.copy(at_half)
    refit.config = replace(at_half.config, side_weight=2.0)
    refit.refit_cf(matrix.X, refit.item_vectors_)
    assert not np.allclose(at_half.cf_.B_, fresh.cf_.B_)  # g matters here, so the comparison can fail
    np.testing.assert_array_equal(refit.cf_.B_, fresh.cf_.B_)
    users = np.arange(matrix.X.shape[0])
    for name, S in fresh.score_signals(users, matrix.X).items():
        np.testing.assert_array_equal(refit.score_signals(users, matrix.X)[name], S, err_msg=name)
    assert at_half.cf_.side_weight == 0.5  # the copy's refit left the original alone


def test_reranker_scored_batch_by_batch_is_the_ranker_fitted_on_all_validation_signals():
    """``attach_reranker`` never holds every validation user's signals, yet trains the very ranker
    ``LearnedReranker.fit`` trains on them (batches smaller than the users, so the stream is real)."""
    from reclm_dagster.evaluation import tuning
    from reclm_dagster.models.reranker import LearnedReranker, RerankerConfig, split_validation_users

    model, X_train, X_valid, popularity = _validation_task(n_users=700)
    users, signals = tuning.validation_signals(model, X_train, X_valid)
    config = RerankerConfig(seed=3)
    roles = split_validation_users(len(users), config)
    whole = LearnedReranker(config).fit(signals, model.fuse(signals), X_train[users], X_valid[users],
                                        model.user_said(users), holdout=roles.early_stop, train=roles.train,
                                        item_popularity=popularity, batch_size=256)
    calls = []
    real = model.score_signals
    model.score_signals = lambda rows, X: calls.append(len(rows)) or real(rows, X)
    streamed = LearnedReranker(config).fit_batches(
        lambda sl: (s := model.score_signals(users[sl], X_train), model.fuse(s)), X_train[users], X_valid[users],
        model.user_said(users), holdout=roles.early_stop, train=roles.train, item_popularity=popularity,
        batch_size=256)
    assert max(calls) == 256 and sum(calls) == len(users)
    assert streamed.to_model_string() == whole.to_model_string()
