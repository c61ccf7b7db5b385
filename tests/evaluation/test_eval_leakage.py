"""No leakage: a user's own words about a held-out pair never reach a profile or a model."""

import numpy as np
import pandas as pd

from reclm_dagster.evaluation import offline, tuning
from reclm_dagster.evaluation.offline import EvaluationProtocol, held_out_description_mask
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.training import DatasetTables


def test_mask_drops_only_descriptions_of_held_out_pairs():
    descriptions = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u1"],
        "item_id": ["a", "b", "a", None],  # None: a general request, never a held-out pair
    })
    held_out = pd.DataFrame({"user_id": ["u1"], "item_id": ["a"]})
    assert held_out_description_mask(descriptions, held_out).tolist() == [False, True, True, True]


def _tables(rng) -> DatasetTables:
    items = [f"i{j}" for j in range(12)]
    rows, descs = [], []
    for u in range(30):
        for j in rng.choice(12, size=8, replace=False):
            rows.append((f"u{u}", items[j], 1.0))
            # every pair carries the user's tag with a word unique to that pair
            descs.append((f"d{u}-{j}", f"u{u}", items[j], f"secret{u}x{j}"))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "weight"]).assign(timestamp=pd.NA)
    descriptions = pd.DataFrame(descs, columns=["description_id", "user_id", "item_id", "text"])
    dim = 8
    return DatasetTables(
        items=pd.DataFrame({"item_id": items, "title": items, "domain": "video"}),
        interactions=interactions,
        descriptions=descriptions,
        item_vectors=np.eye(12, dim, dtype=np.float32) + 0.01,
        item_tokens=[[i] for i in items],
        description_vectors=rng.normal(size=(len(descriptions), dim)).astype(np.float32),
        description_tokens=[[t] for t in descriptions["text"]],
        encoder_version="fake@0",
    )


def test_offline_evaluation_fits_without_held_out_descriptions(monkeypatch):
    tables = _tables(np.random.default_rng(0))
    fitted = {}
    real_fit = tuning.fit_hybrid

    def spy(tables_, train, description_mask=None, config=None):
        model, matrix = real_fit(tables_, train, description_mask=description_mask, config=config)
        fitted.update(model=model, matrix=matrix, mask=description_mask, train=train)
        return model, matrix

    monkeypatch.setattr(tuning, "fit_hybrid", spy)
    protocol = EvaluationProtocol(valid_fraction=0.125, test_fraction=0.25, seed=0, ks=(5, 10))
    result = offline.offline_evaluation(tables, protocol, HybridConfig(), baselines=())

    held = result.split[result.split["split"] != "train"]
    held_words = {f"secret{u[1:]}x{i[1:]}" for u, i in zip(held["user_id"], held["item_id"])}
    assert len(held_words) == len(held) > 0
    assert result.n_descriptions_removed == len(held)
    # the model only ever saw train pairs and the words of train pairs
    assert set(zip(fitted["train"]["user_id"], fitted["train"]["item_id"])).isdisjoint(zip(held["user_id"], held["item_id"]))
    seen_words = {w for tokens in fitted["model"].user_text_.tokens for w in tokens}
    assert seen_words and seen_words.isdisjoint(held_words)
    # ...nor the items' side: their BM25 vocabulary and EASE's side-information features
    assert set(fitted["model"].bm25_.vocabulary_).isdisjoint(held_words)
    side_words = {name.split("=", 1)[1] for name in fitted["model"].side_feature_names_}
    assert side_words.isdisjoint(held_words)
    kept = tables.descriptions[fitted["mask"]]
    assert len(kept) == len(tables.descriptions) - len(held)


def test_tables_stored_by_an_older_loader_are_refused(tmp_path):
    """Raw tables from before users' tags stopped being stored as facts cannot be masked: no fit uses them."""
    import duckdb
    import pytest

    from reclm_dagster import store
    from reclm_dagster.datasets import INGEST_INFO_TABLE, LOADER_VERSION

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    store.replace_tables(con, "ds_old", {"items": pd.DataFrame({"item_id": ["a"], "title": ["A"]})})
    with pytest.raises(RuntimeError, match="reclm run"):
        DatasetTables.load(con, "ds_old")
    store.replace_tables(con, "ds_old", {INGEST_INFO_TABLE: pd.DataFrame({"loader_version": [LOADER_VERSION - 1]})})
    with pytest.raises(RuntimeError, match="older reclm"):
        DatasetTables.load(con, "ds_old")
