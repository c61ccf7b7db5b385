import math

import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.text.bm25 import BM25

DOCS = [
    ["battery", "life", "battery"],  # d0, |d| = 3
    ["camera", "life"],  # d1, |d| = 2
    ["screen"],  # d2, |d| = 1
]


def test_bm25_matches_hand_computed_scores():
    # N = 3, avgdl = (3 + 2 + 1) / 3 = 2, k1 = 1.2, b = 0.75
    # idf(battery): df = 1 → log(1 + (3 - 1 + 0.5) / (1 + 0.5)) = log(8/3) ≈ 0.9808
    # idf(life):    df = 2 → log(1 + (3 - 2 + 0.5) / (2 + 0.5)) = log(1.6) ≈ 0.4700
    # d0: norm = 1.2 * (0.25 + 0.75 * 3/2) = 1.65
    #     battery tf=2: idf * 2 * 2.2 / (2 + 1.65) = log(8/3) * 4.4 / 3.65 ≈ 1.1824
    #     life    tf=1: idf * 1 * 2.2 / (1 + 1.65) = log(1.6) * 2.2 / 2.65 ≈ 0.3902
    #     total ≈ 1.5726
    # d1: norm = 1.2 * (0.25 + 0.75 * 2/2) = 1.2
    #     life tf=1: log(1.6) * 2.2 / 2.2 = log(1.6) ≈ 0.4700
    # d2: no query term → 0
    bm = BM25(k1=1.2, b=0.75).fit(DOCS)
    scores = bm.score([["battery", "life"]])
    expected = [
        math.log(8 / 3) * 4.4 / 3.65 + math.log(1.6) * 2.2 / 2.65,
        math.log(1.6),
        0.0,
    ]
    assert scores.dtype == np.float32
    assert scores.shape == (1, 3)
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bm.idf_[bm.vocabulary_["battery"]], math.log(8 / 3), rtol=1e-6)
    assert bm.avgdl_ == pytest.approx(2.0)


def test_bm25_several_queries_unknown_and_repeated_tokens():
    bm = BM25().fit(DOCS)
    single = bm.score([["camera"]])[0]
    scores = bm.score([["camera"], ["unknown", "camera"], ["camera", "camera"], [], ["nothing"]])
    assert scores.shape == (5, 3)
    np.testing.assert_allclose(scores[1], single)  # out-of-vocabulary tokens are ignored
    np.testing.assert_allclose(scores[2], 2 * single, rtol=1e-6)  # repeated query token counts twice
    assert not scores[3].any() and not scores[4].any()
    assert single.argmax() == 1


def test_bm25_sparse_scores_equal_dense():
    bm = BM25().fit(DOCS)
    queries = [["battery"], ["life", "screen"]]
    dense = bm.score(queries)
    sparse = bm.score_sparse(queries)
    assert sp.issparse(sparse)
    np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-6)


def test_bm25_length_normalisation_and_b_zero():
    docs = [["rock"], ["rock", "pop", "jazz", "folk"]]
    scores = BM25(b=0.75).fit(docs).score([["rock"]])[0]
    assert scores[0] > scores[1]  # the short document is more "about" rock
    flat = BM25(b=0.0).fit(docs).score([["rock"]])[0]
    assert flat[0] == pytest.approx(flat[1])  # b = 0 switches length normalisation off


def test_matched_terms():
    bm = BM25().fit(DOCS)
    assert bm.matched_terms(["battery", "screen", "life", "battery"], 0) == ["battery", "life"]
    assert bm.matched_terms(["battery", "screen"], 2) == ["screen"]
    assert bm.matched_terms(["unseen"], 1) == []
    with pytest.raises(IndexError):
        bm.matched_terms(["battery"], 3)


def test_vocabulary_and_unfitted_errors():
    with pytest.raises(RuntimeError):
        BM25().score([["x"]])
    bm = BM25().fit(DOCS)
    assert set(bm.vocabulary_) == {"battery", "life", "camera", "screen"}
    assert sorted(bm.vocabulary_.values()) == list(range(4))


def test_empty_corpus_edge_cases():
    bm = BM25().fit([[], []])
    assert bm.score([["a"]]).shape == (1, 2)
    assert BM25().fit([]).score([["a"]]).shape == (1, 0)
