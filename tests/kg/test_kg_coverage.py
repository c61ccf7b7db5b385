"""Explanation coverage and faithfulness: every edge of every stated path is a triple, and the
path says what the text claims (the user's item, friend or mention; the recommended item)."""

import json

import pandas as pd
import pytest

from reclm_dagster.kg.build import build_knowledge_graph, co_consumption_triples
from reclm_dagster.kg.coverage import check_explanation, explanation_coverage, explanation_report
from reclm_dagster.kg.explain import explain, explain_many, verify_path
from reclm_dagster.kg.linking import EntityLinker, link_descriptions


def _train(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])


@pytest.fixture
def train():
    return _train(
        [("u1", "V3", 5.0), ("u1", "V1", 1.0), ("u2", "V5", 1.0),
         ("u8", "V4", 1.0), ("u8", "A1", 1.0), ("u8", "P1", 1.0), ("u8", "P2", 1.0),
         ("u9", "V4", 1.0), ("u9", "A1", 1.0), ("u9", "P1", 1.0), ("u9", "P2", 1.0),
         ("u7", "A2", 1.0), ("u7", "V5", 1.0)]  # one user: A2 ~ V5 weakly
    )


@pytest.fixture
def kg(items, facts, user_links, train):
    return build_knowledge_graph(items, facts, user_links, co_consumption_triples(train, min_common=1))


def test_weak_co_consumption_is_said_as_one_user_and_ranks_after_friend(kg, train):
    exp = explain([("A2", 1.0)], "V5", kg)
    assert exp.kind == "co_consumed" and exp.text == "A viewer of Single Ladies also watched it"
    assert verify_path(kg, exp.path)
    strong = explain([("V4", 1.0)], "A1", kg)
    assert strong.text == "Listeners of Amélie also play it"
    # u1 -- friend_of -- u2, who watched V5: the friend is a stronger reason than one co-viewer.
    exp = explain([("A2", 1.0)], "V5", kg, friends_items={"u2": {"V5"}}, user_id="u1")
    assert exp.kind == "friend"


def test_mention_explanation(kg):
    mentioned = {"person:lana wachowski": ("Wachowski", "tag"), "genre:science fiction": ("sci-fi", "review")}
    exp = explain([], "V3", kg, mentioned=mentioned)
    assert exp.kind == "mention" and exp.text == "Matches 'Wachowski' in your tags"
    assert exp.path == [("item:V3", "directed_by", "person:lana wachowski")] and verify_path(kg, exp.path)
    # A shared director with a liked item still comes first.
    assert explain([("V1", 1.0)], "V2", kg, mentioned=mentioned).kind == "shared_entity"
    # A mentioned genre comes after a shared genre.
    exp = explain([("V1", 1.0)], "V3", kg, mentioned={"genre:science fiction": ("sci-fi", "review")})
    assert exp.kind == "shared_entity"
    exp = explain([], "V3", kg, mentioned={"genre:science fiction": ("sci-fi", "review")})
    assert exp.text == "Matches 'sci-fi' in your reviews"


def test_explain_many_with_mentions_and_coverage(kg, train, items):
    desc = pd.DataFrame({"description_id": ["d1"], "user_id": ["u5"], "item_id": [None], "kind": ["request"],
                         "text": ["anything by Lana Wachowski please"]})
    mentions = link_descriptions(desc, EntityLinker(kg.entities))
    recs = pd.DataFrame({"user_id": ["u1", "u1", "u5", "u5"], "item_id": ["V2", "P1", "V3", "A1"], "rank": [1, 2, 1, 2]})
    out = explain_many(recs, train, kg, mentions=mentions)
    kinds = dict(zip(zip(out["user_id"], out["item_id"]), out["explanation_kind"]))
    assert kinds[("u5", "V3")] == "mention"
    assert kinds[("u1", "P1")] == "popular" and kinds[("u5", "A1")] == "popular"
    cov = explanation_coverage(out, kg, k=10, interactions=train, mentions=mentions)
    assert cov["coverage"] == 0.5 and cov["unfaithful"] == 0 and cov["n_rows"] == 4
    assert explanation_coverage(out, kg, k=1, interactions=train, mentions=mentions)["coverage"] == 1.0


def test_forged_paths_are_caught(kg, train):
    consumed = {"u1": {"V3", "V1"}, "u2": {"V5"}}
    ok = [("item:V1", "directed_by", "person:christopher nolan"), ("item:V2", "directed_by", "person:christopher nolan")]
    assert check_explanation("u1", "V2", "shared_entity", ok, kg, consumed) == ""
    # Edge not in the graph.
    fake = [("item:V1", "directed_by", "person:lana wachowski"), ("item:V3", "directed_by", "person:lana wachowski")]
    assert "not in the triples" in check_explanation("u1", "V3", "shared_entity", fake, kg, consumed)
    # Real edges, but the user never consumed V1 / the path is about another item.
    assert "did not consume" in check_explanation("u2", "V2", "shared_entity", ok, kg, consumed)
    assert check_explanation("u1", "V5", "shared_entity", ok, kg, consumed) != ""
    # A friend who did not consume the item.
    assert "did not consume" in check_explanation("u1", "V3", "friend", [("user:u1", "friend_of", "user:u2")], kg, consumed)
    assert check_explanation("u1", "V5", "friend", [("user:u1", "friend_of", "user:u2")], kg, consumed) == ""
    # A mention the user never made.
    path = [("item:V3", "directed_by", "person:lana wachowski")]
    assert "never mentioned" in check_explanation("u1", "V3", "mention", path, kg, consumed, {"u1": set()})
    recs = pd.DataFrame({"user_id": ["u2"], "item_id": ["V2"], "rank": [1], "explanation_kind": ["shared_entity"],
                         "explanation_path": [json.dumps(ok)]})
    rep = explanation_report(recs, kg, interactions=train)
    assert not rep["verified"].iat[0]
    assert explanation_coverage(recs, kg, interactions=train)["unfaithful"] == 1


def _stored_lists(ds, kg):
    """Top-10 lists of an item-kNN model (reclm's default CF) for every user."""
    import numpy as np

    from reclm_dagster.models.matrix import InteractionMatrix
    from reclm_dagster.models.neighbors import ItemKNN
    from reclm_dagster.models.ranking import recommend_batches

    im = InteractionMatrix(ds.interactions)  # items someone consumed
    model = ItemKNN(k_neighbors=100).fit(im.X)
    users = np.arange(im.shape[0])
    rows = []
    for r, idx, _ in recommend_batches(model, im.X, users, 10):
        for u, ii in zip(r, idx):
            rows += [(im.users[u], im.items[i], k + 1) for k, i in enumerate(ii) if i >= 0]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def _coverage(ds, n_users=None):
    if n_users is not None:  # a slice: the first n users and everything they did
        keep = sorted(ds.interactions["user_id"].astype(str).unique())[:n_users]
        ds.interactions = ds.interactions[ds.interactions["user_id"].astype(str).isin(keep)]
        ds.descriptions = ds.descriptions[ds.descriptions["user_id"].astype(str).isin(keep)]
    kg = build_knowledge_graph(ds.items, ds.facts, ds.user_links,
                               co_consumption_triples(ds.interactions, min_common=1, top_k=10), descriptions=ds.descriptions)
    mentions = link_descriptions(ds.descriptions, EntityLinker(kg.entities))
    recs = explain_many(_stored_lists(ds, kg), ds.interactions, kg, mentions=mentions)
    return explanation_coverage(recs, kg, 10, ds.interactions, mentions)


def test_demo_coverage_and_faithfulness():
    from reclm_dagster.datasets import load_dataset

    cov = _coverage(load_dataset("demo"))
    assert cov["unfaithful"] == 0
    assert cov["coverage"] >= 0.95


@pytest.mark.parametrize("name", ["ml-latest-small", "hetrec2011-lastfm-2k"])
def test_real_data_slice_coverage_and_faithfulness(shared_data_dir, name):
    from reclm_dagster.datasets import load_dataset

    cov = _coverage(load_dataset(name, shared_data_dir), n_users=300)
    assert cov["unfaithful"] == 0
    assert cov["coverage"] >= 0.95, cov
