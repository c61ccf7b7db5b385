"""An evaluation of the split the selection was made on reuses its validation work, and only then."""

from __future__ import annotations

import pandas as pd
import pytest

from test_eval_offline import synthetic_tables
from reclm_dagster.evaluation import baselines, selection
from reclm_dagster.evaluation.offline import EvaluationProtocol, offline_evaluation
from reclm_dagster.models.hybrid import HybridConfig

PROTOCOL = EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=3, ks=(10,), mmr_lambda=None,
                              ablations=False, cold_users=False, rerank=False)


@pytest.fixture()
def ease_fits(monkeypatch):
    """Every EASE baseline fit, as its λ."""
    seen, real = [], baselines.fit_baseline

    def spy(name, X_train, params=None):
        if name == "ease":
            seen.append(float((params or {})["l2"]))
        return real(name, X_train, params)

    monkeypatch.setattr(baselines, "fit_baseline", spy)
    return seen


def test_a_stored_selection_fits_the_chosen_ease_once_with_the_same_test_numbers(ease_fits):
    tables = synthetic_tables()
    chosen = selection.select_hybrid(tables, PROTOCOL, HybridConfig())
    visited = chosen.baselines["ease"][1]["l2"].tolist()
    assert sorted(ease_fits) == visited and chosen.baselines["ease"][0]["l2"] in visited  # validation only
    ease_fits.clear()
    reused = offline_evaluation(tables, PROTOCOL, HybridConfig(), baselines=("ease",), selection=chosen)
    assert reused.selection_source.startswith("stored") and ease_fits == [chosen.baselines["ease"][0]["l2"]]
    ease_fits.clear()
    fresh = offline_evaluation(tables, PROTOCOL, HybridConfig(), baselines=("ease",))
    assert sorted(ease_fits) == visited  # the whole search again (each new leader scored on test as it leads)
    ease = lambda r: r.metrics[r.metrics["model"] == "ease"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(ease(reused), ease(fresh))
    assert reused.params["ease"] == fresh.params["ease"]
    pd.testing.assert_frame_equal(reused.baseline_tuning["ease"].drop(columns="fit_s"),
                                  fresh.baseline_tuning["ease"].drop(columns="fit_s"))


def test_a_selection_made_on_another_split_is_not_reused(ease_fits):
    tables = synthetic_tables()
    chosen = selection.select_hybrid(tables, PROTOCOL, HybridConfig())
    ease_fits.clear()
    other = EvaluationProtocol(**{**PROTOCOL.__dict__, "seed": 4})
    result = offline_evaluation(tables, other, HybridConfig(), baselines=("ease",), selection=chosen)
    assert result.selection_source.startswith("re-selected")
    assert len(ease_fits) >= 3  # the search again


def test_the_baseline_choice_survives_the_store(ease_fits):
    import duckdb

    from reclm_dagster import store

    chosen = selection.select_hybrid(synthetic_tables(), PROTOCOL, HybridConfig())
    con = duckdb.connect()
    store.replace_tables(con, "s", selection.selection_tables(chosen))
    back = selection.read_selection(con, "s")
    assert back.fingerprint == chosen.fingerprint and back.baselines["ease"][0] == chosen.baselines["ease"][0]
    pd.testing.assert_frame_equal(back.baselines["ease"][1], chosen.baselines["ease"][1].drop(columns="fit_s"),
                                  check_dtype=False)  # timings are not stored: the choice depends on the split alone
