import numpy as np
import scipy.sparse as sp

from reclm_dagster.models.neighbors import Popularity
from reclm_dagster.models.ranking import recommend_batches, topk


def test_topk_orders_and_excludes_consumed():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0]]))
    idx, vals = topk(scores, 2, exclude=exclude)
    # row 0: item 1 consumed -> 3 (0.7), 2 (0.5); row 1: item 0 consumed -> 2, 1
    assert idx.tolist() == [[3, 2], [2, 1]]
    np.testing.assert_allclose(vals, [[0.7, 0.5], [2.0, 1.0]])
    assert scores[0, 1] == np.float32(0.9)  # input untouched by default


def test_topk_pads_with_minus_one_and_breaks_ties_by_index():
    scores = np.array([[1.0, 1.0, 1.0]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[0, 1, 0]]))
    idx, vals = topk(scores, 5, exclude=exclude)  # k > n_items is clipped
    assert idx.tolist() == [[0, 2, -1]]
    assert np.isneginf(vals[0, 2])


def test_recommend_batches_matches_single_pass():
    rng = np.random.default_rng(1)
    X = sp.csr_matrix((rng.random((7, 6)) > 0.6).astype(np.float32))
    model = Popularity().fit(X)
    rows = np.array([6, 0, 3, 5, 1])
    got = list(recommend_batches(model, X, rows, k=3, batch_size=2))
    assert [len(b[0]) for b in got] == [2, 2, 1]
    idx = np.vstack([b[1] for b in got])
    ref, _ = topk(model.score(rows, X), 3, exclude=X[rows])
    np.testing.assert_array_equal(idx, ref)
    # nothing the user already has is recommended
    for r, top in zip(rows, idx):
        assert not set(top[top >= 0]) & set(X[r].indices)
