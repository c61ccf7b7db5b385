import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.evaluation import metrics as M

# user 0: hits at ranks 2 and 4, |rel| = 3 (item 9 never recommended)
# user 1: hit at rank 1, |rel| = 1
# user 2: no hits; -1 pads a position with no admissible item
RANKED = np.array([[3, 1, 7, 5, 2], [0, 4, 6, 8, 2], [1, 2, 3, 4, -1]])
RELEVANT = [{1, 5, 9}, {0}, {9, 8}]
L3, L5 = np.log2(3), np.log2(5)


def test_precision_recall_f1():
    # P@5: 2/5, 1/5, 0 ; R@5: 2/3, 1/1, 0
    np.testing.assert_allclose(M.precision_at_k(RANKED, RELEVANT, 5, per_user=True), [0.4, 0.2, 0.0])
    np.testing.assert_allclose(M.recall_at_k(RANKED, RELEVANT, 5, per_user=True), [2 / 3, 1.0, 0.0])
    # F1 user0 = 2*.4*(2/3)/(.4+2/3) = .5 ; user1 = 2*.2*1/1.2 = 1/3
    np.testing.assert_allclose(M.f1_at_k(RANKED, RELEVANT, 5, per_user=True), [0.5, 1 / 3, 0.0])
    assert M.precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(0.2)
    # k=2: user0 top-2 = [3, 1] -> P = 1/2, R = 1/3
    assert M.precision_at_k(RANKED[:1], RELEVANT[:1], 2) == pytest.approx(0.5)
    assert M.recall_at_k(RANKED[:1], RELEVANT[:1], 2) == pytest.approx(1 / 3)


def test_ndcg():
    # user0: DCG = 1/log2(3) + 1/log2(5); IDCG over min(3,5)=3: 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / L3 + 1 / L5
    idcg = 1 + 1 / L3 + 0.5
    np.testing.assert_allclose(
        M.ndcg_at_k(RANKED, RELEVANT, 5, per_user=True), [dcg / idcg, 1.0, 0.0], rtol=1e-12
    )
    # k=2: DCG = 1/log2(3); IDCG over min(3,2)=2 = 1 + 1/log2(3)
    assert M.ndcg_at_k(RANKED[:1], RELEVANT[:1], 2) == pytest.approx((1 / L3) / (1 + 1 / L3))


def test_map_hit_mrr():
    # AP@5 user0: (P@2 + P@4) / min(3,5) = (1/2 + 2/4) / 3 = 1/3 ; user1: 1/1
    np.testing.assert_allclose(M.average_precision_at_k(RANKED, RELEVANT, 5, per_user=True), [1 / 3, 1.0, 0.0])
    # AP@2 user0: (1/2) / min(3,2) = 1/4
    assert M.map_at_k(RANKED[:1], RELEVANT[:1], 2) == pytest.approx(0.25)
    np.testing.assert_allclose(M.hit_rate_at_k(RANKED, RELEVANT, 5, per_user=True), [1, 1, 0])
    np.testing.assert_allclose(M.mrr_at_k(RANKED, RELEVANT, 5, per_user=True), [0.5, 1.0, 0.0])
    # MRR@1: only user1 has its first hit at rank 1
    assert M.mrr_at_k(RANKED, RELEVANT, 1) == pytest.approx(1 / 3)


def test_sparse_relevant_equals_sets_and_short_lists():
    R = sp.csr_matrix((np.ones(6), ([0, 0, 0, 1, 2, 2], [1, 5, 9, 0, 9, 8])), shape=(3, 10))
    for fn in (M.ndcg_at_k, M.recall_at_k, M.average_precision_at_k):
        np.testing.assert_allclose(
            fn(RANKED, R, 5, per_user=True), fn(RANKED, RELEVANT, 5, per_user=True)
        )
    # a list shorter than k counts missing ranks as misses: P@5 = 1/5
    assert M.precision_at_k(np.array([[0]]), [{0}], 5) == pytest.approx(0.2)


def test_coverage_novelty_popularity_bias():
    ranked = np.array([[0, 1, 2], [1, 2, 3]])
    assert M.catalog_coverage(ranked, n_items=10, k=2) == pytest.approx(0.3)  # {0,1,2}
    assert M.catalog_coverage(ranked, n_items=10, k=3) == pytest.approx(0.4)  # {0,1,2,3}
    # pop [8,4,2,1,0] of 8 users -> info [0,1,2,3,3]: pop 0 is clipped to 1
    pop = np.array([8, 4, 2, 1, 0])
    # user0 (0+1)/2 = .5 ; user1 (2+3)/2 = 2.5 ; mean 1.5
    assert M.novelty(np.array([[0, 1], [2, 4]]), pop, n_users=8, k=2) == pytest.approx(1.5)
    # 20 items, pop = index -> head (10%) = items {19, 18}
    pop20 = np.arange(20)
    assert M.head_items(pop20).nonzero()[0].tolist() == [18, 19]
    r = np.array([[19, 0, 18, 5], [1, 2, 3, 4]])
    np.testing.assert_allclose(M.popularity_bias(r, pop20, k=4, per_user=True), [0.5, 0.0])
