"""Negative descriptions: detected by rating or by a short negative tag, and never a pull."""

import numpy as np
import pandas as pd

from reclm_dagster.models.hybrid import UserText
from reclm_dagster.text.normalize import segment
from reclm_dagster.text.sentiment import negative_mask


def _desc(texts, ratings=None):
    df = pd.DataFrame({"user_id": "u", "item_id": [f"i{k}" for k in range(len(texts))], "text": texts})
    if ratings is not None:
        df["rating"] = ratings
    return df, [segment(t) for t in df["text"]]


def test_negative_by_rating_and_by_short_tag_only():
    df, toks = _desc(["Overrated", "space opera", "this film is not boring at all, a real delight from start to end",
                      "烂片", "还行", "great"], ratings=[np.nan, np.nan, np.nan, np.nan, 1.0, 5.0])
    assert negative_mask(df, toks).tolist() == [True, False, False, True, True, False]


def test_a_disliked_items_words_push_the_profile_away():
    users = np.array(["u"])
    df, toks = _desc(["space robots", "boring"])
    vec = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)  # the disliked item's direction is [0, 1]
    pushed = UserText.build(users, df, vec, toks, negative_weight=-0.5)
    naive = UserText.build(users, df, vec, toks, negative_weight=1.0)
    disliked_like = np.array([0.0, 1.0])
    assert naive.vectors[0] @ disliked_like > 0.5  # treated as praise, "boring" pulls towards it
    assert pushed.vectors[0] @ disliked_like < 0  # handled: it pushes away
    assert "boring" not in pushed.tokens[0] and "boring" in naive.tokens[0]
    assert all("boring" not in f for f in pushed.features[0])
