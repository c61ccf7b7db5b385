import json

import pandas as pd
import pytest

from reclm_dagster.kg.build import build_knowledge_graph, co_consumption_triples
from reclm_dagster.kg.evidence import OLD_RULE
from reclm_dagster.kg.explain import explain, explain_many, item_facts, verify_path


def _train(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])


@pytest.fixture
def train():
    # u8 and u9 make V4~A1 and P1~P2 co-consumed; u1 is the user we explain for.
    return _train(
        [("u1", "V3", 5.0), ("u1", "V1", 1.0),
         ("u2", "V5", 1.0),
         ("u8", "V4", 1.0), ("u8", "A1", 1.0), ("u8", "P1", 1.0), ("u8", "P2", 1.0),
         ("u9", "V4", 1.0), ("u9", "A1", 1.0), ("u9", "P1", 1.0), ("u9", "P2", 1.0)]
    )


@pytest.fixture
def kg(items, facts, user_links, train):
    return build_knowledge_graph(items, facts, user_links, co_consumption_triples(train))


def test_shared_director_beats_shared_genre(kg):
    # V3 (liked more) only shares the genre with V2; V1 shares the director.
    # The genre Inception also shares follows as a second piece of evidence.
    exp = explain([("V3", 5.0), ("V1", 1.0)], "V2", kg)
    assert exp.kind == "shared_entity"
    assert exp.text == "Because you liked Inception: same director Christopher Nolan; also Science-Fiction"
    assert exp.path == [
        ("item:V1", "directed_by", "person:christopher nolan"),
        ("item:V2", "directed_by", "person:christopher nolan"),
        ("item:V1", "has_genre", "genre:science fiction"),
        ("item:V2", "has_genre", "genre:science fiction"),
    ]
    assert verify_path(kg, exp.path)
    # The old rule (one piece, issue 11 before) still gives the one-reason sentence.
    old = explain([("V3", 5.0), ("V1", 1.0)], "V2", kg, rule=OLD_RULE)
    assert old.text == "Because you liked Inception: same director Christopher Nolan" and len(old.path) == 2


def test_genre_used_when_nothing_more_specific(kg):
    exp = explain([("V3", 5.0)], "V2", kg)
    assert exp.kind == "shared_entity"
    assert exp.text == "Because you liked The Matrix: also Science-Fiction"
    assert verify_path(kg, exp.path)


def test_brand_wording_and_titles_override(kg):
    exp = explain([("P1", 1.0)], "P2", kg, titles={"P1": "My phone"})
    assert exp.text == "Because you liked My phone: same brand ＡＢＣ"
    assert verify_path(kg, exp.path)


def test_co_consumption_wording_follows_candidate_domain(kg):
    audio = explain([("V4", 1.0)], "A1", kg)
    assert audio.kind == "co_consumed"
    assert audio.text == "Listeners of Amélie also play it"
    video = explain([("A1", 1.0)], "V4", kg)
    assert video.text == "Viewers of Halo also watched it"
    for exp in (audio, video):
        assert len(exp.path) == 1 and verify_path(kg, exp.path)


def test_friend_needs_a_friend_edge_in_the_graph(kg):
    # u1 friend_of u2 is stored; u2 liked V5.
    exp = explain([], "V5", kg, friends_items={"u2": {"V5"}}, user_id="u1")
    assert exp.kind == "friend" and exp.text == "Your friend u2 watched it"
    assert exp.path == [("user:u1", "friend_of", "user:u2")] and verify_path(kg, exp.path)
    # Stored as u3 friend_of u1: the path uses the stored direction.
    exp = explain([], "V5", kg, friends_items={"u3": {"V5"}}, user_id="u1")
    assert exp.path == [("user:u3", "friend_of", "user:u1")] and verify_path(kg, exp.path)
    # A "friend" the graph does not know is not used.
    exp = explain([], "V5", kg, friends_items={"u7": {"V5"}}, user_id="u1")
    assert exp.kind == "popular"


def test_friend_outranks_shared_country(kg):
    # V4 and V5 share only the country France.
    exp = explain([("V4", 1.0)], "V5", kg, friends_items={"u2": {"V5"}}, user_id="u1")
    assert exp.kind == "friend"
    exp = explain([("V4", 1.0)], "V5", kg)
    assert exp.kind == "shared_entity" and exp.text == "Because you liked Amélie: also produced in France"


def test_text_match_then_popular_fallback(kg):
    exp = explain([("A2", 1.0)], "P1", kg, matched_terms=["battery", "camera", "battery"])
    assert exp.kind == "text_match"
    assert exp.text == "Matches 'battery', 'camera' in your description"
    assert exp.path == []
    exp = explain([("A2", 1.0)], "P1", kg)
    assert exp.kind == "popular" and exp.path == []


def test_fake_path_does_not_verify(kg):
    assert not verify_path(kg, [("item:V1", "directed_by", "person:lana wachowski")])
    assert not verify_path(
        kg, [("item:V1", "directed_by", "person:christopher nolan"), ("item:V3", "directed_by", "person:christopher nolan")]
    )
    assert verify_path(kg, [])


def test_item_facts(kg):
    facts = item_facts(kg, "V1")
    assert facts == {"directed_by": ["Christopher Nolan"], "has_genre": ["Science-Fiction"]}
    assert item_facts(kg, "nope") == {}


def test_explain_many(kg, train, items):
    recs = pd.DataFrame(
        {"user_id": ["u1", "u1", "u1", "u2", "u8"],
         "item_id": ["V2", "V5", "P1", "V3", "P2"],
         "rank": [1, 2, 3, 1, 1]}
    )
    terms = {("u1", "P1"): ["battery"]}
    out = explain_many(recs, train, kg, matched_terms_fn=lambda u, i: terms.get((u, i), []))
    assert list(out["rank"]) == [1, 2, 3, 1, 1]  # original columns kept
    kinds = dict(zip(zip(out["user_id"], out["item_id"]), out["explanation_kind"]))
    assert kinds[("u1", "V2")] == "shared_entity"  # director via V1, though V3 weighs more
    assert kinds[("u1", "V5")] == "friend"  # u2 (friend of u1) consumed V5 in training
    assert kinds[("u1", "P1")] == "text_match"
    # u2 liked V5 (France only) and V3 shares nothing with it; friend u1 liked V3.
    assert kinds[("u2", "V3")] == "friend"
    assert kinds[("u8", "P2")] == "shared_entity"  # same brand beats co-consumption
    for text, path in zip(out["explanation"], out["explanation_path"]):
        assert isinstance(text, str) and text
        assert verify_path(kg, [tuple(e) for e in json.loads(path)])
    row = out[(out["user_id"] == "u1") & (out["item_id"] == "V2")].iloc[0]
    assert row["explanation"] == explain([("V3", 5.0), ("V1", 1.0)], "V2", kg).text


def test_explain_many_uses_history_order_by_weight(kg):
    # Both V1 and V2 are Nolan films; the heavier one is named.
    train = _train([("u5", "V1", 1.0), ("u5", "V2", 3.0)])
    recs = pd.DataFrame({"user_id": ["u5"], "item_id": ["V3"]})
    out = explain_many(recs, train, kg)
    assert out["explanation"].iat[0] == "Because you liked Interstellar: also Science-Fiction"
