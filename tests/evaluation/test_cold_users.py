"""Cold-user protocol: who is left out, what they reveal, which of their words may be used."""

import numpy as np
import pandas as pd

from reclm_dagster.evaluation.cold_users import (
    ColdUserProtocol,
    cold_user_evaluation,
    cold_user_split,
    unrevealed_description_mask,
)
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.training import DatasetTables


def _interactions(n_users=40, per_user=8, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", 1.0) for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])


def test_split_leaves_cold_users_out_and_orders_their_interactions():
    df = _interactions()
    protocol = ColdUserProtocol(user_fraction=0.1, seed=3)
    train, cold = cold_user_split(df, protocol)
    cold_users = set(cold["user_id"])
    assert len(cold_users) == 8 and not cold_users & set(train["user_id"])  # 4 test + 4 validation users
    assert cold.groupby("role")["user_id"].nunique().to_dict() == {"test": 4, "valid": 4}
    assert len(train) + len(cold) == len(df)
    for _, g in cold.groupby("user_id"):
        assert sorted(g["position"]) == list(range(len(g)))
    # deterministic for a seed
    pd.testing.assert_frame_equal(cold, cold_user_split(df, protocol)[1])


def test_words_about_unrevealed_pairs_are_hidden():
    cold = pd.DataFrame({"user_id": ["u1"] * 4, "item_id": ["a", "b", "c", "d"], "position": [0, 1, 2, 3]})
    descriptions = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u2"], "item_id": ["a", "d", "z", "d"],
                                 "text": ["x", "y", "never played", "other user"]})
    assert unrevealed_description_mask(descriptions, cold, 0).tolist() == [False, False, True, True]
    assert unrevealed_description_mask(descriptions, cold, 1).tolist() == [True, False, True, True]


def _tables(seed=0):
    """Two tastes: even users like even items, odd users odd items; words say 'even'/'odd'."""
    rng = np.random.default_rng(seed)
    n_items, rows, descs = 24, [], []
    for u in range(60):
        liked = [i for i in range(n_items) if i % 2 == u % 2]
        for i in rng.choice(liked, 8, replace=False):
            rows.append((f"u{u}", f"i{i}", 1.0))
        descs.append((f"d{u}", f"u{u}", f"i{(u % 2) + 2 * rng.integers(0, 12)}", "tag", "even" if u % 2 == 0 else "odd"))
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "title": [f"t{i}" for i in range(n_items)], "domain": "video"})
    vec = np.zeros((n_items, 4), np.float32)
    vec[np.arange(n_items), np.arange(n_items) % 2] = 1
    descriptions = pd.DataFrame(descs, columns=["description_id", "user_id", "item_id", "kind", "text"])
    dvec = np.zeros((len(descs), 4), np.float32)
    dvec[np.arange(len(descs)), [0 if t == "even" else 1 for t in descriptions["text"]]] = 1
    return DatasetTables(
        items=items, interactions=pd.DataFrame(rows, columns=["user_id", "item_id", "weight"]),
        descriptions=descriptions, item_vectors=vec,
        item_tokens=[["even" if i % 2 == 0 else "odd"] for i in range(n_items)],
        description_vectors=dvec, description_tokens=[[t] for t in descriptions["text"]], encoder_version="test",
    )


def test_evaluation_reports_each_revealed_n_for_hybrid_ease_and_pop():
    tables = _tables()
    protocol = ColdUserProtocol(user_fraction=0.2, seed=0)
    result = cold_user_evaluation(tables, HybridConfig(ease_l2=10.0, weights={"cf": 1.0, "text": 0.5, "lexical": 0.5}), 10.0, protocol, ks=(5,))
    m = result.metrics
    assert set(m["model"]) == {"hybrid", "ease", "pop"}
    assert set(m["slice"]) == {"cold_users_0", "cold_users_1", "cold_users_3"}
    ndcg = m[m["metric"] == "ndcg@5"].set_index(["model", "slice"])["value"]
    # with nothing revealed EASE has nothing to go on, while the hybrid reads the user's own words
    assert ndcg[("hybrid", "cold_users_0")] > ndcg[("ease", "cold_users_0")]
    assert result.short_history_popularity in set(result.tuning["short_history_popularity"])
    assert result.tuning.loc[result.tuning["ndcg@10"].idxmax(), "short_history_popularity"] == result.short_history_popularity
