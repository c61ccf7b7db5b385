"""One scorer of free-text requests (models/query.py), used by serving and by the query evaluation."""

import ast
from pathlib import Path

import numpy as np
import pytest

from reclm_dagster.models import hybrid
from reclm_dagster.models.fusion import linear_fusion, ordinal_ranks, reciprocal_rank_fusion
from reclm_dagster.models.query import QueryScorer, fuse, query_vectors
from reclm_dagster.text.bm25 import BM25
from reclm_dagster.text.normalize import segment

PACKAGE = Path(__file__).resolve().parents[2] / "reclm_dagster"
ITEM_TEXTS = ["space robots adventure", "slow romance in paris", "dreamy female vocals", "robots in love"]


class UnitEncoder:
    """Deterministic unit rows from character counts; an optional query encoder with its own version."""

    version, dim = "unit@1", 8

    def __init__(self, query=False):
        self.calls = []
        self.query_encoder = UnitEncoder() if query else None

    def encode(self, texts, progress=False, desc=""):
        self.calls.append(list(texts))
        rows = np.array([[t.count(c) + 0.1 for c in "aeiorstn"] for t in texts], np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def scorer():
    enc = UnitEncoder()
    return QueryScorer.fit(enc.encode(ITEM_TEXTS), [segment(t) for t in ITEM_TEXTS])


def test_signals_are_cosine_and_bm25(scorer):
    queries = ["robots", "romance in paris"]
    enc = UnitEncoder(query=True)
    signals = scorer.score(queries, enc)
    assert set(signals) == {"text", "lexical"}
    assert np.allclose(signals["text"], enc.query_encoder.encode(queries) @ scorer.item_vectors.T)
    assert enc.calls == []  # requests go through the query encoder
    expected = BM25().fit([segment(t) for t in ITEM_TEXTS]).score([segment(q) for q in queries])
    assert np.array_equal(signals["lexical"], expected)
    assert signals["lexical"][0].argmax() in (0, 3) and signals["lexical"][1].argmax() == 1
    unread = scorer.score(queries, UnitEncoder(), readable=[False, True])
    assert (unread["text"][0] == 0).all() and (unread["text"][1] != 0).any()
    assert set(scorer.score(queries)) == {"lexical"}  # no encoder: words only


def test_query_vectors_encode_each_distinct_request_once():
    enc = UnitEncoder(query=True)
    vectors = query_vectors(enc, ["b", "a", "b"])
    assert sorted(enc.query_encoder.calls[0]) == ["a", "b"] and np.array_equal(vectors[0], vectors[2])


def test_fuse_is_the_hybrids_fusion(scorer):
    signals = scorer.score(["robots", "dreamy vocals"], UnitEncoder())
    weights = {"text": 1.0, "lexical": 0.5}
    assert np.array_equal(fuse(signals, weights), linear_fusion(signals, weights, norm="zscore"))
    mask = np.array([[True, False, False, False], [False, False, False, False]])
    masked = fuse(signals, weights, mask=mask, dtype=np.float64, min_std=1e-12)
    assert masked[0, 0] == -np.inf and masked.dtype == np.float64
    # statistics over the items left in: the same as fusing those items alone
    alone = linear_fusion({k: v[:1, 1:] for k, v in signals.items()}, weights, dtype=np.float64)
    assert np.allclose(masked[0, 1:], alone[0])
    order = np.array([3, 2, 1, 0])
    rrf = fuse(signals, weights, method="rrf", tie_order=order)
    assert np.array_equal(rrf, reciprocal_rank_fusion(signals, k=60, weights=weights, tie_order=order))
    with pytest.raises(ValueError):
        fuse(signals, weights, method="max")


def test_ordinal_ranks_break_ties_by_the_given_order():
    S = np.array([[0.5, 0.9, 0.5, 0.1]])
    assert ordinal_ranks(S).tolist() == [[1, 0, 2, 3]]
    assert ordinal_ranks(S, tie_order=np.array([2, 1, 0, 3])).tolist() == [[2, 0, 1, 3]]


def test_no_other_query_scorer_left():
    """Serving and the evaluation score requests with QueryScorer; the hybrid's unused copy is gone
    and no module keeps its own z-score or RRF helper."""
    assert not hasattr(hybrid.HybridRecommender, "score_query")
    for name in ("serving.py", "evaluation/queries.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert "QueryScorer" in imported, name
        assert not defined & {"zscore", "rrf", "_ranks", "_unique_encode", "query_vectors"}, name
        assert "BM25" not in imported, name
