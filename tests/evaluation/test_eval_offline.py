import numpy as np
import pandas as pd
import pytest

from reclm_dagster.evaluation.offline import MODELS, EvaluationProtocol, evaluate_baselines, offline_evaluation
from reclm_dagster.evaluation.tuning import COLD_BOOST_GRID, KG_WEIGHT_GRID, SIDE_WEIGHT_GRID, choose_setting
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.training import DatasetTables

BASELINES = ["pop", "itemknn", "rp3beta", "ease"]


def synthetic_tables(n_users=40, n_items=30, per_user=10, seed=0) -> DatasetTables:
    """Two clusters (even / odd items) with matching item vectors, tokens and a few descriptions."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]})
    rows, descs = [], []
    for u in range(n_users):
        chosen = rng.choice(np.arange(u % 2, n_items, 2), per_user, replace=False)
        rows += [(f"u{u}", f"i{i}", 1.0, 100 * u + t) for t, i in enumerate(chosen)]
        descs += [(f"d{u}-{i}", f"u{u}", f"i{i}", "tag", "word") for i in chosen[:2]]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "timestamp"])
    descriptions = pd.DataFrame(descs, columns=["description_id", "user_id", "item_id", "kind", "text"])
    item_vectors = np.zeros((n_items, 4), np.float32)
    item_vectors[np.arange(n_items), np.arange(n_items) % 2] = 1.0
    item_vectors += rng.normal(0, 0.1, item_vectors.shape).astype(np.float32)
    d_items = descriptions["item_id"].str[1:].astype(int).to_numpy()
    return DatasetTables(
        items=items,
        interactions=interactions,
        descriptions=descriptions,
        item_vectors=item_vectors,
        item_tokens=[["even" if i % 2 == 0 else "odd", f"t{i}"] for i in range(n_items)],
        description_vectors=item_vectors[d_items],
        description_tokens=[["even" if i % 2 == 0 else "odd", f"t{i}"] for i in d_items],
        encoder_version="test",
    )


@pytest.fixture(scope="module")
def run():
    tables = synthetic_tables()
    protocol = EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=3)
    return tables, protocol, offline_evaluation(tables, protocol, HybridConfig())


def test_hybrid_signals_and_baselines_in_one_table(run):
    tables, protocol, result = run
    wide = result.wide()
    assert list(wide.index) == list(MODELS) + ["hybrid_mmr", "hybrid@lexical", "hybrid-notext"] + BASELINES  # no "popularity" duplicate of "pop"
    assert wide.loc["hybrid_mmr", "ild@10"] >= 0 and wide.loc["hybrid", "ild@10"] >= 0
    assert set(result.wide("cold").index) <= set(wide.index)
    assert set(result.params) == set(wide.index)
    assert result.params["hybrid"]["weight_cf"] == 1.0
    assert {k: result.params["hybrid"][f"weight_{k}"] for k in result.weights} == result.weights
    # the fields the Dagster asset reads still hold
    # one validation row per (side weight g, fusion weights) tried; the chosen setting is the best row
    assert len(result.tuning) == len(SIDE_WEIGHT_GRID) * (12 + len(KG_WEIGHT_GRID) + len(COLD_BOOST_GRID)) and set(result.weights) == {"cf", "text", "lexical", "kg", "cold"}
    best = result.tuning.loc[result.tuning["ndcg@10"].idxmax()]
    assert result.params["hybrid"]["side_weight"] == best["side_weight"]
    of_g = result.tuning[result.tuning["side_weight"] == best["side_weight"]].reset_index(drop=True)
    chosen = of_g.loc[choose_setting(of_g)]
    assert all(result.weights[k] == chosen[k] for k in ("text", "lexical", "kg"))
    assert set(result.baseline_tuning) == {"itemknn", "rp3beta", "ease"}
    assert result.n_descriptions_removed > 0
    assert (wide["n_users"] == wide["n_users"].iloc[0]).all()  # every model ranked for the same test users


def test_baselines_on_the_same_split_as_the_hybrid(run):
    tables, protocol, result = run
    # the text-free helper splits and indexes identically: identical baseline figures
    alone = evaluate_baselines(tables.interactions, protocol, items=tables.items["item_id"].to_numpy())
    pd.testing.assert_frame_equal(alone.split.reset_index(drop=True), result.split.reset_index(drop=True))
    pd.testing.assert_frame_equal(alone.wide().loc[BASELINES], result.wide().loc[BASELINES, alone.wide().columns])
    assert alone.params == {k: result.params[k] for k in BASELINES}


def test_no_validation_keeps_config_weights_and_baseline_defaults():
    tables = synthetic_tables(n_users=20)
    protocol = EvaluationProtocol(valid_fraction=0.0, test_fraction=0.2)
    config = HybridConfig(weights={"cf": 1.0, "text": 0.25, "lexical": 0.0})
    result = offline_evaluation(tables, protocol, config, baselines=("pop", "itemknn"))
    assert result.weights == config.weights and result.tuning.empty and result.baseline_tuning == {}
    assert result.params["itemknn"] == {"k_neighbors": 100}
    assert list(result.wide().index) == list(MODELS) + ["hybrid_mmr", "pop", "itemknn"]


def test_temporal_offline_evaluation_tests_the_latest():
    tables = synthetic_tables(n_users=20)
    protocol = EvaluationProtocol(method="temporal", valid_fraction=0.1, test_fraction=0.2)
    result = offline_evaluation(tables, protocol, HybridConfig(), baselines=("pop",))
    merged = result.split.merge(tables.interactions, on=["user_id", "item_id"])
    latest = merged.sort_values("timestamp").groupby("user_id").tail(2)
    assert (latest["split"] == "test").all() and (merged["split"] == "test").sum() == len(latest)
