import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.kg.diversity import entity_similarity, intra_list_diversity, mmr_rerank

# items x entities: 0 {a,b}, 1 {a,b} (same as 0), 2 {a}, 3 {c}
M = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float))


def test_entity_similarity_hand_computed():
    S = entity_similarity(M, [0, 1, 2, 3])
    np.testing.assert_allclose(S[0], [1, 1, 1 / np.sqrt(2), 0])
    np.testing.assert_allclose(S[2, 3], 0)


def test_lambda_one_keeps_score_order():
    assert mmr_rerank([0, 1, 2, 3], [0.9, 0.8, 0.7, 0.1], M, lambda_=1.0, k=4) == [0, 1, 2, 3]


def test_mmr_hand_computed():
    # lambda .5: step 1 picks 0 (.45). Step 2 gains: 1: .4-.5*1=-.1, 2: .35-.5*.7071=-.0036,
    # 3: .05-0=.05 -> 3. Step 3: 1: -.1, 2: -.0036 -> 2. Then 1.
    out = mmr_rerank([0, 1, 2, 3], [0.9, 0.8, 0.7, 0.1], M, lambda_=0.5, k=4)
    assert out == [0, 3, 2, 1]
    assert mmr_rerank([0, 1, 2, 3], [0.9, 0.8, 0.7, 0.1], M, lambda_=0.5, k=2) == [0, 3]


def test_mmr_ties_and_edge_cases():
    # equal scores, nothing in common: candidate order decides
    assert mmr_rerank([3, 0], [0.5, 0.5], M, lambda_=0.5, k=2) == [3, 0]
    assert mmr_rerank([], [], M, k=3) == []
    assert mmr_rerank([0, 1], [1.0, 0.5], M, k=5) == [0, 1]  # k larger than the pool
    with pytest.raises(ValueError):
        mmr_rerank([0, 1], [1.0], M)
    with pytest.raises(ValueError):
        mmr_rerank([0], [1.0], M, lambda_=1.5)


def test_intra_list_diversity_hand_computed():
    assert intra_list_diversity([[0, 1]], M) == pytest.approx(0.0)
    assert intra_list_diversity([[0, 3]], M) == pytest.approx(1.0)
    # [0, 2, 3]: pairs (0,2) 1-.7071, (0,3) 1, (2,3) 1 -> mean
    expected = ((1 - 1 / np.sqrt(2)) + 1 + 1) / 3
    assert intra_list_diversity([[0, 2, 3]], M) == pytest.approx(expected)
    # mean over lists; single-item lists skipped
    assert intra_list_diversity([[0, 1], [0, 3], [2]], M) == pytest.approx(0.5)
    assert intra_list_diversity([[1]], M) == 0.0


def test_mmr_raises_diversity():
    cands, scores = [0, 1, 2, 3], [0.9, 0.8, 0.7, 0.1]
    plain = mmr_rerank(cands, scores, M, lambda_=1.0, k=2)
    diverse = mmr_rerank(cands, scores, M, lambda_=0.5, k=2)
    assert intra_list_diversity([diverse], M) > intra_list_diversity([plain], M)
