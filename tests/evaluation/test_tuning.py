"""Validation-time choices: ties go to the long tail; per-user NDCG agrees with the protocol."""

import numpy as np
import pandas as pd
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
