import json

import numpy as np
import pandas as pd

from reclm_dagster.evaluation.offline import EvaluationProtocol, evaluate_baselines
from reclm_dagster.evaluation.protocol import RANKING_METRICS
from reclm_dagster.evaluation.report import TABLE_COLUMNS, eval_json, format_table


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
    assert "ease_max_items 39" in doc["protocol"]["skipped"]["ease"]
    assert list(doc["models"]) == ["pop", "itemknn", "rp3beta"]  # ease skipped
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
