import numpy as np
import pandas as pd
import pytest

from reclm_dagster.models.matrix import InteractionMatrix, binarize, to_matrix


def _df():
    return pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u1", "u2", "u1"],
            "item_id": ["b", "a", "c", "b", "a"],
            "weight": [1.0, 2.0, 1.0, 3.0, 0.5],
        }
    )


def test_index_sorted_and_duplicates_summed():
    im = InteractionMatrix(_df())
    assert list(im.users) == ["u1", "u2"]
    assert list(im.items) == ["a", "b", "c"]
    assert im.user_index == {"u1": 0, "u2": 1}
    assert im.X.dtype == np.float32
    # u1-a appears twice: 2.0 + 0.5; u2-b: 1 + 3
    np.testing.assert_allclose(im.X.toarray(), [[2.5, 0, 1], [0, 4, 0]])


def test_explicit_index_and_unknown_ids_dropped():
    df = _df()
    test = pd.DataFrame({"user_id": ["u1", "u9", "u2"], "item_id": ["b", "a", "zz"]})
    im = InteractionMatrix(df, users=["u2", "u1", "u3"], items=["c", "b", "a"])
    assert im.shape == (3, 3)
    assert im.X[1, 2] == pytest.approx(2.5)  # u1 row 1, item a col 2
    X, dropped = im.align(test)
    assert dropped == 2  # u9 and item zz unknown
    assert X.shape == (3, 3)
    assert X.nnz == 1 and X[1, 1] == 1.0  # no weight column -> weight 1
    X2, d2 = to_matrix(test, im.users, im.items)
    assert d2 == 2 and (X2 != X).nnz == 0


def test_duplicate_index_rejected_and_binarize():
    with pytest.raises(ValueError):
        InteractionMatrix(_df(), users=["u1", "u1", "u2"])
    im = InteractionMatrix(_df())
    B = binarize(im.X)
    np.testing.assert_array_equal(B.toarray(), (im.X.toarray() > 0).astype(np.float32))
    assert im.item_popularity().tolist() == [1, 1, 1]
