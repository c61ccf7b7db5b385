import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from reclm_dagster.defs.evaluation import cold_user_ratio_metrics
from reclm_dagster.evaluation.offline import EvaluationProtocol, evaluate_baselines
from reclm_dagster.evaluation.protocol import RANKING_METRICS
from reclm_dagster.evaluation.report import TABLE_COLUMNS, cold_user_ratios, eval_json, format_cold_users, format_table


def _interactions(n_users=50, n_items=40, per_user=10, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # skewed popularity so that pop and the neighbour models differ, and a cold tail
    p = 1.0 / np.arange(1, n_items + 1)
    rows = [(f"u{u}", f"i{i}") for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False, p=p / p.sum())]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


PROTOCOL = EvaluationProtocol(valid_fraction=0.1, test_fraction=0.2, seed=0)
RESULT = evaluate_baselines(_interactions(), PROTOCOL, ease_max_items=39)


def test_eval_json_shape():
    doc = eval_json("toy", PROTOCOL, RESULT)
    json.dumps(doc, allow_nan=False)  # strict JSON: NaN became null, numpy became float
    assert set(doc) == {"dataset", "protocol", "models", "split"}
    assert doc["dataset"] == "toy"
    assert doc["protocol"]["method"] == "random" and doc["protocol"]["ks"] == [5, 10, 20]
    assert doc["models"]["ease"]["params"]["sparse"] is True  # above the cap of 39 items: sparse EASE
    assert list(doc["models"]) == ["pop", "itemknn", "rp3beta", "ease"]
    ranking = {f"{m}@{k}" for k in (5, 10, 20) for m in RANKING_METRICS}
    beyond = {f"{m}@{k}" for k in (5, 10, 20) for m in ("coverage", "novelty", "popularity_bias")}
    for name, entry in doc["models"].items():
        assert set(entry) == ranking | beyond | {"cold", "params"}
        assert set(entry["cold"]) == ranking
        assert entry["ndcg@10"] == RESULT.wide().at[name, "ndcg@10"]
    assert doc["models"]["itemknn"]["params"] == RESULT.params["itemknn"]
    assert doc["models"]["pop"]["params"] == {}
    split = doc["split"]
    assert split["n_train"] + split["n_valid"] + split["n_test"] == len(_interactions())
    assert split["n_test_users"] == 50 and split["n_cold_items"] > 0


def test_format_table_sorted_by_ndcg():
    text = format_table(RESULT)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["model", "NDCG@10", "Recall@10"]
    assert "cold NDCG@10" in lines[0] and "Coverage@10" in lines[0]
    names = [line.split()[0] for line in lines[2:]]
    expected = RESULT.wide()["ndcg@10"].sort_values(ascending=False, kind="stable").index.tolist()
    assert names == expected
    row = dict(zip(names, lines[2:]))["pop"].split()
    assert row[1] == f"{RESULT.wide().at['pop', 'ndcg@10']:.4f}"
    assert len(row) == 1 + len(TABLE_COLUMNS)  # model + one cell per column ("-" where not computed)


# Cold users, by hand: EASE did not run at n = 0 (no history, no list), and scored 0 Recall@20 at n = 1.
COLD_ROWS = [
    ("hybrid", "0", 0.3, 0.5), ("hybrid", "1", 0.4, 0.6),
    ("pop", "0", 0.1, 0.2), ("pop", "1", 0.2, 0.3),
    ("ease", "1", 0.5, 0.0),
]


def _cold_result():
    rows = [(m, f"cold_users_{n}", metric, v) for m, n, ndcg, recall in COLD_ROWS
            for metric, v in (("ndcg@10", ndcg), ("recall@20", recall), ("n_users", 7))]
    return replace(RESULT, metrics=pd.concat([RESULT.metrics, pd.DataFrame(rows, columns=RESULT.metrics.columns)]))


def test_cold_user_ratios_against_pop_at_every_n_and_ease_only_where_it_ran():
    doc = eval_json("toy", PROTOCOL, _cold_result())
    json.dumps(doc, allow_nan=False)
    assert set(doc["cold_users"]["ease"]) == {"1"} and set(doc["cold_users"]["pop"]) == {"0", "1"}
    ratios = doc["cold_user_ratios"]
    assert ratios == cold_user_ratios(doc["cold_users"])
    assert set(ratios) == {"hybrid/pop", "hybrid/ease"}
    assert ratios["hybrid/pop"]["0"] == pytest.approx({"ndcg@10": 3.0, "recall@20": 2.5})
    assert ratios["hybrid/pop"]["1"] == pytest.approx({"ndcg@10": 2.0, "recall@20": 2.0})
    assert ratios["hybrid/ease"] == {"1": {"ndcg@10": pytest.approx(0.8), "recall@20": None}}  # no ratio over 0

    rows = {line.split()[0]: line.split()[1:] for line in format_cold_users(doc["cold_users"]).splitlines()[3:]}
    # columns: n=0 NDCG@10, n=0 Recall@20, n=1 NDCG@10, n=1 Recall@20
    assert rows["hybrid/pop"] == ["3.00x", "2.50x", "2.00x", "2.00x"]
    assert rows["hybrid/ease"] == ["-", "-", "0.80x", "-"]
    assert rows["ease"] == ["-", "-", "0.5000", "0.0000"]

    logged = cold_user_ratio_metrics(_cold_result())
    assert logged == pytest.approx({
        "cold_users_0_hybrid_over_pop_ndcg_at_10": 3.0, "cold_users_0_hybrid_over_pop_recall_at_20": 2.5,
        "cold_users_1_hybrid_over_pop_ndcg_at_10": 2.0, "cold_users_1_hybrid_over_pop_recall_at_20": 2.0,
        "cold_users_1_hybrid_over_ease_ndcg_at_10": 0.8,
    })
