import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reclm_dagster.evaluation import baselines as bl
from reclm_dagster.evaluation.baselines import REGISTRY, Baseline, run_baseline, tune_on_validation
from reclm_dagster.evaluation.offline import EvaluationProtocol, evaluate_baselines


def _csr(rows: dict[int, list[int]], shape=(2, 30)) -> sp.csr_matrix:
    pairs = [(u, i) for u, items in rows.items() for i in items]
    r, c = zip(*pairs) if pairs else ((), ())
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=shape)


def synthetic_interactions(n_users=60, n_items=40, per_user=12, seed=0) -> pd.DataFrame:
    """Two taste clusters (even / odd items) so neighbour models have signal."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        for t, i in enumerate(rng.choice(pool, per_user, replace=False)):
            rows.append((f"u{u}", f"i{i}", 1.0, 1_000 + 10 * t + u))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "timestamp"])


class Lookup:
    """Toy model: an oracle of a fixed matrix; other items by descending id (a known order)."""

    def __init__(self, target):
        self.target = target

    def fit(self, X):
        return self

    def score(self, rows, X):
        return self.target[np.asarray(rows)].toarray() + 1e-3 * np.arange(self.target.shape[1])[None, :]


class Cheat:
    """Scores what the user already consumed highest, then low item ids first."""

    def fit(self, X):
        return self

    def score(self, rows, X):
        H = sp.csr_matrix(X)[np.asarray(rows)].toarray()
        return 1000 * H - 1e-3 * np.arange(H.shape[1])[None, :]


TRAIN = _csr({0: [0, 1], 1: [0]})
VALID = _csr({0: [4], 1: [2]})
TEST = _csr({0: [6], 1: [7]})


def test_tuning_picks_the_validation_winner_never_the_test_one(monkeypatch):
    # 'valid' is an oracle of the validation split, 'test' an oracle of test:
    # tuning must choose 'valid', and the test figures reported are that model's.
    targets = {"valid": VALID, "test": TEST}
    monkeypatch.setitem(REGISTRY, "toy", Baseline(lambda which: Lookup(targets[which]), {"which": ("test", "valid")}, {"which": "test"}))
    best, table = tune_on_validation("toy", TRAIN, VALID)
    assert best == {"which": "valid"}
    assert table.set_index("which")["ndcg@10"].to_dict() == {"test": 0.0, "valid": 1.0}
    assert table["chosen"].tolist() == [False, True]

    res = run_baseline("toy", TRAIN, VALID, TEST, ks=(5,))
    assert res.params == {"which": "valid"}
    assert res.metrics["ndcg@5"] < 1.0  # the test oracle would have scored 1.0
    # without validation the defaults are used, untuned
    res0 = run_baseline("toy", TRAIN, _csr({}), TEST, ks=(5,))
    assert res0.params == {"which": "test"} and res0.tuning.empty and res0.metrics["ndcg@5"] == 1.0


def test_ties_keep_the_first_setting(monkeypatch):
    monkeypatch.setitem(REGISTRY, "toy", Baseline(lambda which: Lookup(VALID), {"which": ("a", "b")}, {"which": "a"}))
    best, table = tune_on_validation("toy", TRAIN, VALID)
    assert best == {"which": "a"} and table["chosen"].tolist() == [True, False]


def test_train_and_valid_items_earn_no_credit_on_test(monkeypatch):
    monkeypatch.setitem(REGISTRY, "cheat", Baseline(lambda: Cheat(), {}, {}))
    # u0's test item 0 is also a train item; u1's test item 2 is a valid item
    test = _csr({0: [0], 1: [2, 5]})
    res = run_baseline("cheat", TRAIN, VALID, test, ks=(5,))
    # u0 has nothing left to find; u1 ranks 1,3,4,5,… (0 and 2 excluded): item 5 at rank 4
    assert res.metrics["n_users"] == 1
    assert res.metrics["recall@5"] == 1.0
    assert res.metrics["ndcg@5"] == pytest.approx(1 / np.log2(5))
    assert res.metrics["precision@5"] == pytest.approx(1 / 5)


def test_real_baselines_tuned_on_validation_and_defaults_without_it():
    df = synthetic_interactions()
    res = evaluate_baselines(df, EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=1))
    assert list(res.wide().index) == ["pop", "itemknn", "rp3beta", "ease"]
    assert set(res.baseline_tuning) == {"itemknn", "rp3beta", "ease"}  # pop has nothing to tune
    for name, table in res.baseline_tuning.items():
        # a grid tries every setting; EASE's line search along λ at least the default and both neighbours
        assert len(table) == len(bl.candidates(name)) if REGISTRY[name].search == "grid" else 3 <= len(table)
        assert table["chosen"].sum() == 1
        chosen = table[table["chosen"]].iloc[0]
        assert chosen["ndcg@10"] == table["ndcg@10"].max()
        assert all(res.params[name][p] == chosen[p] for p in REGISTRY[name].grid)
    assert res.params["rp3beta"]["alpha"] == 1.0

    res0 = evaluate_baselines(df, EvaluationProtocol(valid_fraction=0.0, test_fraction=0.2), baselines=("itemknn", "ease"))
    assert res0.baseline_tuning == {}
    assert res0.params == {"itemknn": {"k_neighbors": 100}, "ease": {"l2": 200.0}}


def test_ease_above_the_item_cap_is_the_sparse_restricted_ease_never_skipped():
    """Issue 13.3: no n_items² array above the cap; reported as 'ease' with sparse: True."""
    df = synthetic_interactions(n_items=30)
    res = evaluate_baselines(df, EvaluationProtocol(), baselines=("pop", "ease"), ease_max_items=29)
    assert res.skipped == {} and set(res.metrics["model"]) == {"pop", "ease"}
    assert res.params["ease"]["sparse"] is True
    kept = evaluate_baselines(df, EvaluationProtocol(), baselines=("ease",), ease_max_items=30)
    assert "sparse" not in kept.params["ease"] and set(kept.metrics["model"]) == {"ease"}
    # on a catalogue this small every item keeps all its co-consumed items: the same lists
    dense, sparse = (r.metrics.query("model == 'ease' and slice == 'all'").set_index("metric")["value"] for r in (kept, res))
    assert abs(dense["ndcg@10"] - sparse["ndcg@10"]) < 0.05


def test_the_sparse_eases_lambda_search_refits_from_one_gram_with_the_same_choice_and_numbers(monkeypatch):
    df = synthetic_interactions(n_users=80, n_items=30)
    fits = []
    real_fit = bl.SparseItemCF.fit
    monkeypatch.setattr(bl.SparseItemCF, "fit", lambda self, *a, **kw: fits.append(1) or real_fit(self, *a, **kw))
    shared = evaluate_baselines(df, EvaluationProtocol(), baselines=("ease",), ease_max_items=29)
    assert len(fits) == 1 and len(shared.baseline_tuning["ease"]) >= 2  # one gram, every λ visited re-solved
    fits.clear()
    monkeypatch.setitem(REGISTRY, "ease_sparse", dataclasses.replace(REGISTRY["ease_sparse"], refit=None))
    anew = evaluate_baselines(df, EvaluationProtocol(), baselines=("ease",), ease_max_items=29)
    assert len(fits) == len(anew.baseline_tuning["ease"])
    assert shared.params == anew.params
    pd.testing.assert_frame_equal(shared.metrics, anew.metrics)
    pd.testing.assert_frame_equal(shared.baseline_tuning["ease"].drop(columns="fit_s"),
                                  anew.baseline_tuning["ease"].drop(columns="fit_s"))


@pytest.mark.parametrize("name, model", [("itemknn", "ItemKNN"), ("rp3beta", "RP3beta")])
def test_a_neighbour_grid_fitted_in_one_pass_chooses_and_reports_as_one_fit_per_setting(monkeypatch, name, model):
    df = synthetic_interactions(n_users=80, n_items=30)
    passes = []
    cls = getattr(bl, model)
    real = cls._similarities
    monkeypatch.setattr(cls, "_similarities", lambda self, X, values: passes.append(len(values)) or real(self, X, values))
    shared = evaluate_baselines(df, EvaluationProtocol(), baselines=(name,))
    assert passes == [4]  # the whole grid from one product
    passes.clear()
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(REGISTRY[name], fit_grid=None))
    alone = evaluate_baselines(df, EvaluationProtocol(), baselines=(name,))
    assert passes == [1, 1, 1, 1]
    assert shared.params == alone.params
    pd.testing.assert_frame_equal(shared.metrics, alone.metrics)
    pd.testing.assert_frame_equal(shared.baseline_tuning[name].drop(columns="fit_s"),
                                  alone.baseline_tuning[name].drop(columns="fit_s"))


def test_a_grid_that_varies_another_knob_is_fitted_one_setting_at_a_time():
    X = sp.csr_matrix(np.random.default_rng(0).random((20, 15)) < 0.3, dtype=np.float32)
    assert REGISTRY["rp3beta"].fit_grid(X, [{"alpha": 1.0, "beta": 0.2, "k_neighbors": 10},
                                            {"alpha": 0.5, "beta": 0.2, "k_neighbors": 10}]) is None
    models = REGISTRY["rp3beta"].fit_grid(X, [{"alpha": 0.5, "beta": b, "k_neighbors": 10} for b in (0.0, 0.5)])
    assert [(m.alpha, m.beta, m.k_neighbors) for m in models] == [(0.5, 0.0, 10), (0.5, 0.5, 10)]


def test_temporal_protocol_holds_out_each_users_latest():
    df = synthetic_interactions(n_users=20, per_user=10)
    res = evaluate_baselines(df, EvaluationProtocol(method="temporal", valid_fraction=0.1, test_fraction=0.2), baselines=("pop",))
    split = res.split.merge(df, on=["user_id", "item_id"])
    for _, g in split.groupby("user_id"):
        g = g.sort_values("timestamp")
        assert g["split"].tolist() == ["train"] * 7 + ["valid"] + ["test"] * 2
    # a random split of the same data does not
    rnd = evaluate_baselines(df, EvaluationProtocol(valid_fraction=0.1, test_fraction=0.2), baselines=("pop",))
    assert not rnd.split.equals(res.split)


def test_temporal_needs_timestamps_and_unknown_methods_fail():
    df = synthetic_interactions(n_users=10).astype({"timestamp": "Int64"})
    df.loc[3, "timestamp"] = pd.NA
    with pytest.raises(ValueError, match="timestamp"):
        evaluate_baselines(df, EvaluationProtocol(method="temporal"), baselines=("pop",))
    with pytest.raises(ValueError, match="method"):
        EvaluationProtocol(method="leave-one-out")
    with pytest.raises(KeyError):
        run_baseline("nope", TRAIN, VALID, TEST)


@pytest.mark.parametrize("curve, visited, chosen", [
    ([1, 2, 3, 2, 1], [2, 1, 3], 2),  # the default is the peak: its two neighbours only
    ([1, 3, 2, 1, 0], [2, 1, 0], 1),  # better to the left: on until it stops improving
    ([0, 1, 2, 3, 4], [2, 1, 3, 4], 4),  # better to the right, up to the grid's end
    ([5, 4, 3, 2, 1], [2, 1, 0], 0),
    ([1, 2, 2, 2, 1], [2, 1, 3], 1),  # a plateau: no strict gain, no step; the earliest of the ties wins
])
def test_the_line_search_finds_the_grids_choice_on_a_unimodal_curve(curve, visited, chosen):
    values = tuple(range(len(curve)))
    order = bl.line_order(values, 2, lambda i: float(curve[i]))
    assert order == visited
    assert max(order, key=lambda i: (curve[i], -i)) == chosen == int(np.argmax(curve))


def test_eases_lambda_search_reports_the_visited_settings_and_the_grids_winner(monkeypatch):
    """EASE's λ is searched along its grid; the chosen λ is the best of all it visited, and with
    every setting forced (a grid search) the same λ wins on this split."""
    df = synthetic_interactions()
    protocol = EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=1)
    line = evaluate_baselines(df, protocol, baselines=("ease",))
    table = line.baseline_tuning["ease"]
    assert list(table["l2"]) == sorted(table["l2"]) and table["chosen"].sum() == 1
    assert table.loc[table["chosen"], "ndcg@10"].item() == table["ndcg@10"].max()
    monkeypatch.setitem(REGISTRY, "ease", dataclasses.replace(REGISTRY["ease"], search="grid"))
    grid = evaluate_baselines(df, protocol, baselines=("ease",))
    assert len(grid.baseline_tuning["ease"]) == len(bl.candidates("ease")) >= len(table)
    assert grid.params["ease"] == line.params["ease"]
