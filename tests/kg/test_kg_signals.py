import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reclm_dagster.kg.signals import KGScorer, kg_scores, mentions_matrix, user_entity_affinity

# 3 items x 3 entities: I0 {e0, e1}, I1 {e1}, I2 {e2}
E = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=float))
IDF = np.array([1.0, 0.5, 2.0])


def test_affinity_hand_computed():
    X = sp.csr_matrix(np.array([[5.0, 0, 0], [1.0, 1.0, 0], [0, 0, 0]]))
    A = user_entity_affinity(X, E, IDF).toarray()
    # u0: only I0 -> (1, 1, 0) * idf = (1, .5, 0) / |.| ; play count 5 counts once (binary)
    np.testing.assert_allclose(A[0], np.array([1, 0.5, 0]) / np.sqrt(1.25))
    # u1: I0, I1 -> shares (.5, 1, 0) * idf = (.5, .5, 0) -> unit
    np.testing.assert_allclose(A[1], np.array([1, 1, 0]) / np.sqrt(2))
    assert not A[2].any()  # nothing to go on: zero row, no NaN


def test_mentions_add_to_the_profile():
    X = sp.csr_matrix(np.array([[1.0, 0, 0]]))
    M = sp.csr_matrix(np.array([[0, 0, 3.0]]))
    A = user_entity_affinity(X, E, IDF, M, mention_weight=1.0).toarray()[0]
    # item shares: the one item I0 has e0 and e1 -> (1, 1, 0); mention shares (L1) -> (0, 0, 1)
    raw = (np.array([1.0, 1.0, 0]) + np.array([0, 0, 1.0])) * IDF
    np.testing.assert_allclose(A, raw / np.linalg.norm(raw))
    with pytest.raises(ValueError):
        user_entity_affinity(X, E, IDF, sp.csr_matrix((2, 3)))


def test_kg_scores_is_cosine_of_profiles():
    X = sp.csr_matrix(np.array([[0, 1.0, 0], [0, 0, 1.0]]))
    S = kg_scores([1, 0], X, E, IDF)
    assert S.shape == (2, 3) and S.dtype == np.float32
    # user 1 liked I2 ({e2}): only I2 matches
    np.testing.assert_allclose(S[0], [0, 0, 1], atol=1e-6)
    # user 0 liked I1 ({e1}): I0 = (1, .5, 0)/|.| -> cos = .5/sqrt(1.25); I1 -> 1
    np.testing.assert_allclose(S[1], [0.5 / np.sqrt(1.25), 1, 0], atol=1e-6)


def test_scorer_matches_function_and_batches():
    rng = np.random.default_rng(0)
    X = sp.random(20, 3, density=0.4, random_state=1, format="csr")
    scorer = KGScorer(E, IDF).fit(X)
    rows = np.array([3, 7, 11])
    np.testing.assert_allclose(scorer.score(rows, X), kg_scores(rows, X, E, IDF), atol=1e-6)
    assert rng is not None


def test_mentions_matrix_alignment():
    m = pd.DataFrame({"user_id": ["b", "a", "a", "z"], "entity_id": ["e1", "e0", "e0", "e0"]})
    M = mentions_matrix(m, ["a", "b"], ["e0", "e1", "e2"]).toarray()
    np.testing.assert_array_equal(M, [[2, 0, 0], [0, 1, 0]])


def test_kg_scores_on_a_real_graph(items, facts):
    from reclm_dagster.kg.build import build_knowledge_graph
    from reclm_dagster.kg.similarity import entity_idf, item_entity_matrix

    kg = build_knowledge_graph(items, facts)
    ids = list(items["item_id"])
    m, _ = item_entity_matrix(kg, ids)
    X = sp.csr_matrix(([1.0], ([0], [ids.index("V1")])), shape=(1, len(ids)))
    s = kg_scores([0], X, m, entity_idf(m))[0]
    # After Inception: Interstellar (same director + genre) beats The Matrix (genre only); phones score 0.
    assert s[ids.index("V2")] > s[ids.index("V3")] > 0
    assert s[ids.index("P1")] == 0
