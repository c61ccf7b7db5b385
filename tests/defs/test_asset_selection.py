"""hybrid_selection, evaluation and the NDCG regression check, each called directly."""

from __future__ import annotations

import json

import duckdb
import scipy.sparse as sp
from dagster_duckdb import DuckDBResource

from defs_fixture import SCHEMA, check_ctx, ctx, encoder, execute, inputs, meta, read
from reclm_dagster import store
from reclm_dagster.defs.evaluation import EvaluationConfig, evaluation, ndcg_not_regressed
from reclm_dagster.defs.resources import MLflowResource
from reclm_dagster.defs.selection import SelectionConfig, hybrid_selection
from reclm_dagster.evaluation import selection as selection_module
from reclm_dagster.evaluation.selection import SELECTION_TABLES
from reclm_dagster.training import CHOSEN_TABLE


def select(db) -> tuple[dict, dict]:
    """The selection's metadata and the tables it returns (stored in one transaction by the IO manager)."""
    result = hybrid_selection(ctx(), config=SelectionConfig(), **inputs(hybrid_selection, db),
                              duckdb=DuckDBResource(database=str(db)), encoder=encoder())
    return meta(result), result.value


def test_hybrid_selection_stores_the_choice_the_lists_read(db_after):
    db = db_after("kg")
    m, tables = select(db)
    assert set(tables) == set(SELECTION_TABLES)
    chosen = tables[CHOSEN_TABLE].iloc[0]
    config = json.loads(chosen["json"])
    assert m["chosen_by"] == chosen["chosen_by"] == "validation"
    assert json.loads(m["hybrid_setting"])["side_weight"] == config["side_weight"] == m["side_weight"]
    assert m["fingerprint"] == chosen["fingerprint"] and len(m["fingerprint"]) == 32
    assert json.loads(chosen["protocol"])["seed"] == 0 and chosen["encoder_version"] == encoder().get().version
    weights = tables["fusion_weights"]
    assert dict(zip(weights["signal"], weights["weight"])) == config["weights"]
    assert len(tables["fusion_tuning"]) == m["settings_tried"] > 1
    assert len(tables["hybrid_reranker"]) == 0 and m["reranker"] == "not used"
    assert "skipped" in json.loads(m["reranker_decision"])  # fewer than 20 validation users
    for table in SELECTION_TABLES:
        assert len(tables[table].columns)


def test_hybrid_selection_never_reads_the_test_split(db_after, monkeypatch):
    """The same choice with the test matrix emptied: test pairs cannot have influenced it."""
    db = db_after("kg")
    _, before = select(db)
    real = selection_module.prepare_split

    def without_test(*args, **kwargs):
        data = real(*args, **kwargs)
        data.X_test = sp.csr_matrix(data.X_test.shape, dtype=data.X_test.dtype)
        return data

    monkeypatch.setattr(selection_module, "prepare_split", without_test)
    _, after = select(db)
    assert after[CHOSEN_TABLE].equals(before[CHOSEN_TABLE])
    assert after["fusion_tuning"].equals(before["fusion_tuning"])


def test_evaluation_reads_the_stored_selection_and_leaves_it_alone(db_after, home):
    db = db_after("selected")
    res = DuckDBResource(database=str(db))
    stored = read(db, CHOSEN_TABLE)
    args = inputs(evaluation, db)

    def run(config):
        result = evaluation(ctx(), config=config, **args, duckdb=res, mlflow=MLflowResource(), encoder=encoder())
        return meta(result), result.value

    m, tables = run(EvaluationConfig())
    assert m["hybrid_selection"].startswith("stored hybrid_selection")
    assert m["fusion_weights_chosen_by"] == "validation" and m["n_test_users"] == 6
    chosen, ran = json.loads(stored["json"].iloc[0]), json.loads(m["hybrid_setting"])
    assert (ran["side_weight"], ran["ease_l2"], ran["weight_text"]) == (chosen["side_weight"], chosen["ease_l2"], chosen["weights"]["text"])
    assert m["mlflow_runs"] and 0.0 <= m["hybrid_ndcg_at_10"] <= 1.0
    assert m["sparse_fits_served"] == 0  # a dense EASE catalogue: nothing comes from models/fit_cache.py
    metrics = tables["evaluation_metrics"]
    assert {"hybrid", "cf", "text", "lexical", "kg", "pop", "ease"} <= set(metrics["model"])
    assert set(tables["evaluation_split"]["split"]) == {"train", "valid", "test"}
    report = json.loads(tables["evaluation_report"]["json"].iloc[0])
    assert report["dataset"] == "defs_tiny" and "hybrid" in report["models"]
    assert read(db, CHOSEN_TABLE).equals(stored)

    # another split: the stored choice may have seen its test pairs, so the evaluation re-selects (and stores nothing)
    m, _ = run(EvaluationConfig(seed=1))
    assert m["hybrid_selection"].startswith("re-selected")
    assert read(db, CHOSEN_TABLE).equals(stored)


def test_ndcg_check_passes_then_fails_on_a_missing_metric(db_after, home):
    db = db_after("selected")
    res = DuckDBResource(database=str(db))
    result = evaluation(ctx(), config=EvaluationConfig(), **inputs(evaluation, db), duckdb=res, mlflow=MLflowResource(),
                        encoder=encoder())
    with duckdb.connect(str(db)) as con:  # what the IO manager does with the returned tables
        store.replace_tables(con, SCHEMA, result.value)
    result = ndcg_not_regressed(check_ctx(), duckdb=res)
    assert result.passed and meta(result)["best_earlier"] == "none"
    execute(db, f"UPDATE \"{SCHEMA}\".evaluation_metrics SET value = NULL WHERE model = 'hybrid' AND metric = 'ndcg@10'")
    result = ndcg_not_regressed(check_ctx(), duckdb=res)
    assert not result.passed and "NULL" in meta(result)["reason"]
