"""The bundled demo dataset: contents, determinism, and that its structure is learnable."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from reclm_dagster.datasets import COLUMNS, DESCRIPTION_KINDS, DOMAINS, DatasetError, load_dataset
from reclm_dagster.datasets import demo as demo_source

PHONE_SEED = "这款手机电池续航能力强，拍照效果好"
LAPTOP_SEED = "这个笔记本轻薄便携，性能稳定"


def test_catalogue_covers_domains_and_languages(demo):
    items = demo.items
    assert len(items) >= 60
    counts = items["domain"].value_counts()
    assert set(counts.index) == set(DOMAINS)
    assert counts.min() >= 15  # roughly balanced, not a token item per domain
    langs = items["language"].value_counts(normalize=True)
    assert {"en", "zh"} <= set(langs.index)
    assert 0.2 <= langs["zh"] <= 0.45
    assert items["item_id"].is_unique
    assert (items["title"] != "").all() and (items["description"] != "").all()


def test_frames_follow_schema(demo):
    for kind in ("items", "interactions", "descriptions", "facts", "user_links", "quarantine"):
        frame = getattr(demo, kind)
        assert list(frame.columns[: len(COLUMNS[kind])]) == list(COLUMNS[kind]), kind
        assert not any(c.startswith("_") for c in frame.columns), kind
    assert demo.interactions["weight"].dtype == "float64"
    assert str(demo.interactions["timestamp"].dtype) == "Int64"
    assert set(demo.descriptions["kind"]) == set(DESCRIPTION_KINDS)
    assert len(demo.quarantine) == 0


def test_p40_and_macbook(demo):
    items = demo.items.set_index("item_id")
    p40, mac = items.loc["P40"], items.loc["MacBook"]
    assert (p40["domain"], p40["language"], p40["price"]) == ("product", "zh", 3000)
    assert (mac["domain"], mac["language"], mac["price"]) == ("product", "zh", 8000)
    for word in ("手机", "电池", "续航", "拍照"):
        assert word in p40["description"]
    for word in ("笔记本", "轻薄", "便携", "性能稳定"):
        assert word in mac["description"]
    cats = demo.facts[demo.facts["relation"] == "category"].set_index("item_id")["entity"]
    assert cats["P40"] == "Phone" and cats["MacBook"] == "Laptop"
    assert (cats == "Phone").sum() >= 3 and (cats == "Laptop").sum() >= 3  # competitors exist


def test_seed_descriptions_match_their_product_lexically(demo):
    jieba = pytest.importorskip("jieba")
    jieba.setLogLevel(60)

    def words(text):
        return {w for w in jieba.lcut(text.lower()) if len(w.strip()) >= 2}

    texts = {r.item_id: words(f"{r.title} {r.description}") for r in demo.items.itertuples()}
    for seed, best, other in ((PHONE_SEED, "P40", "MacBook"), (LAPTOP_SEED, "MacBook", "P40")):
        overlap = {i: len(words(seed) & t) for i, t in texts.items()}
        ranked = sorted(overlap, key=overlap.get, reverse=True)
        assert ranked[0] == best and overlap[best] > overlap[ranked[1]], (seed, overlap[best], ranked[:3])
        assert overlap[other] == 0
    requests = set(demo.descriptions.loc[demo.descriptions["kind"] == "request", "text"])
    assert {PHONE_SEED, LAPTOP_SEED} <= requests


def test_every_user_has_enough_interactions(demo):
    per_user = demo.interactions.groupby("user_id").size()
    assert 150 <= len(per_user) <= 250
    assert per_user.min() >= 8
    assert not demo.interactions.duplicated(["user_id", "item_id"]).any()
    assert demo.interactions["weight"].between(1, 5).all()
    assert demo.interactions["timestamp"].notna().all()


def test_references_point_to_known_items_and_users(demo):
    known = set(demo.items["item_id"])
    assert set(demo.facts["item_id"]) <= known
    assert set(demo.interactions["item_id"]) <= known
    assert set(demo.descriptions["item_id"].dropna()) <= known
    users = set(demo.interactions["user_id"])
    assert set(demo.descriptions["user_id"]) <= users
    assert set(demo.user_links["user_id"]) | set(demo.user_links["other_user_id"]) <= users


def test_knowledge_graph_has_shared_entities(demo):
    facts = demo.facts
    shared = facts.groupby(["relation", "entity"])["item_id"].nunique()
    for relation in ("directed_by", "by_artist", "brand", "has_genre", "category", "feature"):
        assert (shared.loc[relation] >= 2).any(), relation
    assert {"priced_at", "starring", "tagged_as"} <= set(facts["relation"])


def test_reviews_and_tags_are_about_consumed_items(demo):
    d = demo.descriptions
    about = d[d["item_id"].notna()].merge(demo.interactions, on=["user_id", "item_id"], how="left", indicator=True)
    assert (about["_merge"] == "both").all()
    reviews = about[about["kind"] == "review"]
    assert (reviews["rating"] == reviews["weight"]).all()
    general = d[d["kind"].isin(["request", "profile"])]
    assert general["item_id"].isna().all()
    assert (general.groupby("user_id").size() == 2).all()


def test_demo_is_deterministic():
    a, b = load_dataset("demo"), load_dataset("demo")
    for kind in ("items", "interactions", "descriptions", "facts", "user_links", "quarantine"):
        pd.testing.assert_frame_equal(getattr(a, kind), getattr(b, kind))


def test_held_out_items_are_predictable_from_the_rest(demo):
    """Leave each user's last interaction out: co-occurrence must beat popularity clearly."""
    inter = demo.interactions.sort_values(["user_id", "timestamp", "item_id"])
    test = inter.groupby("user_id").tail(1).set_index("user_id")["item_id"]
    train = inter.drop(inter.groupby("user_id").tail(1).index)
    users, items = sorted(inter["user_id"].unique()), sorted(inter["item_id"].unique())
    m = pd.crosstab(train["user_id"], train["item_id"]).reindex(index=users, columns=items, fill_value=0).to_numpy() > 0
    m = m.astype(float)
    sim = m @ m.T / np.sqrt(np.outer(m.sum(1), m.sum(1)))
    np.fill_diagonal(sim, 0)

    def hit_rate(scores):
        scores = np.where(m > 0, -np.inf, scores)
        top = np.argsort(-scores, axis=1)[:, :10]
        target = test.reindex(users).map({x: k for k, x in enumerate(items)}).to_numpy()
        return np.mean([t in row for t, row in zip(target, top)])

    popular = hit_rate(np.tile(m.sum(0), (len(users), 1)))
    knn = hit_rate(sim @ m)
    assert knn > popular + 0.15, (knn, popular)


def test_users_follow_their_persona():
    personas = demo_source.user_personas()
    ds = load_dataset("demo")
    assert set(personas["user_id"]) == set(ds.interactions["user_id"])
    assert personas["persona"].nunique() >= 8
    # users of one persona agree on their most-consumed item far more than chance
    joined = ds.interactions.merge(personas, on="user_id")
    top_share = joined.groupby("persona").apply(
        lambda g: g["item_id"].value_counts().iloc[0] / g["user_id"].nunique(), include_groups=False
    )
    assert (top_share >= 0.6).all(), top_share


def test_persona_naming_an_unknown_item_is_reported(tmp_path):
    for name in ("items.csv", "facts.csv", "personas.yaml"):
        shutil.copy(demo_source.DEMO_DIR / name, tmp_path / name)
    text = (tmp_path / "personas.yaml").read_text(encoding="utf-8").replace("favourites: [V01, V02]", "favourites: [V01, V99]")
    (tmp_path / "personas.yaml").write_text(text, encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "id: scifi_fan" in row)
    with pytest.raises(DatasetError, match=rf"personas.yaml:{line}: persona 'scifi_fan' names unknown items \['V99'\]"):
        demo_source.load(tmp_path)
