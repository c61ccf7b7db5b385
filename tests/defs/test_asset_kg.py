"""knowledge_graph (multi-asset), kg_mentions and their checks, each called directly."""

from __future__ import annotations

import pandas as pd
from dagster_duckdb import DuckDBResource

from defs_fixture import SCHEMA, check_passes_then_fails, ctx, encoder, inputs, meta, read, value
from reclm_dagster.defs.kg import kg_mentions, knowledge_graph, mentions_are_valid, triples_reference_entities


def test_knowledge_graph_yields_entities_triples_and_relations(db_after):
    db = db_after("text")
    results = {r.output_name: r for r in knowledge_graph(ctx(), **inputs(knowledge_graph, db), duckdb=DuckDBResource(database=str(db)))}
    assert set(results) == {"kg_entities", "kg_triples", "kg_relations"}
    entities, triples, relations = read(db, "kg_entities"), read(db, "kg_triples"), read(db, "kg_relations")
    assert len(value(results["kg_triples"])) == len(triples)  # committed together by the asset, and passed on
    assert meta(results["kg_entities"])["dagster/row_count"] == len(entities)
    assert meta(results["kg_triples"])["n_triples"] == len(triples)
    assert {"item:m1", "genre:sci fi", "person:ada brook"} <= set(entities["entity_id"])
    genre = triples[triples["relation"] == "has_genre"]
    assert set(zip(genre["head"], genre["tail"])) >= {("item:m1", "genre:sci fi"), ("item:m3", "genre:crime")}
    assert genre["provenance"].str.startswith("facts.csv:").all()  # file:line of the fact
    assert (triples["relation"] == "co_consumed_with").any()  # from the interactions
    assert (triples["relation"] == "friend_of").sum() == 2  # user_links.csv
    assert {"has_genre", "directed_by", "co_consumed_with"} <= set(relations["relation"])


def test_knowledge_graph_from_small_frames():
    """Five small frames as arguments: a fact becomes a triple with its provenance."""
    items = pd.DataFrame({"item_id": ["m1", "m2"], "title": ["A", "B"], "description": ["", ""], "domain": ["video"] * 2,
                          "language": ["en"] * 2})
    facts = pd.DataFrame({"item_id": ["m1"], "relation": ["has_genre"], "entity_type": ["genre"], "entity": ["Drama"],
                          "weight": [1.0], "source": ["facts.csv:2"]})
    descriptions = pd.DataFrame({"description_id": [], "user_id": [], "item_id": [], "kind": [], "text": []}, dtype=object)
    links = pd.DataFrame({"user_id": ["u1"], "relation": ["friend_of"], "other_user_id": ["u2"]})
    interactions = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["m1", "m2", "m1", "m2"], "weight": [1.0] * 4})
    out = {r.output_name: value(r) for r in knowledge_graph(ctx(), items=items, catalogue_facts=facts, descriptions=descriptions,
                                                            user_links=links, interactions=interactions,
                                                            duckdb=DuckDBResource(database=":memory:"))}
    triples = out["kg_triples"]
    assert ("item:m1", "has_genre", "genre:drama") in set(zip(triples["head"], triples["relation"], triples["tail"]))
    assert (triples["relation"] == "co_consumed_with").any() and (triples["relation"] == "friend_of").sum() == 1


def test_triples_check_passes_then_fails_on_a_dangling_tail(db_after):
    check_passes_then_fails(triples_reference_entities, db_after("kg"),
                            f"DELETE FROM \"{SCHEMA}\".kg_entities WHERE entity_id = 'genre:crime'")


def test_kg_mentions_links_users_words_to_entities(db_after):
    db = db_after("kg")
    result = kg_mentions(ctx(), **inputs(kg_mentions, db), duckdb=DuckDBResource(database=str(db)), encoder=encoder())
    mentions = value(result)
    assert meta(result)["dagster/row_count"] == len(mentions) > 0
    scifi = mentions[(mentions["user_id"] == "u7") & (mentions["entity_id"] == "genre:sci fi")]
    assert len(scifi) == 1 and scifi["method"].iloc[0] == "exact"
    text = read(db, "descriptions").set_index("description_id")["text"]
    row = scifi.iloc[0]
    assert text[row["description_id"]][row["start"]:row["end"]] == row["surface"] == "Sci-Fi"


def test_mentions_check_passes_then_fails_on_an_unknown_entity(db_after):
    result = check_passes_then_fails(mentions_are_valid, db_after("kg"),
                                     f"UPDATE \"{SCHEMA}\".kg_mentions SET entity_id = 'genre:nowhere' WHERE user_id = 'u7'")
    assert meta(result)["unknown_entities"] >= 1
