"""Above the tuning budget every choice is judged on one seeded sample of the validation users,
above the test budget one seeded sample of the test users is reported on; below them nothing changes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from test_eval_offline import synthetic_tables
from reclm_dagster.evaluation import baselines, holdout, offline, tuning
from reclm_dagster.evaluation.cold_users import ColdUserProtocol, cold_user_split
from reclm_dagster.evaluation.holdout import EvaluationProtocol, prepare_split, reported_rows, tuning_rows
from reclm_dagster.models.hybrid import HybridConfig

N_ITEMS, CAP, TEST_CAP = 30, 12, 9


def users_of(X) -> np.ndarray:
    return np.flatnonzero(np.diff(sp.csr_matrix(X).indptr) > 0)


@pytest.fixture()
def small_floor(monkeypatch):
    monkeypatch.setattr(holdout, "TUNING_MIN_USERS", 5)  # the real floor (500) exceeds these tables


def protocol(cells: int = CAP * N_ITEMS, **kw) -> EvaluationProtocol:
    return EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=3, ks=(10,), mmr_lambda=None,
                              tuning_max_cells=cells, test_max_cells=TEST_CAP * N_ITEMS, **kw)


def test_tuning_rows_keep_every_user_below_the_budget_and_a_seeded_sample_above(small_floor):
    rng = np.random.default_rng(0)
    X = sp.random(60, N_ITEMS, density=0.1, format="csr", random_state=rng)
    X.data[:] = 1
    assert (tuning_rows(X, protocol(cells=60 * N_ITEMS)) != X).nnz == 0
    sample = tuning_rows(X, protocol())
    kept = users_of(sample)
    assert sample.shape == X.shape and len(kept) == CAP and set(kept) <= set(users_of(X))
    assert (sample[kept] != X[kept]).nnz == 0  # a kept user keeps every validation pair
    assert (tuning_rows(X, protocol()) != sample).nnz == 0  # same seed, same users
    other = EvaluationProtocol(**{**protocol().__dict__, "seed": 4})
    assert set(users_of(tuning_rows(X, other))) != set(kept)
    reported = users_of(reported_rows(X, protocol()))
    assert len(reported) == TEST_CAP and set(reported) != set(kept[:TEST_CAP])  # its own draw


def test_the_cap_counts_cells_and_never_goes_below_the_floor():
    p = EvaluationProtocol(tuning_max_cells=1_000_000)
    assert p.tuning_users(1_000) == 1_000 and p.tuning_users(100_000) == holdout.TUNING_MIN_USERS
    with pytest.raises(ValueError, match="tuning_max_cells"):
        EvaluationProtocol(tuning_max_cells=0)
    with pytest.raises(ValueError, match="test_max_cells"):
        EvaluationProtocol(test_max_cells=-1)


def test_cold_users_per_role_stay_within_the_cap():
    tables = synthetic_tables(n_users=200)
    for cap, expected in ((None, 20), (7, 7)):
        _, cold = cold_user_split(tables.interactions, ColdUserProtocol(user_fraction=0.1, max_users=cap))
        sizes = cold.groupby("role")["user_id"].nunique()
        assert sizes.to_dict() == {"test": expected, "valid": expected}


def test_every_choice_reads_only_the_sampled_validation_users_and_test_only_the_sampled_test_users(small_floor, monkeypatch):
    tables = synthetic_tables(n_users=120)
    p = protocol(ablations=False, cold_users=False)
    data = prepare_split(tables, p)
    sampled, everyone = set(users_of(data.X_tune)), set(users_of(data.X_valid))
    reported, tested = set(users_of(data.X_report)), set(users_of(data.X_test))
    assert len(sampled) == CAP < len(everyone) and len(reported) == TEST_CAP < len(tested)

    judged, test_users = [], []
    real_users, real_evaluate = tuning.validation_users, baselines.evaluate

    def users_spy(X_valid):
        judged.append(set(real_users(X_valid)))
        return real_users(X_valid)

    def evaluate_spy(score_fn, train_X, test_X, exclude_X, **kw):
        (test_users if (test_X != data.X_report).nnz == 0 else judged).append(set(users_of(test_X)))
        return real_evaluate(score_fn, train_X, test_X, exclude_X, **kw)

    hybrid_test, real_many = [], offline.evaluate_many

    def many_spy(score_fns, train_X, test_X, exclude_X, **kw):
        hybrid_test.append(set(users_of(test_X)))
        return real_many(score_fns, train_X, test_X, exclude_X, **kw)

    monkeypatch.setattr(offline, "evaluate_many", many_spy)
    monkeypatch.setattr(tuning, "validation_users", users_spy)
    monkeypatch.setattr(baselines, "evaluate", evaluate_spy)
    result = offline.offline_evaluation(tables, p, HybridConfig(), baselines=("ease",))
    assert judged and all(users == sampled for users in judged)  # hybrid grid, re-ranker and EASE's λ
    assert test_users and all(users == reported for users in test_users)
    assert result.scored_users == {"tuning": (CAP, len(everyone)), "test": (TEST_CAP, len(tested))}
    assert hybrid_test == [reported]  # the hybrid, its fusion and its signals: one pass over the sample
