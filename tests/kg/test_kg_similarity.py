import math

import numpy as np
import pandas as pd
import pytest

from reclm_dagster.kg.build import build_knowledge_graph
from reclm_dagster.kg.similarity import entity_idf, item_entity_matrix, kg_item_similarity


@pytest.fixture
def three_items():
    # I1: g, d, t    I2: g, d, u    I3: g, u
    items = pd.DataFrame(
        {"item_id": ["I1", "I2", "I3"], "title": ["one", "two", "three"],
         "description": "", "domain": "video", "language": "en"}
    )
    rows = [
        ("I1", "has_genre", "genre", "g"), ("I1", "directed_by", "person", "d"),
        ("I1", "tagged_as", "tag", "t"),
        ("I2", "has_genre", "genre", "g"), ("I2", "directed_by", "person", "d"),
        ("I2", "tagged_as", "tag", "u"),
        ("I3", "has_genre", "genre", "g"), ("I3", "tagged_as", "tag", "u"),
    ]
    facts = pd.DataFrame(rows, columns=["item_id", "relation", "entity_type", "entity"])
    facts["weight"] = 1.0
    facts["source"] = "hand"
    return build_knowledge_graph(items, facts)


def test_item_entity_matrix_aligned_to_item_ids(three_items):
    m, entities = item_entity_matrix(three_items, ["I3", "I1", "MISSING"])
    assert m.shape == (3, len(entities))
    row_i3 = {entities[j] for j in m[0].indices}
    assert row_i3 == {"genre:g", "tag:u"}
    assert m[2].nnz == 0  # unknown item: empty row, still aligned


def test_idf_similarity_matches_hand_computation(three_items):
    # N = 3. df: g=3, d=2, t=1, u=2
    # idf: g = ln(3/3) = 0, d = u = a = ln(1.5), t = b = ln(3)
    # I1 = (d:a, t:b), I2 = (d:a, u:a), I3 = (u:a)
    # cos(I1,I2) = a^2 / (sqrt(a^2+b^2) * sqrt(2) a) = a / (sqrt(2) sqrt(a^2+b^2)) ~= 0.2448
    # cos(I2,I3) = a^2 / (sqrt(2) a * a) = 1/sqrt(2) ~= 0.7071
    # cos(I1,I3) = 0: they share only g, which every item has.
    a, b = math.log(1.5), math.log(3)
    sim = kg_item_similarity(three_items, ["I1", "I2", "I3"], top_k=5).toarray()
    assert sim[0, 1] == pytest.approx(a / (math.sqrt(2) * math.sqrt(a * a + b * b)))
    assert sim[0, 1] == pytest.approx(0.2448, abs=1e-3)
    assert sim[1, 2] == pytest.approx(1 / math.sqrt(2))
    assert sim[0, 2] == 0.0
    np.testing.assert_allclose(sim, sim.T)
    assert np.all(np.diag(sim) == 0)


def test_entity_idf_zero_for_universal_entity(three_items):
    m, entities = item_entity_matrix(three_items, ["I1", "I2", "I3"])
    idf = dict(zip(entities, entity_idf(m)))
    assert idf["genre:g"] == 0.0
    assert idf["tag:t"] > idf["tag:u"] > 0


def test_top_k_limits_neighbours(three_items):
    sim = kg_item_similarity(three_items, ["I1", "I2", "I3"], top_k=1)
    assert max(sim.getnnz(axis=1)) == 1
    # I2's best neighbour is I3 (0.71 > 0.24).
    assert sim[1].indices.tolist() == [2]


def test_similarity_ignores_item_and_user_edges(items, facts, user_links):
    train = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["V4", "A1"] * 2, "weight": 1})
    from reclm_dagster.kg.build import co_consumption_triples

    kg = build_knowledge_graph(items, facts, user_links, co_consumption_triples(train))
    sim = kg_item_similarity(kg, ["V4", "A1"]).toarray()
    assert sim[0, 1] == 0.0  # co-consumed, but no shared content entity
