import numpy as np
import pytest

from reclm_dagster.models.fusion import (
    linear_fusion,
    minmax_rows,
    reciprocal_rank_fusion,
    zscore_rows,
)

NEG = -np.inf


def test_zscore_and_minmax_hand_computed_with_excluded():
    S = np.array([[1.0, 2.0, 3.0, NEG], [5.0, 5.0, 5.0, 5.0]])
    Z = zscore_rows(S)
    # row 0 over finite {1,2,3}: mean 2, population std sqrt(2/3)
    np.testing.assert_allclose(Z[0, :3], np.array([-1, 0, 1]) / np.sqrt(2 / 3), rtol=1e-6)
    assert np.isneginf(Z[0, 3])
    np.testing.assert_array_equal(Z[1], 0.0)  # constant row -> 0, not NaN
    M = minmax_rows(S)
    np.testing.assert_allclose(M[0, :3], [0.0, 0.5, 1.0])
    assert np.isneginf(M[0, 3])
    np.testing.assert_array_equal(M[1], 0.0)
    assert not np.isnan(minmax_rows(np.full((1, 3), NEG))).any()


def test_zscore_of_all_finite_rows_hand_computed_and_equal_to_the_masked_path():
    S = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    Z = zscore_rows(S)  # all finite: the unmasked path
    np.testing.assert_allclose(Z[0], np.array([-1, 0, 1]) / np.sqrt(2 / 3), rtol=1e-6)
    np.testing.assert_array_equal(Z[1], 0.0)
    np.testing.assert_array_equal(zscore_rows(S, min_std=0.9)[0], 0.0)  # std 0.816 <= 0.9: flat
    rng = np.random.default_rng(0)
    R = rng.normal(2, 3, (6, 50))
    with_excluded = np.hstack([R, np.full((6, 1), NEG)])  # forces the masked path, same finite values
    np.testing.assert_array_equal(zscore_rows(R), zscore_rows(with_excluded)[:, :50])


def test_linear_fusion_weights_and_exclusion():
    a = np.array([[0.0, 1.0, 2.0]])
    b = np.array([[10.0, 30.0, 20.0]])
    out = linear_fusion({"a": a, "b": b}, {"a": 1.0, "b": 2.0}, norm="minmax")
    # minmax: a -> [0, .5, 1], b -> [0, 1, .5]; 1*a + 2*b = [0, 2.5, 2]
    np.testing.assert_allclose(out, [[0.0, 2.5, 2.0]])
    b[0, 2] = NEG
    out = linear_fusion({"a": a, "b": b}, {"a": 1.0, "b": 2.0}, norm="minmax")
    assert np.isneginf(out[0, 2]) and np.isfinite(out[0, :2]).all()
    with pytest.raises(KeyError):
        linear_fusion({"a": a}, {"zzz": 1.0})
    with pytest.raises(ValueError):
        linear_fusion({"a": a, "b": np.zeros((2, 3))})


def test_linear_fusion_constant_source_does_not_change_ranking():
    a = np.array([[0.3, 0.1, 0.2]])
    const = np.full((1, 3), 7.0)
    out = linear_fusion({"a": a, "c": const})
    assert not np.isnan(out).any()
    assert np.argsort(-out[0]).tolist() == [0, 2, 1]


def test_rrf_hand_computed_ties_and_exclusion():
    a = np.array([[3.0, 2.0, 1.0]])  # ranks 1,2,3
    b = np.array([[1.0, 1.0, 9.0]])  # ranks 2.5,2.5,1 (tie shares average rank)
    out = reciprocal_rank_fusion({"a": a, "b": b}, k=1)
    expected = [1 / 2 + 1 / 3.5, 1 / 3 + 1 / 3.5, 1 / 4 + 1 / 2]
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    w = reciprocal_rank_fusion({"a": a, "b": b}, k=1, weights={"a": 2.0, "b": 0.0})
    np.testing.assert_allclose(w[0], [2 / 2, 2 / 3, 2 / 4], rtol=1e-6)
    a2 = a.copy()
    a2[0, 0] = NEG
    out2 = reciprocal_rank_fusion({"a": a2, "b": b}, k=1)
    assert np.isneginf(out2[0, 0]) and np.isfinite(out2[0, 1:]).all()


@pytest.mark.parametrize("norm", ["zscore", "minmax", None])
def test_linear_fusion_sums_without_masks_exactly_as_the_masked_sum(norm):
    """The unmasked sum (all terms finite) and the entry-by-entry masked one agree bit for bit,
    including an item only a weight-0 source excluded, negative weights, nan and -inf entries."""
    from reclm_dagster.models.fusion import _masked_fusion

    rng = np.random.default_rng(3)
    signals = {n: rng.normal(size=(7, 40)).astype(np.float32) for n in "abc"}
    cases = [{"a": 1.0, "b": 0.25, "c": 0.5}, {"a": 1.0, "b": -0.5, "c": 0.0}]
    for weights in cases:
        for poke in (None, ("c", NEG), ("a", NEG), ("b", np.nan)):
            S = {n: v.copy() for n, v in signals.items()}
            if poke:
                S[poke[0]][2, 5] = poke[1]
            fast = linear_fusion(S, weights, norm=norm)
            exact = _masked_fusion(S, weights, norm, np.float32, 0.0)
            np.testing.assert_array_equal(fast, exact)
            if poke and np.isneginf(poke[1]):
                assert np.isneginf(fast[2, 5])  # excluded by any source, weighted or not
