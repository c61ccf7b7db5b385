import numpy as np
import pandas as pd
import pytest

from reclm_dagster.kg.build import build_knowledge_graph
from reclm_dagster.kg.linking import (
    EntityLinker,
    link_descriptions,
    link_request,
    mention_summary,
    normalize_with_offsets,
    user_mentions,
)


@pytest.fixture
def entities():
    rows = [
        ("genre:science fiction", "genre", "Science-Fiction", "science fiction | SF | sci-fi"),
        ("tag:space opera", "tag", "space opera", ""),
        ("tag:space", "tag", "space", ""),
        ("person:christopher nolan", "person", "Christopher Nolan", ""),
        ("feature:电池续航", "feature", "电池续航", ""),
        ("feature:拍照", "feature", "拍照", ""),
        ("tag:drama", "tag", "Drama", ""),
        ("genre:drama", "genre", "Drama", ""),
        ("person:beyonce", "person", "Beyoncé", "beyonce"),
        ("tag:the", "tag", "the", ""),  # a stop word: never linked
        ("item:V1", "item", "Toy Story (1995)", ""),
        ("item:V2", "item", "Up", ""),  # one-word titles are not linked
        ("user:u1", "user", "u1", ""),
    ]
    return pd.DataFrame(rows, columns=["entity_id", "entity_type", "name", "aliases"])


def _links(linker, text):
    return [(m.surface, m.entity_id, m.method) for m in linker.link(text)]


def test_normalize_with_offsets_maps_back():
    norm, origin = normalize_with_offsets("ＳＣＩ-Fi  Beyoncé")
    assert norm == "sci fi beyonce"
    assert len(origin) == len(norm) and origin[0] == 0 and origin[-1] == len("ＳＣＩ-Fi  Beyoncé") - 1
    assert normalize_with_offsets("科幻 电影")[0] == "科幻电影"


def test_longest_match_first_and_spans(entities):
    linker = EntityLinker(entities)
    text = "I love a good Space Opera, and science fiction by Christopher Nolan."
    found = linker.link(text)
    assert [(m.surface, m.entity_id) for m in found] == [
        ("Space Opera", "tag:space opera"),
        ("science fiction", "genre:science fiction"),
        ("Christopher Nolan", "person:christopher nolan"),
    ]
    for m in found:
        assert text[m.start:m.end] == m.surface and m.score == 1.0
    assert found[1].method == "exact"  # same key as the name 'Science-Fiction'
    assert _links(linker, "classic SF novels") == [("SF", "genre:science fiction", "alias")]


def test_case_accent_width_and_punctuation(entities):
    linker = EntityLinker(entities)
    assert _links(linker, "SCIENCE-FICTION fans") == [("SCIENCE-FICTION", "genre:science fiction", "exact")]
    assert _links(linker, "beyonce!")[0][1] == "person:beyonce"
    assert _links(linker, "BEYONCÉ")[0][1] == "person:beyonce"


def test_chinese_without_spaces(entities):
    linker = EntityLinker(entities)
    text = "这款手机电池续航能力强，拍照效果好"
    found = linker.link(text)
    assert [(m.surface, m.entity_id) for m in found] == [("电池续航", "feature:电池续航"), ("拍照", "feature:拍照")]
    assert text[found[0].start:found[0].end] == "电池续航"


def test_no_match_inside_words_stopwords_short_titles(entities):
    linker = EntityLinker(entities)
    assert _links(linker, "spaceship dramatic") == []
    assert _links(linker, "the end") == []
    assert _links(linker, "Up we go") == []
    assert _links(linker, "u1 said so") == []
    assert _links(linker, "I loved Toy Story") == [("Toy Story", "item:V1", "exact")]


def test_ambiguous_surface_links_every_entity_specific_type_first(entities):
    found = _links(EntityLinker(entities), "a drama")
    assert [e for _, e, _ in found] == ["genre:drama", "tag:drama"]


class FakeEncoder:
    """Unit vectors keyed by text; unknown texts get an orthogonal direction."""

    def __init__(self, table, dim=8):
        self.table, self.dim, self.calls = table, dim, []

    def encode(self, texts):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            v = self.table.get(t)
            if v is None:
                out[r, self.dim - 1 - (r % 2)] = 1.0
            else:
                out[r] = np.asarray(v, dtype=np.float32) / np.linalg.norm(v)
        return out


def test_embedding_pass_links_paraphrase_above_threshold(entities):
    table = {
        "space opera": [1, 0, 0, 0, 0, 0, 0, 0],
        "space": [0, 1, 0, 0, 0, 0, 0, 0],
        "Science-Fiction": [0, 0, 1, 0, 0, 0, 0, 0],
        "Drama": [0, 0, 0, 1, 0, 0, 0, 0],
        "galactic empire saga": [0.9, 0.1, 0, 0, 0, 0, 0, 0],  # close to space opera
        "cooking shows": [0, 0, 0.3, 0.3, 0.9, 0, 0, 0],  # close to nothing
        "电池续航时间很长": [0, 0, 0, 0, 0, 1, 0, 0],
        "古装悬疑电视剧": [0, 0, 0, 0, 0, 0, 1, 0],
    }
    enc = FakeEncoder(table)
    linker = EntityLinker(entities, encoder=enc, threshold=0.8)
    text = "galactic empire saga, cooking shows"
    found = linker.link(text)
    assert [(m.surface, m.entity_id, m.method) for m in found] == [("galactic empire saga", "tag:space opera", "embedding")]
    assert 0.8 <= found[0].score <= 1.0
    assert text[found[0].start:found[0].end] == "galactic empire saga"
    # Dictionary matches are not re-linked by embeddings.
    assert [m.method for m in linker.link("space opera")] == ["exact"]


def test_embedding_pass_skips_cjk_when_encoder_cannot_read_it(entities):
    # Every CJK text maps to the same vector: the probe says the encoder is English-only.
    class Blind(FakeEncoder):
        def encode(self, texts):
            out = super().encode(texts)
            for r, t in enumerate(texts):
                if any("\u4e00" <= c <= "\u9fff" for c in t):
                    out[r] = 0
                    out[r, 0] = 1.0
            return out

    linker = EntityLinker(entities, encoder=Blind({"space opera": [1, 0, 0, 0, 0, 0, 0, 0]}), threshold=0.5)
    assert [m.method for m in linker.link("想看一部好电影")] == []


def test_link_descriptions_links_distinct_texts_once(entities):
    enc = FakeEncoder({})
    linker = EntityLinker(entities, encoder=enc, threshold=0.99)
    desc = pd.DataFrame({
        "description_id": ["d1", "d2", "d3", "d4"],
        "user_id": ["u1", "u2", "u1", "u3"],
        "item_id": ["V1", None, "V2", None],
        "kind": ["tag", "request", "tag", "review"],
        "text": ["space opera", "space opera", "Drama", "nothing here"],
    })
    out = link_descriptions(desc, linker)
    assert list(out.columns)[:4] == ["description_id", "user_id", "item_id", "kind"]
    assert sorted(zip(out["description_id"], out["entity_id"])) == [
        ("d1", "tag:space opera"), ("d2", "tag:space opera"), ("d3", "genre:drama"), ("d3", "tag:drama")]
    # One encode call for the concept names (+ one for the remainders), not one per description.
    assert all("space opera" not in c for c in enc.calls[1:])
    summary = mention_summary(out, desc)
    assert summary["share_descriptions_linked"] == 0.75 and summary["n_mentions"] == 4
    said = user_mentions(out)
    assert said["u1"]["tag:space opera"] == ("space opera", "tag")


def test_link_request_on_a_built_graph(items, facts):
    kg = build_knowledge_graph(items, facts)
    rows = link_request("a sci-fi film like Christopher Nolan makes, with battery", kg.entities)
    assert {r["entity_id"] for r in rows} == {"person:christopher nolan", "feature:battery"}
    row = next(r for r in rows if r["entity_id"] == "person:christopher nolan")
    assert row["entity_type"] == "person" and row["entity_name"] == "Christopher Nolan" and row["method"] == "exact"


def test_lastfm_slice_speed_and_share(shared_data_dir):
    """Real data: Last.fm tag texts are tag entities; nearly every assignment links."""
    import time

    from reclm_dagster.datasets import load_dataset

    ds = load_dataset("hetrec2011-lastfm-2k", shared_data_dir)
    kg = build_knowledge_graph(ds.items, ds.facts, descriptions=ds.descriptions)
    start = time.perf_counter()
    linker = EntityLinker(kg.entities)
    out = link_descriptions(ds.descriptions, linker)
    assert time.perf_counter() - start < 60
    assert mention_summary(out, ds.descriptions)["share_descriptions_linked"] > 0.95


def test_linker_embeds_through_the_one_cache_class(entities):
    """The Dagster asset wraps the dataset's encoder in encoders.cache.CachedEncoder (there is no
    second adapter class in kg/linking.py): same links, and a second linker encodes nothing new."""
    import hashlib

    import duckdb

    import reclm_dagster.kg.linking as linking
    from reclm_dagster.encoders.cache import CachedEncoder

    class Versioned(FakeEncoder):
        """A vector per text whatever its position in the batch (the cache reorders texts)."""

        version = "fake@1"

        def encode(self, texts, progress=False, desc=""):
            self.calls.append(list(texts))
            out = np.zeros((len(texts), self.dim), dtype=np.float32)
            for r, t in enumerate(texts):
                seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
                v = self.table.get(t, np.r_[np.zeros(8), np.random.default_rng(seed).normal(size=self.dim - 8)])
                out[r, : len(v)] = v
            return out / np.linalg.norm(out, axis=1, keepdims=True)

    table = {"space opera": [1, 0, 0, 0, 0, 0, 0, 0], "galactic empire saga": [0.9, 0.1, 0, 0, 0, 0, 0, 0]}
    con = duckdb.connect()
    inner = Versioned(table, dim=64)
    text = "galactic empire saga, cooking shows"
    plain = EntityLinker(entities, encoder=Versioned(table, dim=64), threshold=0.8).link(text)
    cached = EntityLinker(entities, encoder=CachedEncoder(inner, con), threshold=0.8).link(text)
    assert [(m.surface, m.entity_id, m.method) for m in cached] == [(m.surface, m.entity_id, m.method) for m in plain]
    assert cached[0].entity_id == "tag:space opera"
    n_calls = len(inner.calls)
    EntityLinker(entities, encoder=CachedEncoder(inner, con), threshold=0.8).link(text)
    assert len(inner.calls) == n_calls  # every text came from the cache
    assert not hasattr(linking, "CachedEncoder")


def test_a_linker_from_its_stored_key_table_links_every_text_alike(entities):
    """``from_key_table(key_table())`` (what a request reads instead of rebuilding the index) gives the
    same mentions, names and types; the rows may come back in any order (a store does not keep it)."""
    texts = ["space opera by Christopher Nolan", "sci-fi drama", "BEYONCE and Beyoncé", "toy story",
             "这款手机电池续航能力强，拍照效果好", "Drama in space", "the up", ""]
    built = EntityLinker(entities)
    keys = built.key_table()
    assert {"key", "units", "entity_id", "method", "entity_type", "name", "position"} <= set(keys.columns)
    read = EntityLinker.from_key_table(keys.sample(frac=1.0, random_state=0))  # shuffled, as storage may return it
    for text in texts:
        assert read.mention_rows(read.link(text)) == built.mention_rows(built.link(text)), text
    assert any(read.link(t) for t in texts)  # the comparison is not between two empty linkers
    reordered = EntityLinker.from_key_table(keys.assign(position=keys["position"].to_numpy()[::-1]))
    assert _links(reordered, "Drama") != _links(built, "Drama")  # the stored match order is what orders ties
