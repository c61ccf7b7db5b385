"""Item side information: what enters EASE's closed form and the items' text, and what never does."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reclm_dagster.models.ease import EASE
from reclm_dagster.models.side_information import (
    catalogue_facts_without_user_tags,
    item_feature_matrix,
    merge_similar,
    item_text_tokens,
    item_text_vectors,
)

ITEMS = np.array(["a", "b", "c", "d"])


def _descriptions(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "text"])


def test_facts_that_restate_a_users_tag_are_dropped():
    facts = pd.DataFrame({"item_id": ["a", "a", "b"], "relation": ["tagged_as", "has_genre", "tagged_as"],
                          "entity": ["Space Opera", "Drama", "noir"]})
    said = _descriptions([("u1", "a", "space  opera")])  # same tag, other spacing/case
    kept = catalogue_facts_without_user_tags(facts, said)
    assert list(zip(kept["item_id"], kept["entity"])) == [("a", "Drama"), ("b", "noir")]


def test_features_come_only_from_the_descriptions_given_and_catalogue_facts():
    descriptions = _descriptions([("u1", "a", "space opera"), ("u2", "b", "space opera"), ("u3", "c", "secret tag"),
                                  ("u4", "d", "secret tag")])
    facts = pd.DataFrame({"item_id": ["a", "c"], "relation": ["has_genre", "has_genre"], "entity": ["SciFi", "scifi"]})
    tokens = [t.split() for t in descriptions["text"]]
    F, names = item_feature_matrix(ITEMS, facts, descriptions, tokens)
    assert set(names) == {"said=space opera", "said=secret tag", "has_genre=scifi"}
    # the protocol removes u3's and u4's words (held-out pairs): their tag disappears entirely
    allowed = descriptions.iloc[:2]
    F2, names2 = item_feature_matrix(ITEMS, facts, allowed, tokens[:2])
    assert "said=secret tag" not in set(names2)
    col = list(names2).index("said=space opera")
    assert F2[:, col].toarray().ravel().tolist() == [1, 1, 0, 0]


def test_features_on_a_single_item_are_dropped_and_long_texts_become_words():
    review = "a very long review about robots and space travel"
    descriptions = _descriptions([("u1", "a", review), ("u2", "b", "robots everywhere in this one film")])
    tokens = [t.split() for t in descriptions["text"]]
    F, names = item_feature_matrix(ITEMS, pd.DataFrame(columns=["item_id", "relation", "entity"]), descriptions, tokens)
    assert set(names) == {"word=robots"}  # the only word on two items


def test_log_users_weighting_counts_distinct_users():
    descriptions = _descriptions([("u1", "a", "rock"), ("u2", "a", "rock"), ("u2", "a", "rock"), ("u3", "b", "rock")])
    tokens = [["rock"]] * 4
    empty = pd.DataFrame(columns=["item_id", "relation", "entity"])
    F, _ = item_feature_matrix(ITEMS, empty, descriptions, tokens, weighting="log_users")
    assert F[0, 0] == pytest.approx(1 + np.log(2))  # two distinct users, u2's repeat not counted
    assert F[1, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weighting"):
        item_feature_matrix(ITEMS, empty, descriptions, tokens, weighting="tfidf")


def test_item_text_mixes_catalogue_and_users_words():
    cat = np.eye(4, 3, dtype=np.float32)
    descriptions = _descriptions([("u1", "a", "x"), ("u2", "a", "y")])
    dvec = np.array([[0, 1, 0], [0, 1, 0]], np.float32)
    V = item_text_vectors(ITEMS, cat, descriptions, dvec, said_share=0.5)
    np.testing.assert_allclose(V[0], np.array([1, 1, 0]) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(V[1], cat[1])  # nobody said anything about b: catalogue only
    toks = item_text_tokens(ITEMS, [["t"]] * 4, descriptions, [["x"], ["y"]])
    assert toks[0] == ["t", "x", "y"] and toks[1] == ["t"]


def test_side_information_reaches_items_nobody_consumed():
    # 3 users consumed a and b; item c was consumed by nobody but shares a tag with a
    X = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0]], np.float32))
    side = sp.csr_matrix(np.array([[1], [0], [1]], np.float32))
    plain = EASE(l2=1.0).fit(X)
    assert np.allclose(plain.B_[:, 2], 0)
    with_side = EASE(l2=1.0, side_weight=1.0).fit(X, side=side)
    assert with_side.B_[0, 2] > 0  # a user who had a now scores c
    np.testing.assert_allclose(EASE(l2=1.0, side_weight=0.0).fit(X, side=side).B_, plain.B_)
    with pytest.raises(ValueError, match="item rows"):
        EASE(l2=1.0, side_weight=1.0).fit(X, side=side[:2])


def _unit(*rows):
    V = np.array(rows, np.float32)
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def test_merge_similar_points_each_name_to_the_most_said_neighbour_through_chains():
    names = np.array(["female vocalist", "female vocalists", "female vocals", "death metal"], dtype=object)
    # vocalist ~ vocalists (0.99), vocalists ~ vocals (~0.94), vocalist ~ vocals below 0.9: a chain; metal apart
    V = _unit([1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.87, 0.49, 0.0], [0.0, 0.0, 1.0])
    sims = V @ V.T
    assert sims[0, 1] > 0.9 and sims[1, 2] > 0.9 and sims[0, 2] < 0.9
    merged = merge_similar(names, V, np.array([3, 10, 1, 5]), threshold=0.9)
    # 'female vocalists' is said most: both others end there, the chain followed to its root
    assert merged == {"female vocalist": "female vocalists", "female vocals": "female vocalists"}
    assert merge_similar(names, V, np.array([3, 10, 1, 5]), threshold=0.999) == {}


def test_merged_short_texts_become_one_feature_linking_their_items():
    descriptions = _descriptions([("u1", "a", "scifi"), ("u2", "b", "sci-fi"), ("u3", "c", "jazz"), ("u4", "d", "jazz")])
    tokens = [[t] for t in descriptions["text"]]
    vectors = _unit([1, 0], [0.98, 0.2], [0, 1], [0, 1])
    empty = pd.DataFrame(columns=["item_id", "relation", "entity"])
    F0, names0 = item_feature_matrix(ITEMS, empty, descriptions, tokens)
    assert set(names0) == {"said=jazz"}  # 'scifi' and 'sci-fi' each on one item: dropped
    F, names = item_feature_matrix(ITEMS, empty, descriptions, tokens, description_vectors=vectors, merge_threshold=0.9)
    assert len(names) == 2 and "said=jazz" in set(names)  # the two spellings: one feature, named after one of them
    col = [i for i, n in enumerate(names) if n != "said=jazz"][0]
    assert F[:, col].toarray().ravel().tolist() == [1, 1, 0, 0]


def test_products_with_a_subset_of_rows_read_in_place_equal_the_products_with_its_copy():
    """``positions`` (user profiles, items' said-vectors) gives bit for bit what the copied rows gave."""
    import scipy.sparse as sp

    from reclm_dagster.models.hybrid import UserText
    from reclm_dagster.models.side_information import product_with_rows

    rng = np.random.default_rng(5)
    V = rng.normal(size=(50, 8)).astype(np.float32)
    keep = np.sort(rng.choice(50, 30, replace=False))
    M = sp.random(6, 30, density=0.4, random_state=1, format="csr", dtype=np.float32)
    np.testing.assert_array_equal(product_with_rows(M, V, keep), M @ V[keep])
    descriptions = pd.DataFrame({"user_id": rng.choice(["a", "b", "c"], 30), "item_id": rng.choice(ITEMS, 30),
                                 "text": ["fine"] * 30, "kind": "tag"})
    tokens = [["fine"]] * 30
    users = np.array(["a", "b", "c"])
    copied = UserText.build(users, descriptions, V[keep], tokens)
    in_place = UserText.build(users, descriptions, V, tokens, positions=keep)
    np.testing.assert_array_equal(in_place.vectors, copied.vectors)
    cat = rng.normal(size=(len(ITEMS), 8)).astype(np.float32)
    np.testing.assert_array_equal(item_text_vectors(ITEMS, cat, descriptions, V, positions=keep),
                                  item_text_vectors(ITEMS, cat, descriptions, V[keep]))
    assert not np.array_equal(product_with_rows(M, V, keep), M @ V[:30])  # the rows chosen matter
