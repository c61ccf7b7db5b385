"""The ablations that measure the language model: the hybrid against itself without the transformer."""

import numpy as np
import pandas as pd

from reclm_dagster.encoders.lexical_encoder import LexicalEncoder
from reclm_dagster.evaluation import ablation
from reclm_dagster.evaluation.offline import EvaluationProtocol, offline_evaluation
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.training import DatasetTables, fit_hybrid, item_text_index


def _tables(seed: int = 0) -> DatasetTables:
    """Users who each love one genre and say so; item texts name the genre."""
    rng = np.random.default_rng(seed)
    genres = ("space opera", "cooking show", "jazz trio", "horror film")
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(24)],
                          "title": [f"a {genres[j % 4]} number {j}" for j in range(24)], "domain": "video"})
    items["description"] = ""
    rows, descs = [], []
    for u in range(60):
        g = u % 4
        liked = [j for j in range(24) if j % 4 == g]
        for j in rng.choice(liked, size=5, replace=False):
            rows.append((f"u{u}", f"i{j}", 1.0))
        descs.append((f"d{u}", f"u{u}", None, "request", f"I love {genres[g]}"))
    ds = type("D", (), {})()
    ds.items = items
    ds.interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "weight"]).assign(timestamp=pd.NA)
    ds.descriptions = pd.DataFrame(descs, columns=["description_id", "user_id", "item_id", "kind", "text"])
    ds.facts = pd.DataFrame(columns=["item_id", "relation", "entity"])
    return DatasetTables.from_dataset(ds, LexicalEncoder(256))


def test_lexical_ablation_shares_cf_and_reads_the_same_words():
    tables = _tables()
    train = tables.interactions.iloc[::2]
    mask = np.arange(len(tables.descriptions)) % 3 != 0  # a third of the words forbidden
    model, matrix = fit_hybrid(tables, train, description_mask=mask, config=HybridConfig(side_weight=1.0))
    other = tables.with_encoder(LexicalEncoder(64))
    variants = ablation.ablation_models(model, other, matrix.users, matrix.items)
    lexical = variants[ablation.LEXICAL][0]
    assert lexical.cf_ is model.cf_ and lexical.bm25_ is model.bm25_  # nothing refitted but the text side
    expected, _ = item_text_index(other.with_encoder(LexicalEncoder()), matrix.items, model.config, np.flatnonzero(mask))
    assert np.allclose(lexical.item_vectors_, expected)
    assert lexical.item_vectors_.shape[1] != model.item_vectors_.shape[1]
    # a user whose only words are forbidden has no text profile in either model
    silent = [r for r, u in enumerate(matrix.users) if not mask[tables.descriptions["user_id"].tolist().index(u)]]
    assert silent and not lexical.user_said(np.array(silent)).any() and not model.user_said(np.array(silent)).any()
    assert variants[ablation.NO_TEXT][1]["text"] == (0.0,)


def test_evaluation_reports_both_ablations_tuned_on_validation():
    tables = _tables(1)
    protocol = EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, ks=(5, 10), cold_users=False, mmr_lambda=None)
    result = offline_evaluation(tables, protocol, HybridConfig(), baselines=("pop",))
    wide = result.wide()
    assert {"hybrid", ablation.LEXICAL, ablation.NO_TEXT} <= set(wide.index)
    assert result.params[ablation.NO_TEXT]["weight_text"] == 0.0
    assert result.model_encoders[ablation.LEXICAL] == LexicalEncoder().version
    assert ablation.NO_TEXT not in result.model_encoders or result.model_encoders[ablation.NO_TEXT] == tables.encoder_version
    for name in ablation.ABLATIONS:
        assert 0 <= wide.at[name, "ndcg@10"] <= 1
    # each stage timed in run order (profiling.LapClock)
    assert list(result.stages["stage"]) == ["split", "baselines", "hybrid fit and tuning", "re-ranker", "test scoring",
                                            "ablations"]
    # switched off, no ablation is run
    off = offline_evaluation(tables, EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, ks=(5, 10), cold_users=False,
                                                        mmr_lambda=None, ablations=False), HybridConfig(), baselines=())
    assert not set(ablation.ABLATIONS) & set(off.wide().index)


def test_when_ease_reads_embeddings_the_ablations_refit_it_without_the_transformer():
    from dataclasses import replace

    tables = _tables(2)
    # a "transformer" whose item vectors differ from the bag of words the ablation swaps in
    tables = replace(tables, item_vectors=np.random.default_rng(2).normal(size=tables.item_vectors.shape).astype(np.float32))
    train = tables.interactions
    config = HybridConfig(side_weight=1.0, dense_weight=2.0, dense_dims=8)
    model, matrix = fit_hybrid(tables, train, config=config)
    plain, _ = fit_hybrid(tables, train, config=HybridConfig(side_weight=1.0))
    assert not np.allclose(model.cf_.B_, plain.cf_.B_)  # the embeddings do shape B
    variants = ablation.ablation_models(model, tables, matrix.users, matrix.items, matrix.X)
    no_text, lexical = variants[ablation.NO_TEXT][0], variants[ablation.LEXICAL][0]
    assert np.allclose(no_text.cf_.B_, plain.cf_.B_, atol=1e-5) and no_text.config.dense_weight == 0
    assert lexical.cf_ is not model.cf_ and not np.allclose(lexical.cf_.B_, model.cf_.B_)
    assert model.cf_.B_ is not None and model.config.dense_weight == 2.0  # the hybrid itself untouched
