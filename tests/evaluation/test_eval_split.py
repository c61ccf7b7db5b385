import numpy as np
import pandas as pd
import pytest

from reclm_dagster.evaluation.split import holdout_sizes, split_interactions


def _df(sizes):
    rows = []
    for u, n in enumerate(sizes):
        for i in range(n):
            rows.append((f"u{u}", f"i{i}", 1.0, 1000 * u + i))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "timestamp"])


def test_random_split_proportions_and_determinism():
    df = _df([10, 20, 2, 5])
    out, c = split_interactions(df, valid_fraction=0.1, test_fraction=0.2, seed=3)
    assert len(out) == len(df) and "split" not in df.columns  # copy, input untouched
    per = out.groupby("user_id")["split"].value_counts().unstack(fill_value=0)
    # u0: 10 -> test 2, valid 1; u1: 20 -> test 4, valid 2
    assert per.loc["u0", ["train", "valid", "test"]].tolist() == [7, 1, 2]
    assert per.loc["u1", ["train", "valid", "test"]].tolist() == [14, 2, 4]
    # u2 has 2 < min_interactions=3 -> all train
    assert per.loc["u2", "train"] == 2 and per.loc["u2", ["valid", "test"]].sum() == 0
    # u3: 5 -> test round(1.0)=1, valid round(0.5)=1 (half up)
    assert per.loc["u3", ["train", "valid", "test"]].tolist() == [3, 1, 1]
    assert c.n_users_split == 3 and c.n_users_train_only == 1
    assert (c.n_train, c.n_valid, c.n_test) == (26, 4, 7)
    again, _ = split_interactions(df, valid_fraction=0.1, test_fraction=0.2, seed=3)
    pd.testing.assert_series_equal(out["split"], again["split"])
    other, _ = split_interactions(df, valid_fraction=0.1, test_fraction=0.2, seed=4)
    assert not out["split"].equals(other["split"])


def test_users_that_would_lose_all_train_stay_train_only():
    # fractions 0.4 + 0.4:
    # n=3 -> round(1.2)=1 each -> 1 train left: split
    # n=4 -> round(1.6)=2 each -> 0 train left: train-only
    # n=5 -> round(2.0)=2 each -> 1 train left: split
    # n=2 -> below min_interactions=3: train-only
    nv, nt = holdout_sizes(np.array([3, 4, 5, 2]), 0.4, 0.4, min_interactions=3)
    assert nv.tolist() == [1, 0, 2, 0] and nt.tolist() == [1, 0, 2, 0]
    out, c = split_interactions(_df([4]), valid_fraction=0.5, test_fraction=0.4)
    assert (out["split"] == "train").all() and c.n_users_train_only == 1


def test_temporal_split_holds_out_latest():
    df = _df([10]).sample(frac=1.0, random_state=0)  # shuffled row order
    out, _ = split_interactions(df, valid_fraction=0.2, test_fraction=0.1, method="temporal")
    by_t = out.sort_values("timestamp")["split"].tolist()
    assert by_t == ["train"] * 7 + ["valid"] * 2 + ["test"]


def test_bad_arguments():
    with pytest.raises(ValueError):
        split_interactions(_df([5]), valid_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError):
        split_interactions(_df([5]), method="leave-one-out")
