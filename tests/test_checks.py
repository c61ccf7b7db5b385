"""Each data check passes on good tables and fails on a crafted bad one (the Dagster asset
checks are thin wrappers over these functions)."""

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from reclm_dagster import checks, store

S = "ds_t"


@pytest.fixture
def con():
    con = duckdb.connect()
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["A", "B", "C"]})
    interactions = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"], "weight": [1.0, 2.0, 3.0]})
    descriptions = pd.DataFrame({"description_id": ["d1"], "user_id": ["u1"], "item_id": ["a"], "text": ["fun"]})
    vectors = np.eye(4, 3, dtype=np.float32)  # 3 items + 1 description, unit rows
    vectors[3] = [0.6, 0.8, 0.0]
    emb = store.embeddings_table(["a", "b", "c", "d1"], ["item"] * 3 + ["description"], vectors, "enc@1")
    entities = pd.DataFrame({"entity_id": ["item:a", "item:b", "item:c", "person:x"], "entity_type": ["item"] * 3 + ["person"], "name": ["A", "B", "C", "X"], "domain": ["video"] * 3 + [""]})
    triples = pd.DataFrame({"head": ["item:a", "item:c"], "relation": ["directed_by"] * 2, "tail": ["person:x"] * 2, "weight": [1.0, 1.0], "provenance": ["f:2", "f:3"]})
    path = json.dumps([["item:a", "directed_by", "person:x"], ["item:c", "directed_by", "person:x"]])
    recs = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["c", "c"], "rank": [1, 1], "explanation_path": [path, ""]})
    store.replace_tables(con, S, {"items": items, "interactions": interactions, "descriptions": descriptions,
                                  "text_embeddings": emb, "kg_entities": entities, "kg_triples": triples, "recommendations": recs})
    yield con
    con.close()


def _replace(con, name, df):
    store.replace_tables(con, S, {name: df})


def test_all_checks_pass_on_good_tables(con):
    for check in (checks.interactions_valid, checks.embeddings_valid, checks.triples_valid, checks.recommendations_valid):
        passed, meta = check(con, S)
        assert passed, (check.__name__, meta)


def test_interactions_check_fails_on_unknown_item_and_bad_weight(con):
    bad = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["zzz", "a"], "weight": [1.0, 0.0]})
    _replace(con, "interactions", bad)
    passed, meta = checks.interactions_valid(con, S)
    assert not passed and meta == {"unknown_items": 1, "non_positive_weights": 1}


@pytest.mark.parametrize("defect", ["nan", "not_unit", "missing_row"])
def test_embeddings_check_fails(con, defect):
    vectors = np.eye(4, 3, dtype=np.float32)
    vectors[3] = [0.6, 0.8, 0.0]
    ids, sources = ["a", "b", "c", "d1"], ["item"] * 3 + ["description"]
    if defect == "nan":
        vectors[1, 0] = np.nan
    elif defect == "not_unit":
        vectors[2] *= 2
    else:
        ids, sources, vectors = ids[:3], sources[:3], vectors[:3]
    _replace(con, "text_embeddings", store.embeddings_table(ids, sources, vectors, "enc@1"))
    passed, meta = checks.embeddings_valid(con, S)
    assert not passed
    if defect == "nan":
        assert meta["nan_vectors"] == 1
    elif defect == "not_unit":
        assert meta["max_norm_deviation"] == pytest.approx(1.0)
    else:
        assert meta["missing"] == 1 and meta["vectors"] == 3


def test_triples_check_fails_on_a_dangling_tail(con):
    bad = pd.DataFrame({"head": ["item:a"], "relation": ["directed_by"], "tail": ["person:ghost"], "weight": [1.0], "provenance": ["f:9"]})
    _replace(con, "kg_triples", bad)
    passed, meta = checks.triples_valid(con, S)
    assert not passed and meta["dangling_triples"] == 1


@pytest.mark.parametrize("defect, key", [("duplicate", "duplicate_pairs"), ("consumed", "already_consumed"), ("fake_path", "invalid_paths")])
def test_recommendations_check_fails(con, defect, key):
    recs = pd.DataFrame({"user_id": ["u1"], "item_id": ["c"], "rank": [1], "explanation_path": [""]})
    if defect == "duplicate":
        recs = pd.concat([recs, recs.assign(rank=2)])
    elif defect == "consumed":
        recs = recs.assign(item_id="b")  # u1 consumed b in train
    else:  # an edge that is not in the graph: "same director" with an item that has none
        recs = recs.assign(explanation_path=json.dumps([["item:b", "directed_by", "person:x"]]))
    _replace(con, "recommendations", recs)
    passed, meta = checks.recommendations_valid(con, S)
    assert not passed and meta[key] >= 1


# ---------------------------------------------------------------- issue 14: empty and NULL inputs

MENTION_COLUMNS = ["description_id", "user_id", "item_id", "kind", "start", "end", "surface", "entity_id",
                   "entity_type", "entity_name", "method", "score"]


def test_mentions_check_on_a_dataset_without_descriptions(con):
    # An empty frame has no dtypes, so the stored kg_mentions has VARCHAR "start"/"end"; the
    # check's arithmetic on them was a BinderException that stopped every such run.
    _replace(con, "descriptions", pd.DataFrame(columns=["description_id", "user_id", "item_id", "text"]))
    _replace(con, "kg_mentions", pd.DataFrame(columns=MENTION_COLUMNS))
    assert checks.mentions_valid(con, S) == (True, {"unknown_entities": 0, "bad_spans": 0})


def test_mentions_check_fails_on_an_unknown_entity_and_a_wrong_span(con):
    good = {"description_id": "d1", "user_id": "u1", "item_id": "a", "kind": "tag", "start": 0, "end": 3, "surface": "fun",
            "entity_id": "person:x", "entity_type": "person", "entity_name": "X", "method": "exact", "score": 1.0}
    _replace(con, "kg_mentions", pd.DataFrame([good]))
    assert checks.mentions_valid(con, S)[0]
    bad = [good | {"entity_id": "person:ghost"}, good | {"end": 2}]
    _replace(con, "kg_mentions", pd.DataFrame(bad))
    assert checks.mentions_valid(con, S) == (False, {"unknown_entities": 1, "bad_spans": 1})


@pytest.mark.parametrize("value", [None, float("nan")])
def test_regression_check_on_a_null_metric_fails_with_a_reason_not_a_type_error(tmp_path, value):
    # Before: float(None) -> TypeError inside evaluation_ndcg_not_regressed.
    from types import SimpleNamespace

    from dagster_duckdb import DuckDBResource

    from reclm_dagster import settings
    from reclm_dagster.defs.evaluation import ndcg_not_regressed

    db = str(tmp_path / "reclm.duckdb")
    with duckdb.connect(db) as c:
        metrics = pd.DataFrame({"model": ["hybrid"], "slice": ["all"], "metric": ["ndcg@10"], "value": [value], "encoder_version": ["e@1"]})
        store.replace_tables(c, settings.schema_name("tiny"), {
            "evaluation_metrics": metrics.astype({"value": "float64"}),
            "evaluation_report": pd.DataFrame({"json": [json.dumps({"protocol": {}})]}),
        })
    context = SimpleNamespace(partition_key="tiny", run=SimpleNamespace(run_id="r1"))
    result = ndcg_not_regressed.node_def.compute_fn.decorated_fn(context, DuckDBResource(database=db))
    assert not result.passed and "NULL" in result.metadata["reason"].value
