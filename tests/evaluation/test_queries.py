"""Query-retrieval evaluation: split without leakage, filtered full ranking, hand-computed
metrics, fusion weight tuned on validation queries only, and a slice of the real datasets."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pytest

from reclm_dagster.encoders.cache import CachedEncoder
from reclm_dagster.evaluation import queries as Q
from reclm_dagster.models.fusion import zscore_rows
from reclm_dagster.models.query import query_vectors
from reclm_dagster.text.normalize import normalize, segment


class CharEncoder:
    """Deterministic toy encoder: hashed bag of tokens (segment()), unit-norm."""

    version = "char-encoder@test"
    name = "char-encoder"
    dim = 64

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, progress=False, desc=""):
        texts = list(texts)
        self.calls.append(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            for tok in segment(t) or [t]:
                out[r, int(hashlib.md5(tok.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def make_items(n: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    titles = ["Time Machine", "Space Robots", "Love in Paris", "Dark Knight", "穿越时空", "功夫熊猫", "Ocean Deep", "Desert Storm"]
    items = pd.DataFrame({
        "item_id": [f"i{j}" for j in range(n)],
        "title": titles[:n],
        "description": ["" for _ in range(n)],
        "domain": "video", "language": "en",
    })
    facts = pd.DataFrame({"item_id": ["i0", "i1"], "relation": ["has_genre", "tagged_as"],
                          "entity": ["Sci-Fi", "secret user tag"]})
    return items, facts


def make_descriptions() -> pd.DataFrame:
    rows = [
        # the same pair from three users: must stay on one side of the split together
        ("d1", "u1", "i0", "time travel"), ("d2", "u2", "i0", "Time  Travel"), ("d3", "u3", "i0", "time travel"),
        ("d4", "u1", "i1", "robots in space"), ("d5", "u2", "i1", "funny"), ("d6", "u3", "i2", "funny"),
        ("d7", "u1", "i2", "romantic paris"), ("d8", "u4", "i3", "batman gotham"), ("d9", "u4", "i4", "时间旅行的爱情故事"),
        ("d10", "u5", "i5", "熊猫学功夫很好笑"), ("d11", "u5", "i6", "whales and sharks"), ("d12", "u6", "i7", "sand war"),
        ("d13", "u6", "i3", "joker villain"), ("d14", "u7", "i4", "穿越"), ("d15", "u7", "i5", "动画片"),
        ("d16", "u8", "i6", "underwater"), ("d17", "u8", "i7", "desert tanks"), ("d18", "u9", "i1", "android"),
        ("d19", "u9", "i0", "h.g. wells"), ("d20", "u9", None, "a request with no item"),
    ]
    return pd.DataFrame(rows, columns=["description_id", "user_id", "item_id", "text"]).assign(kind="tag")


# ----- split and leakage ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_held_out_descriptions_never_reach_item_text(seed):
    items, facts = make_items()
    desc = make_descriptions()
    split = Q.split_queries(desc, test_fraction=0.3, valid_fraction=0.2, seed=seed)
    held = split.held_out_ids
    assert held and held.isdisjoint(set(split.remaining["description_id"]))
    corpus = Q.item_corpus(items, facts, split.remaining)
    docs = dict(zip(corpus.item_ids, corpus.documents()))
    held_texts = {normalize(t) for t in desc[desc["description_id"].isin(held)]["text"]}
    for doc in docs.values():
        # texts are unique per item here, so a held-out text is in no item's document at all
        assert not any(t in normalize(doc).split("\n") for t in held_texts)
    for _, q in pd.concat([split.test, split.valid]).iterrows():
        assert q["norm"] not in [normalize(x) for x in docs[q["item_id"]].split("\n")]
    # The three rows of (i0, "time travel") are always on the same side.
    tt = {"d1", "d2", "d3"}
    assert tt <= held or tt.isdisjoint(held)
    # user-derived catalogue facts (tagged_as) never reach the item side either
    assert not any("secret user tag" in d for d in docs.values())
    # descriptions without an item are never queries
    assert "d20" not in held


def test_split_is_seeded_disjoint_and_one_query_per_pair():
    desc = make_descriptions()
    a = Q.split_queries(desc, 0.3, 0.2, seed=1)
    b = Q.split_queries(desc, 0.3, 0.2, seed=1)
    c = Q.split_queries(desc, 0.3, 0.2, seed=2)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert list(a.test["description_ids"]) != list(c.test["description_ids"]) or list(a.valid["description_ids"]) != list(c.valid["description_ids"])
    pairs = set(zip(a.test["item_id"], a.test["norm"])) | set(zip(a.valid["item_id"], a.valid["norm"]))
    assert len(pairs) == len(a.test) + len(a.valid)  # deduplicated, and test ∩ valid = ∅
    n_pairs = 18  # 19 item-bound rows, (i0, "time travel") three times -> 17 + ... counted below
    n_pairs = desc.dropna(subset=["item_id"]).assign(n=desc["text"].map(normalize)).drop_duplicates(["item_id", "n"]).shape[0]
    assert len(a.test) == round(0.3 * n_pairs) and len(a.valid) == round(0.2 * n_pairs)
    assert a.known_items["funny"] == frozenset({"i1", "i2"})


def test_max_test_is_a_prefix_and_keeps_the_item_side():
    desc = make_descriptions()
    full = Q.split_queries(desc, 0.3, 0.2, seed=0)
    capped = Q.split_queries(desc, 0.3, 0.2, seed=0, max_test=2)
    assert list(capped.test["description_ids"]) == list(full.test["description_ids"])[:2]
    pd.testing.assert_frame_equal(capped.remaining, full.remaining)


# ----- metrics and ranking, by hand -----------------------------------------------------------
def test_retrieval_metrics_hand_computed():
    ranked = np.array([[2, 0, 1, 3], [1, 2, 3, 0], [0, 1, 2, 3]])
    targets = np.array([0, 0, 0])  # ranks 2, 4, 1
    m = Q.retrieval_metrics(ranked, targets, k=2)
    assert m["recall@2"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 4 + 1) / 3)
    m3 = Q.retrieval_metrics(ranked, targets, k=3)
    assert m3["recall@3"] == pytest.approx(2 / 3)


def test_filtered_items_leave_the_ranking_and_ties_follow_the_permutation():
    scores = np.array([[0.9, 0.5, 0.8, 0.1]])
    mask = np.array([[True, False, False, False]])  # item 0 carries the same text: removed
    ranked = Q.rank_items(scores, mask, tie_order=np.arange(4))
    assert ranked.tolist() == [[2, 1, 3, -1]]
    m = Q.retrieval_metrics(ranked, np.array([1]), k=10)
    assert m["mrr"] == pytest.approx(1 / 2)
    # all-tied scores: the order is the tie permutation, not the item index order
    flat = Q.rank_items(np.zeros((1, 4)), np.zeros((1, 4), bool), tie_order=np.array([3, 1, 0, 2]))
    assert flat.tolist() == [[3, 1, 0, 2]]


def test_filter_mask_removes_other_items_with_the_same_text_only():
    items, facts = make_items()
    desc = make_descriptions()
    split = Q.split_queries(desc, 0.3, 0.2, seed=0)
    corpus = Q.item_corpus(items, facts, split.remaining)
    queries = pd.DataFrame({"norm": ["funny", "funny", "sand war"], "item_id": ["i1", "i2", "i7"]})
    mask = Q.filter_mask(queries, corpus, split.known_items)
    idx = corpus.index
    assert mask[0, idx["i2"]] and not mask[0, idx["i1"]]
    assert mask[1, idx["i1"]] and not mask[1, idx["i2"]]
    assert not mask[2].any()


def test_zscore_hand_computed_and_constant_rows():
    """The evaluation's z-scores are the hybrid's (models/fusion.py), in float64."""
    z = zscore_rows(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]), min_std=Q.EVAL_MIN_STD, dtype=Q.EVAL_DTYPE)
    assert z[0] == pytest.approx([-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    assert z[1].tolist() == [0.0, 0.0, 0.0]
    # masked items do not enter the statistics (and leave the fused ranking)
    enc, lex = np.array([[1.0, 3.0, 100.0]]), np.array([[3.0, 1.0, 100.0]])
    fused = Q.fuse(enc, lex, 0.75, "zscore", np.array([[False, False, True]]), np.arange(3))
    assert fused[0, :2] == pytest.approx([0.75 * -1.0 + 0.25 * 1.0, 0.75 * 1.0 + 0.25 * -1.0])
    assert fused[0, 2] == -np.inf and fused.dtype == np.float64


def test_rrf_hand_computed():
    a = np.array([[3.0, 2.0, 1.0]])
    b = np.array([[1.0, 2.0, 3.0]])
    fused = Q.fuse(a, b, 0.5, "rrf", np.zeros((1, 3), bool), tie_order=np.arange(3))
    expected = [0.5 / 61 + 0.5 / 63, 0.5 / 62 + 0.5 / 62, 0.5 / 63 + 0.5 / 61]
    assert fused[0] == pytest.approx(expected)
    # ties: ordinal ranks in the seeded tie order, not shared average ranks
    tied = Q.fuse(np.zeros((1, 3)), np.zeros((1, 3)), 1.0, "rrf", np.zeros((1, 3), bool), tie_order=np.array([2, 0, 1]))
    assert tied[0] == pytest.approx([1 / 62, 1 / 63, 1 / 61])


# ----- models ---------------------------------------------------------------------------------
def test_bm25_uses_jieba_tokens_for_chinese_queries():
    items, facts = make_items()
    corpus = Q.item_corpus(items, facts, make_descriptions().iloc[[8, 9]])  # the two Chinese comments
    scores = Q.bm25_scores(corpus, ["功夫熊猫好笑", "时间旅行"])
    idx = corpus.index
    assert scores[0].argmax() == idx["i5"]
    assert scores[1].argmax() == idx["i4"]


def test_item_vectors_are_unit_mean_of_parts_and_queries_use_query_encoder():
    items, facts = make_items(3)
    rem = pd.DataFrame({"description_id": ["a"], "user_id": ["u"], "item_id": ["i0"], "text": ["time travel"], "kind": "tag"})
    corpus = Q.item_corpus(items, facts, rem)
    enc = CharEncoder()
    vec = Q.item_vectors(corpus, enc)
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    parts = enc.encode([corpus.part_texts[0], "time travel"])
    expected = parts.mean(axis=0) / np.linalg.norm(parts.mean(axis=0))
    assert vec[0] == pytest.approx(expected, abs=1e-5)

    class WithQuery(CharEncoder):
        def __init__(self):
            super().__init__()
            self.query_encoder = CharEncoder()

    wq = WithQuery()
    query_vectors(wq, ["x", "x", "y"])
    assert wq.calls == [] and sorted(wq.query_encoder.calls[0]) == ["x", "y"]  # deduplicated


def test_fusion_weight_is_tuned_on_validation_queries_only(monkeypatch):
    items, facts = make_items()
    desc = make_descriptions()
    seen = {}
    real = Q.tune_fusion_weight

    def spy(enc_valid, lex_valid, valid, *args, **kwargs):
        seen["valid"] = valid.copy()
        seen["shapes"] = (enc_valid.shape, lex_valid.shape)
        return real(enc_valid, lex_valid, valid, *args, **kwargs)

    monkeypatch.setattr(Q, "tune_fusion_weight", spy)
    split = Q.split_queries(desc, 0.3, 0.2, seed=3)
    result = Q.evaluate_query_retrieval("toy", items, facts, desc, CharEncoder(), split=split)
    assert list(seen["valid"]["query_id"]) == list(split.valid["query_id"])
    assert set(seen["valid"]["query_id"]).isdisjoint(set(split.test["query_id"]))
    assert seen["shapes"][0][0] == seen["shapes"][1][0] == len(split.valid)
    assert result.fusion_weight["zscore"] in Q.DEFAULT_WEIGHTS
    # The weight is the validation argmax: recomputing it from the curve agrees.
    curve = result.validation_curve["zscore"]
    assert result.fusion_weight["zscore"] == curve.loc[curve["mrr"].idxmax(), "w_encoder"]


def test_changing_test_queries_does_not_change_the_tuned_weight():
    items, facts = make_items()
    desc = make_descriptions()
    split = Q.split_queries(desc, 0.3, 0.2, seed=4)
    a = Q.evaluate_query_retrieval("toy", items, facts, desc, CharEncoder(), split=split)
    fewer = Q.QuerySplit(split.test.iloc[:1], split.valid, split.remaining, split.known_items)
    b = Q.evaluate_query_retrieval("toy", items, facts, desc, CharEncoder(), split=fewer)
    assert a.fusion_weight == b.fusion_weight


def test_tidy_table_and_perfect_models():
    items, facts = make_items()
    desc = make_descriptions()
    result = Q.evaluate_query_retrieval("toy", items, facts, desc, CharEncoder(), test_fraction=0.3,
                                        valid_fraction=0.2, seed=0, fusion=("zscore", "rrf"))
    t = result.table
    assert list(t.columns[:5]) == ["task", "model", "metric", "value", "n_queries"]
    assert set(t["model"]) == {"bm25", "encoder", "hybrid", "hybrid_rrf"}
    assert set(t["metric"]) == {"recall@10", "mrr"}
    assert t["value"].between(0, 1).all()
    # 8 items, k=10: with nothing filtered out of reach every target is in the top 10.
    assert (t.loc[t["metric"] == "recall@10", "value"] == 1.0).all()
    bm25_only = Q.evaluate_query_retrieval("toy", items, facts, desc, None, test_fraction=0.3, valid_fraction=0.2)
    assert set(bm25_only.table["model"]) == {"bm25"}


def test_cached_encoder_encodes_each_text_once():
    con = duckdb.connect(":memory:")
    inner = CharEncoder()
    enc = CachedEncoder(inner, con)  # the one cache class (encoders/cache.py)
    a = enc.encode(["alpha", "beta", "alpha"])
    b = enc.encode(["beta", "alpha"])
    assert sum(len(c) for c in inner.calls) == 2
    assert np.allclose(a[[1, 0]], b)
    assert enc.version == inner.version and enc.query_encoder is None


# ----- a slice of the real datasets -----------------------------------------------------------
@pytest.mark.parametrize("name", ["douban-moviedata-small", "ml-latest-small"])
def test_real_data_slice(shared_data_dir, name):
    from reclm_dagster.datasets import load_dataset

    if not (shared_data_dir / name).is_dir():
        pytest.skip(f"{name} not in {shared_data_dir}")
    ds = load_dataset(name, shared_data_dir)
    split = Q.split_queries(ds.descriptions, seed=0, max_test=60, max_valid=40)
    assert len(split.test) == 60 and len(split.valid) == 40
    assert split.held_out_ids.isdisjoint(set(split.remaining["description_id"].astype(str)))
    # No held-out text reaches its own item, through any user's identical description.
    rem = split.remaining.assign(norm=split.remaining["text"].map(normalize))
    own = set(zip(rem["item_id"].astype(str), rem["norm"]))
    assert not any((i, n) in own for i, n in zip(split.test["item_id"], split.test["norm"]))
    result = Q.evaluate_dataset(ds, CharEncoder(), split=split)
    t = result.table.set_index(["model", "metric"])["value"]
    assert t.between(0, 1).all() and (result.table["n_queries"] == 60).all()
    assert result.n_items == len(ds.items)
    if name.startswith("douban"):
        # Comments of the same film share names and plot words: BM25 finds many of them.
        assert t[("bm25", "recall@10")] > 0.3
