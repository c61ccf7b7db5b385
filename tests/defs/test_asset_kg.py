"""knowledge_graph (multi-asset), kg_mentions and their checks, each called directly."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from defs_fixture import SCHEMA, check_passes_then_fails, ctx, encoder, meta, read
from reclm_dagster.defs.kg import kg_mentions, knowledge_graph, mentions_are_valid, triples_reference_entities


def test_knowledge_graph_yields_entities_triples_and_relations(db_after):
    db = db_after("text")
    results = {r.asset_key.to_user_string(): r for r in knowledge_graph(ctx(), duckdb=DuckDBResource(database=str(db)))}
    assert set(results) == {"kg_entities", "kg_triples", "kg_relations"}
    entities, triples, relations = read(db, "kg_entities"), read(db, "kg_triples"), read(db, "kg_relations")
    assert meta(results["kg_entities"])["dagster/row_count"] == len(entities)
    assert meta(results["kg_triples"])["n_triples"] == len(triples)
    assert {"item:m1", "genre:sci fi", "person:ada brook"} <= set(entities["entity_id"])
    genre = triples[triples["relation"] == "has_genre"]
    assert set(zip(genre["head"], genre["tail"])) >= {("item:m1", "genre:sci fi"), ("item:m3", "genre:crime")}
    assert genre["provenance"].str.startswith("facts.csv:").all()  # file:line of the fact
    assert (triples["relation"] == "co_consumed_with").any()  # from the interactions
    assert (triples["relation"] == "friend_of").sum() == 2  # user_links.csv
    assert {"has_genre", "directed_by", "co_consumed_with"} <= set(relations["relation"])


def test_triples_check_passes_then_fails_on_a_dangling_tail(db_after):
    check_passes_then_fails(triples_reference_entities, db_after("kg"),
                            f"DELETE FROM \"{SCHEMA}\".kg_entities WHERE entity_id = 'genre:crime'")


def test_kg_mentions_links_users_words_to_entities(db_after):
    db = db_after("kg")
    result = kg_mentions(ctx(), duckdb=DuckDBResource(database=str(db)), encoder=encoder())
    mentions = read(db, "kg_mentions")
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
