import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.evaluation.protocol import evaluate

L3 = np.log2(3)


def _csr(rows, n_users=3, n_items=5):
    r, c = zip(*[(u, i) for u, items in rows.items() for i in items])
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n_items))


TRAIN = _csr({0: [0, 1], 1: [2], 2: [0]})
# u2's item 0 is also in train: it must never count as a hit; u1 has no test item
TEST = _csr({0: [2, 4], 2: [0, 3]})
GLOBAL = np.array([5.0, 4.0, 3.0, 2.0, 1.0], dtype=np.float32)  # same scores for every user


def _score_fn(calls):
    def fn(rows):
        calls.append(np.array(rows))
        return np.tile(GLOBAL, (len(rows), 1))

    return fn


def test_evaluate_hand_computed_and_train_never_counted():
    calls = []
    res = evaluate(_score_fn(calls), TRAIN, TEST, TRAIN, ks=(2, 5), cold_items=np.array([0, 0, 0, 0, 1], bool))
    assert res["n_users"] == 2  # u1 has no test item
    assert sorted(np.concatenate(calls).tolist()) == [0, 2]
    # u0 ranks [2,3,4] (0,1 excluded), rel {2,4}: hits at 1 and 3
    #   NDCG@5 = (1 + 1/log2 4) / (1 + 1/log2 3) ; NDCG@2 = 1 / (1 + 1/log2 3)
    # u2 ranks [1,2,3,4], rel {3} (item 0 dropped: in train): hit at 3
    #   NDCG@5 = (1/log2 4) / 1 = .5 ; NDCG@2 = 0
    u0_5 = 1.5 / (1 + 1 / L3)
    assert res["ndcg@5"] == pytest.approx((u0_5 + 0.5) / 2)
    assert res["ndcg@2"] == pytest.approx((1 / (1 + 1 / L3)) / 2)
    assert res["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert res["recall@5"] == pytest.approx(1.0)
    assert res["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert res["mrr@5"] == pytest.approx((1 + 1 / 3) / 2)
    assert res["hit@2"] == pytest.approx(0.5)
    # top-2 lists {2,3} and {1,2} cover 3 of 5 items
    assert res["coverage@2"] == pytest.approx(0.6)
    # train pop [2,1,1,0,0] of 3 users: items 1..4 all carry log2(3) bits (pop 0 clipped to 1)
    assert res["novelty@2"] == pytest.approx(L3)
    # head = ceil(10% of 5) = 1 item = item 0, never recommended (always consumed)
    assert res["popularity_bias@2"] == 0.0
    cold = res["cold"]
    # cold item 4: only u0 has it, at rank 3
    assert cold["n_users"] == 1 and cold["n_items"] == 1
    assert cold["recall@2"] == 0.0 and cold["recall@5"] == 1.0
    assert cold["ndcg@5"] == pytest.approx(0.5)


def test_evaluate_without_exclusion_counts_repeat_items_and_batches_agree():
    res = evaluate(_score_fn([]), TRAIN, TEST, None, ks=(1,))
    # no exclusion: u2 gets item 0 first and it is relevant; u0 gets item 0 (not relevant)
    assert res["hit@1"] == pytest.approx(0.5)
    a = evaluate(_score_fn([]), TRAIN, TEST, TRAIN, ks=(2, 5), batch_size=1)
    b = evaluate(_score_fn([]), TRAIN, TEST, TRAIN, ks=(2, 5), batch_size=512)
    assert a == b


def test_evaluate_rejects_wrong_score_shape():
    with pytest.raises(ValueError):
        evaluate(lambda rows: np.zeros((len(rows), 4)), TRAIN, TEST, TRAIN, ks=(2,))


def test_evaluate_many_equals_one_evaluate_per_scorer_even_when_scorers_share_arrays():
    """One pass over the user batches for several scorers gives each exactly ``evaluate``'s result;
    a scorer handing out an array another scorer reads again is not masked in place under it."""
    import scipy.sparse as sp

    from reclm_dagster.evaluation.protocol import evaluate, evaluate_many

    rng = np.random.default_rng(4)
    X_train = sp.csr_matrix((rng.random((40, 30)) < 0.2).astype(np.float32))
    X_test = sp.csr_matrix(((rng.random((40, 30)) < 0.2) & (X_train.toarray() == 0)).astype(np.float32))
    A, B = rng.normal(size=(40, 30)).astype(np.float32), rng.normal(size=(40, 30)).astype(np.float32)
    shared = {}

    def raw(rows):  # the same array for every call on a batch, as a per-batch cache returns it
        return shared.setdefault(rows.tobytes(), A[rows])

    from reclm_dagster.models.fusion import zscore_rows

    fns = {"a": raw, "a+b": lambda rows: zscore_rows(raw(rows)) + B[rows], "b": lambda rows: B[rows]}
    together = evaluate_many(fns, X_train, X_test, X_train, ks=(5, 10), batch_size=16, cold_items=X_train.sum(0).A1 <= 8)
    for name, fn in {"a": lambda r: A[r], "a+b": lambda r: zscore_rows(A[r]) + B[r], "b": lambda r: B[r]}.items():
        alone = evaluate(fn, X_train, X_test, X_train, ks=(5, 10), batch_size=16, cold_items=X_train.sum(0).A1 <= 8)
        assert together[name] == alone and alone["cold"]["n_users"] > 0
    assert together["a"] != together["b"]
