"""The candidate-only fused neighbours equal the full z-scored fusion of every item pair."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from reclm_dagster.models.fusion import linear_fusion
from reclm_dagster.models.ranking import topk
from reclm_dagster.models.similar_items import fused_neighbours


def full_fusion(E, C, rows, k):
    """What item_similarity computed before: both signals z-scored over whole rows, summed, self excluded."""
    signals = {"text": E[rows] @ E.T, "cf": C[rows].toarray().astype(np.float32)}
    fused = linear_fusion(signals, {"text": 1.0, "cf": 1.0}, norm="zscore")
    fused[np.arange(len(rows)), rows] = -np.inf
    return topk(fused, k, copy=False)


@pytest.mark.parametrize("n, k, density", [(300, 10, 0.03), (40, 10, 0.3), (12, 20, 0.5)])
def test_fused_neighbours_are_the_full_fusions(n, k, density):
    rng = np.random.default_rng(n)
    E = rng.normal(size=(n, 16)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    C = sp.random(n, n, density=density, format="csr", random_state=rng, dtype=np.float32)
    alone = np.ones(n, np.float32)
    alone[3] = 0  # an item nobody co-consumed: text alone decides (its cf row is constant)
    C = sp.csr_matrix(sp.diags(alone) @ (C + C.T))
    C.eliminate_zeros()
    rows = np.arange(n)
    want_idx, want_vals = full_fusion(E, C, rows, k)
    idx, vals, text, cf = fused_neighbours(E, C, rows, k)
    assert idx.shape == want_idx.shape == (n, min(k, n))
    np.testing.assert_allclose(vals, want_vals, rtol=1e-5, atol=1e-5)
    same = idx == want_idx
    # any disagreement is a swap of items whose fused scores tie to float rounding
    assert same.mean() > 0.99 and np.all(np.abs(np.diff(want_vals, axis=1))[~same[:, 1:]] < 1e-4)
    ok = idx >= 0
    assert not np.any(idx == rows[:, None]) and (ok.sum(axis=1) == min(k, n - 1)).all()
    np.testing.assert_allclose(text[ok], (E[rows] @ E.T)[np.nonzero(ok)[0], idx[ok]], rtol=1e-6)
    np.testing.assert_array_equal(cf[ok], C.toarray()[rows][np.nonzero(ok)[0], idx[ok]])
    assert len({tuple(r[r >= 0]) for r in idx}) > 1 and all(len(set(r[r >= 0])) == (r >= 0).sum() for r in idx)
