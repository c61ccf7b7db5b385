"""MMR in the evaluation: it changes the order towards unlike items and only within the candidates."""

import numpy as np
import scipy.sparse as sp

from reclm_dagster.evaluation.diversity import list_diversity, mmr_scorer


def test_mmr_pushes_an_unlike_item_up_and_raises_list_diversity():
    # items 0,1,2 share entity A; item 3 has entity B. Scores prefer 0 > 1 > 2 > 3.
    E = sp.csr_matrix(np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32))
    scores = np.array([[4.0, 3.0, 2.0, 1.0]], np.float32)
    history = sp.csr_matrix((1, 4), dtype=np.float32)
    plain = lambda rows: scores[rows]
    mmr = mmr_scorer(plain, history, E, lambda_=0.5, n_candidates=4, k=4)
    order = np.argsort(-mmr(np.array([0]))[0])
    assert order[0] == 0 and order[1] == 3  # the different item comes second
    users = np.array([0])
    assert list_diversity({"mmr": mmr, "plain": plain}, users, history, E, k=2) == {"mmr": 1.0, "plain": 0.0}
    # lambda 1 keeps the relevance order
    same = mmr_scorer(plain, history, E, lambda_=1.0, n_candidates=4, k=4)
    assert list(np.argsort(-same(np.array([0]))[0])) == [0, 1, 2, 3]


def test_mmr_never_puts_a_consumed_item_in_the_list():
    E = sp.csr_matrix(np.eye(5, dtype=np.float32))
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)
    history = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], np.float32))
    mmr = mmr_scorer(lambda rows: scores[rows], history, E, lambda_=0.5, n_candidates=3, k=3)
    out = mmr(np.array([0]))[0]
    top = set(np.argsort(-out)[:4])
    assert top == {0, 1, 2, 3}  # 0 keeps its (excluded at ranking time) score; MMR picked 1, 2, 3
    assert out[[1, 2, 3]].min() > out[0]
