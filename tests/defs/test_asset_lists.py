"""item_similarity, user_item_scores, recommendations and the lists' check, each called directly."""

from __future__ import annotations

import json

from dagster_duckdb import DuckDBResource

from defs_fixture import LIGHT, SCHEMA, check_passes_then_fails, ctx, inputs, meta, read, value
from reclm_dagster.defs.recommendations import recommendations, recommendations_are_valid
from reclm_dagster.defs.similarity import item_similarity, user_item_scores
from reclm_dagster.training import CHOSEN_TABLE


def consumed(db) -> set[tuple[str, str]]:
    interactions = read(db, "interactions")
    return set(zip(interactions["user_id"], interactions["item_id"]))


def test_item_similarity_four_neighbours_per_item_never_itself(db_after):
    db = db_after("selected")
    result = item_similarity(ctx(), **inputs(item_similarity, db))
    table = value(result)
    assert meta(result)["dagster/row_count"] == len(table) == 5 * 4 and meta(result)["n_items"] == 5
    assert (table["item_id"] != table["neighbor_id"]).all()
    assert table.groupby("item_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4]).all()
    assert {"score", "score_text", "score_cf"} <= set(table.columns)
    # m1 and m2 share a director and a genre: each is the other's first text+behaviour neighbour
    first = table[table["rank"] == 1].set_index("item_id")["neighbor_id"]
    assert first["m1"] == "m2"


def test_user_item_scores_exclude_consumed_items_and_read_the_selection(db_after):
    db = db_after("selected")
    args = inputs(user_item_scores, db)
    result = user_item_scores(ctx(), **args)
    table = value(result)
    assert set(table["user_id"]) == set(LIGHT)  # the heavy users consumed the whole catalogue
    assert table.groupby("user_id").size().eq(3).all()
    assert not set(zip(table["user_id"], table["item_id"])) & consumed(db)
    assert {"score_cf", "score_text", "score_lexical", "score_kg"} <= set(table.columns)
    chosen = json.loads(args["hybrid_selection"][CHOSEN_TABLE]["json"].iloc[0])
    m = meta(result)
    assert m["param_weight_text"] == chosen["weights"]["text"] and m["param_side_weight"] == chosen["side_weight"]
    assert m["reranker"].startswith("none")  # too few validation users for a re-ranker

    # another choice gives other lists: the asset reads hybrid_selection's tables, passed as an argument
    chosen["weights"] = {"cf": 0.0, "text": 1.0, "lexical": 0.0, "kg": 0.0, "cold": 0.0}
    selection = {**args["hybrid_selection"], CHOSEN_TABLE: args["hybrid_selection"][CHOSEN_TABLE].assign(json=json.dumps(chosen))}
    other = user_item_scores(ctx(), **{**args, "hybrid_selection": selection})
    m2 = meta(other)
    assert m2["param_weight_text"] == 1.0 and m2["param_weight_cf"] == 0.0
    assert list(value(other)["score"]) != list(table["score"])


def test_recommendations_explained_lists_with_facts_and_the_build_record(db_after):
    db = db_after("scored")
    result = recommendations(ctx(), **inputs(recommendations, db), duckdb=DuckDBResource(database=str(db)))
    table = value(result, "recommendations")
    assert len(table) == len(read(db, "user_item_scores")) and set(table["user_id"]) == set(LIGHT)
    assert table["explanation"].str.len().gt(0).all() and table["title"].notna().all()
    first = table[(table["user_id"] == "u7") & (table["rank"] == 1)].iloc[0]
    assert json.loads(first["facts"])  # the item's facts from the graph
    m = meta(result)
    assert m["n_users"] == 3 and m["explanation_unfaithful"] == 0
    info = value(result, "recommendations_info")  # returned with the lists: the IO manager stores both in one transaction
    assert info["run_id"].tolist() == ["EPHEMERAL"] and info["fingerprint"].notna().all()


def test_recommendations_keep_the_user_item_scores_order_and_list_length(db_after, monkeypatch):
    """Small frames where it matters: only ranks up to list_length become the list."""
    from reclm_dagster import settings

    db = db_after("scored")
    args = inputs(recommendations, db)
    monkeypatch.setattr(settings, "load_config", lambda real=settings.load_config: {**real(), "list_length": 2})
    table = value(recommendations(ctx(), **args, duckdb=DuckDBResource(database=str(db))), "recommendations")
    assert table.groupby("user_id")["rank"].max().eq(2).all() and len(table) == 2 * len(LIGHT)


def test_recommendations_check_passes_then_fails_on_a_consumed_item(db_after):
    result = check_passes_then_fails(recommendations_are_valid, db_after("lists"), f"""
        INSERT INTO "{SCHEMA}".recommendations (user_id, item_id, rank, score, explanation, title)
        VALUES ('u7', 'm1', 4, 0.1, 'because', 'Orbit of Iron')""")  # u7 consumed m1
    assert meta(result)["already_consumed"] == 1 and meta(result)["duplicate_pairs"] == 0


def test_every_materialization_carries_its_steps_seconds_and_peak_memory(db_after):
    """Issue 13.1: `profiled` stamps what an asset returns (benchmarks/pipeline.py reads it back)."""
    from reclm_dagster.defs.common import STEP_PEAK_RSS, STEP_SECONDS

    m = meta(item_similarity(ctx(), **inputs(item_similarity, db_after("selected"))))
    assert m[STEP_SECONDS] >= 0 and m[STEP_PEAK_RSS] > 10  # MiB: a Python process with numpy is far above
    assert m["dagster/row_count"] == 20  # the asset's own metadata kept
