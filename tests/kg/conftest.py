"""A tiny mixed-domain catalogue shared by the KG tests."""

import pandas as pd
import pytest


@pytest.fixture
def items():
    rows = [
        ("V1", "Inception", "video"),
        ("V2", "Interstellar", "video"),
        ("V3", "The Matrix", "video"),
        ("V4", "Amélie", "video"),
        ("V5", "Paris Story", "video"),
        ("A1", "Halo", "audio"),
        ("A2", "Single Ladies", "audio"),
        ("P1", "Phone X", "product"),
        ("P2", "Phone Y", "product"),
    ]
    return pd.DataFrame(
        [(i, t, f"about {t}", d, "en") for i, t, d in rows],
        columns=["item_id", "title", "description", "domain", "language"],
    )


@pytest.fixture
def facts():
    rows = [
        ("V1", "directed_by", "person", "Christopher Nolan", 1.0, "a.csv:1"),
        ("V1", "has_genre", "genre", "Science-Fiction", 1.0, "a.csv:2"),
        ("V1", "has_genre", "genre", "science fiction", 0.5, "b.csv:7"),  # duplicate fact
        ("V2", "directed_by", "person", "christopher nolan", 1.0, "a.csv:3"),
        ("V2", "has_genre", "genre", "SCIENCE FICTION", 1.0, "a.csv:4"),
        ("V3", "has_genre", "genre", "Science Fiction", 1.0, "a.csv:5"),
        ("V3", "directed_by", "person", "Lana Wachowski", 1.0, "a.csv:6"),
        ("V4", "has_genre", "genre", "Romance", 1.0, "a.csv:8"),
        ("V4", "produced_in", "country", "France", 1.0, "a.csv:9"),
        ("V5", "produced_in", "country", "france", 1.0, "a.csv:10"),
        ("A1", "by_artist", "person", "Beyoncé", 1.0, "m.csv:1"),
        ("A2", "by_artist", "person", "beyonce", 1.0, "m.csv:2"),
        ("P1", "brand", "brand", "ＡＢＣ", 1.0, "p.csv:1"),
        ("P2", "brand", "brand", "abc", 1.0, "p.csv:2"),
        ("P1", "feature", "feature", "battery", 1.0, "p.csv:3"),
        ("ZZ", "has_genre", "genre", "Horror", 1.0, "x.csv:1"),  # unknown item
    ]
    return pd.DataFrame(
        rows, columns=["item_id", "relation", "entity_type", "entity", "weight", "source"]
    )


@pytest.fixture
def user_links():
    return pd.DataFrame(
        [("u1", "friend_of", "u2"), ("u3", "friend_of", "u1")],
        columns=["user_id", "relation", "other_user_id"],
    )
