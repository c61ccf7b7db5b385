"""The leakage canary: a word planted in held-out raw data reaches no model the evaluation fits.

For every layout reclm reads, a small raw dataset is written in that layout's own files,
split by the protocol, and written again with a canary tag on every held-out pair
(``zzmainzz``: the main split's valid + test pairs; ``zzcoldzz``: the cold-user protocol's
unrevealed pairs). The loader then derives whatever it derives from those words (facts,
tokens, …) and the whole evaluation runs: side-information EASE for each g, fusion
tuning, the re-ranker, the ablations' text side (another encoder), the cold-user fit and the
query-retrieval index. Every fitted model
is searched for the canary — side-information feature names, the KG signal's entities,
the BM25 vocabulary, user profiles (which the re-ranker's features are computed from) —
and the main fit's item side must equal one built from raw data with those rows deleted.

Each assertion is shown able to fail: with the mask turned off, with the old loader
behaviour (users' tags aggregated into stored facts), with the cold-user mask off, with an
ablation that reads every word, and with queries left in the index, the same checks go red.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import pandas as pd
import pytest

from canary_layouts import LAYOUTS, Content, synthetic
from reclm_dagster.datasets import load_dataset
from reclm_dagster.encoders.lexical_encoder import LexicalEncoder
from reclm_dagster.evaluation import ablation, cold_users, holdout, offline, queries, selection, tuning
from reclm_dagster.evaluation.cold_users import REVEAL, cold_user_split
from reclm_dagster.evaluation.offline import EvaluationProtocol, split_for
from reclm_dagster import training
from reclm_dagster.kg.build import user_tag_facts
from reclm_dagster.models import ease as ease_module
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.models import fit_cache
from reclm_dagster.models.large_catalogue import ENV_DENSE_MAX_ITEMS, SparseItemCF
from reclm_dagster.training import DatasetTables, fit_hybrid

MAIN, COLD = "zzmainzz", "zzcoldzz"
PROTOCOL = EvaluationProtocol(valid_fraction=0.2, test_fraction=0.2, seed=0, ks=(5, 10), mmr_lambda=None,
                              cold_user_fraction=0.15, finetune_steps=1)
ENCODER = LexicalEncoder(64)


@pytest.fixture(autouse=True)
def _no_hetrec_enrichment(monkeypatch):
    monkeypatch.setenv("RECLM_HETREC_MOVIELENS_DIR", "")


def _pairs(df: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(df["user_id"].astype(str), df["item_id"].astype(str)))


def _load(root, layout: str, content: Content):
    LAYOUTS[layout][0](root / layout, content)
    return load_dataset(layout, root)


def planted(tmp_path, layout: str):
    """``(content, tables, held, cold_hidden, raw_user)``: the layout written with canaries on held-out pairs."""
    base = synthetic()
    key = LAYOUTS[layout][1]
    raw_user = {key(u): u for u, _, _ in base.interactions}
    ds = _load(tmp_path / "clean", layout, base)
    split, _ = split_for(ds.interactions, PROTOCOL)
    held = _pairs(split[split["split"] != "train"])
    _, cold = cold_user_split(split[split["split"] == "train"], PROTOCOL.cold_user_protocol())
    cold_hidden = _pairs(cold[cold["position"] >= max(REVEAL)])
    raw = lambda pairs: {(raw_user[u], i) for u, i in pairs}  # noqa: E731
    stamp = {(u, i): ts for u, i, ts in base.interactions}
    extra = [(u, i, MAIN, stamp[(u, i)] + 30) for u, i in sorted(raw(held))]
    extra += [(u, i, COLD, stamp[(u, i)] + 30) for u, i in sorted(raw(cold_hidden))]
    content = base.with_tags(extra)
    ds = _load(tmp_path / "planted", layout, content)
    assert _pairs(split_for(ds.interactions, PROTOCOL)[0].query("split != 'train'")) == held  # same split
    return content, DatasetTables.from_dataset(ds, ENCODER), held, cold_hidden, raw


def model_words(model) -> set[str]:
    """Every string a fitted hybrid scores with: features, KG entities, BM25 vocabulary, user profiles."""
    words = set(map(str, model.side_feature_names_))
    words |= set(model.kg_["index"]) if model.kg_ else set()
    words |= set(model.bm25_.vocabulary_)
    words |= {w for tokens in model.user_text_.tokens for w in tokens}
    words |= {w for feats in model.user_text_.features for w in feats}
    return words


def leaks(words: set[str], canary: str) -> list[str]:
    return sorted(w for w in words if canary in w)


def run_evaluation(tables, monkeypatch, trained=None, stored_selection: bool = False):
    """The whole offline evaluation with every fit recorded as ``(role, model, train, mask)``.

    ``trained`` (a list) receives the pairs ``hybrid@finetuned``'s encoder is trained on; the
    training itself is replaced by the lexical encoder (the pairs are what could leak).
    ``stored_selection``: choose first as the ``hybrid_selection`` asset does (``select_hybrid``),
    then evaluate with that stored choice, so the main fit is the one ``apply_selection`` makes.
    """
    fits = []
    trained = [] if trained is None else trained

    def finetune_spy(pairs, protocol, dataset, base_model, **train):
        trained.append(pairs)
        return LexicalEncoder(32), {"finetune_pairs": len(pairs)}

    monkeypatch.setattr(offline, "finetuned_encoder", finetune_spy)

    def spy(role, real):
        def fit(tables_, train, description_mask=None, config=None):
            model, matrix = real(tables_, train, description_mask=description_mask, config=config)
            fits.append((role, model, train, description_mask, config))
            return model, matrix
        return fit

    monkeypatch.setattr(tuning, "fit_hybrid", spy("main", tuning.fit_hybrid))
    for module in (cold_users, training):  # the cold-user fit, wherever it imports fit_hybrid from
        if hasattr(module, "fit_hybrid"):
            monkeypatch.setattr(module, "fit_hybrid", spy("cold", fit_hybrid))
    monkeypatch.setattr(selection, "fit_hybrid", spy("main", selection.fit_hybrid))  # the refit with a stored choice
    real_swap = ablation.with_text_from

    def swap_spy(model, tables_, users, items):  # the ablations' text side (another encoder)
        clone = real_swap(model, tables_, users, items)
        fits.append(("ablation", clone, None, model.description_mask_, model.config))
        return clone

    monkeypatch.setattr(ablation, "with_text_from", swap_spy)
    # tags merged by embedding (side_information.merge_similar): the merge reads only allowed words too
    config = HybridConfig(tag_merge_threshold=0.9)
    stored = None
    if stored_selection:
        stored = selection.select_hybrid(tables, PROTOCOL, config)  # its fits are searched too
    result = offline.offline_evaluation(tables, PROTOCOL, config, baselines=("pop",), finetune_base="",
                                        selection=stored)
    assert stored is None or result.selection_source.startswith("stored"), result.selection_source
    return result, fits


def item_side_differences(model, reference, cf: bool = True) -> list[str]:
    """What differs between the item side (and user profiles) of two fits of the same train split
    (``cf``: and their sparse CF weights, when both were fitted at the same setting)."""
    out = []
    if not np.allclose(model.item_vectors_, reference.item_vectors_, atol=1e-5):
        out.append("item vectors differ from the fit without the held-out rows")
    if list(model.side_feature_names_) != list(reference.side_feature_names_):
        out.append(f"side features differ: {sorted(set(model.side_feature_names_) ^ set(reference.side_feature_names_))[:5]}")
    if set(model.bm25_.vocabulary_) != set(reference.bm25_.vocabulary_):
        out.append("BM25 vocabulary differs")
    if [sorted(t) for t in model.user_text_.tokens] != [sorted(t) for t in reference.user_text_.tokens]:
        out.append("user profiles differ")
    if cf and isinstance(model.cf_, SparseItemCF) and (model.cf_.similarity_ != reference.cf_.similarity_).nnz:
        out.append("sparse CF weights differ from the fit without the held-out rows")  # e.g. a cached fit on other words
    return out


def query_findings(tables, monkeypatch) -> list[str]:
    """The query-retrieval index must be the one built without the held-out query rows."""
    seen = {}
    real_split, real_corpus = queries.split_queries, queries.item_corpus

    def split_spy(*args, **kwargs):
        seen["split"] = real_split(*args, **kwargs)
        return seen["split"]

    def corpus_spy(items, facts, remaining):
        seen["corpus"] = real_corpus(items, facts, remaining)
        return seen["corpus"]

    monkeypatch.setattr(queries, "split_queries", split_spy)
    monkeypatch.setattr(queries, "item_corpus", corpus_spy)
    queries.evaluate_query_retrieval("canary", tables.items, tables.facts, tables.descriptions, ENCODER)
    held_ids = seen["split"].held_out_ids
    if not held_ids:
        return ["no query was held out: the query check checked nothing"]
    allowed = tables.descriptions[~tables.descriptions["description_id"].astype(str).isin(held_ids)]
    reference = real_corpus(tables.items, tables.facts, allowed)
    if seen["corpus"].documents() != reference.documents():
        return ["query index: item documents contain held-out queries' words"]
    return []


def canary_findings(layout: str, tmp_path, monkeypatch, stored_selection: bool = False) -> list[str]:
    """Everything the canary finds for one layout (empty when nothing leaks)."""
    content, tables, held, cold_hidden, raw = planted(tmp_path, layout)
    assert sum(MAIN in t for t in tables.descriptions["text"]) == len(held) > 0 and cold_hidden
    trained = []
    result, fits = run_evaluation(tables, monkeypatch, trained, stored_selection)
    assert {role for role, *_ in fits} == {"main", "cold", "ablation"}, "the evaluation's fits were not all seen"
    # The re-ranker's features come from the main model's user profiles, checked below.
    assert "reranker" in result.params["hybrid"]
    found = []
    for role, model, *_ in fits:
        for canary in (MAIN, COLD) if role == "cold" else (MAIN,):
            found += [f"{role} fit: {w!r}" for w in leaks(model_words(model), canary)]
    _, model, train, _, config = next(f for f in fits if f[0] == "main")
    deleted = DatasetTables.from_dataset(_load(tmp_path / "deleted", layout, content.without_pairs(raw(held))), ENCODER)
    fit_cache.clear()  # the reference is fitted from scratch, never served
    reference, matrix = fit_hybrid(deleted, train, config=config)
    found += item_side_differences(model, reference)
    # the lexical ablation's text side too (the same words, another encoder)
    swapped = next(f[1] for f in fits if f[0] == "ablation")
    expected = training.with_text_from(reference, deleted.with_encoder(LexicalEncoder()), matrix.users, matrix.items)
    # (its CF is the chosen g's, the reference's the first g of the grid: the CF is compared above)
    found += [f"ablation: {d}" for d in item_side_differences(swapped, expected, cf=False)]
    # the fine-tuned encoder's training pairs: no held-out word, no held-out pair as co-consumption
    assert len(trained) == 1 and len(trained[0]) and "hybrid@finetuned" in result.params, "fine-tuning was not seen"
    pairs = trained[0]
    texts = pd.concat([pairs["anchor"], pairs["positive"]]).astype(str)
    found += [f"fine-tuning pairs: {t[:60]!r}" for t in texts if MAIN in t]
    return found + query_findings(tables, monkeypatch)


@pytest.mark.parametrize("layout", [name for name, (_, _, words) in LAYOUTS.items() if words])
def test_no_held_out_word_reaches_any_fit(layout, tmp_path, monkeypatch):
    assert canary_findings(layout, tmp_path, monkeypatch) == []


def test_no_held_out_word_reaches_the_stored_selection_or_its_refit(tmp_path, monkeypatch):
    """The ``hybrid_selection`` asset's choice, then the evaluation's refit with it (``apply_selection``)."""
    assert canary_findings("lastfm", tmp_path, monkeypatch, stored_selection=True) == []


def test_no_held_out_word_reaches_the_large_catalogue_cf(tmp_path, monkeypatch):
    """Above the dense cap every fit (main, cold users, ablations) uses the sparse restricted EASE."""
    monkeypatch.setenv(ENV_DENSE_MAX_ITEMS, "1")
    assert canary_findings("folder", tmp_path, monkeypatch) == []
    content, tables, *_ = planted(tmp_path / "again", "folder")
    _, fits = run_evaluation(tables, monkeypatch)
    assert {type(model.cf_).__name__ for _, model, *_ in fits} == {"SparseItemCF"}


def _leaky_fits_cached_first(tmp_path, monkeypatch) -> None:
    """Fill the sparse fit cache with an evaluation that reads every word (the held-out mask off)."""
    _, tables, *_ = planted(tmp_path / "leaky", "folder")
    with monkeypatch.context() as leaky:
        leaky.setattr(holdout, "held_out_description_mask", lambda d, h: np.ones(len(d), dtype=bool))
        run_evaluation(tables, leaky)


def test_no_fit_on_held_out_words_is_served_from_the_fit_cache(tmp_path, monkeypatch):
    """models/fit_cache.py: the cache holds fits of the same rows with every word; the masked
    evaluation after it must fit its own (its side rows differ) and match the fit without them."""
    monkeypatch.setenv(ENV_DENSE_MAX_ITEMS, "1")
    _leaky_fits_cached_first(tmp_path, monkeypatch)
    assert canary_findings("folder", tmp_path, monkeypatch) == []


def test_the_evaluation_of_a_stored_selection_is_served_the_selections_sparse_fits(tmp_path, monkeypatch):
    """In one process (``reclm run``) the evaluation's refits of the stored choice are the selection's own fits."""
    monkeypatch.setenv(ENV_DENSE_MAX_ITEMS, "1")
    _, tables, *_ = planted(tmp_path, "folder")
    calls = []
    real = SparseItemCF._from_cache
    monkeypatch.setattr(SparseItemCF, "_from_cache", lambda self: calls.append(hit := real(self)) or hit)
    result, fits = run_evaluation(tables, monkeypatch, stored_selection=True)
    assert "stored" in result.selection_source and sum(calls) >= 2  # at least the main and the cold-user hybrid


def test_canary_fails_when_the_fit_cache_ignores_the_rows(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DENSE_MAX_ITEMS, "1")
    monkeypatch.setattr(fit_cache, "data_key", lambda *matrices: "every fit alike")
    _leaky_fits_cached_first(tmp_path, monkeypatch)
    assert "sparse CF weights differ from the fit without the held-out rows" in canary_findings("folder", tmp_path, monkeypatch)


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_no_held_out_word_reaches_either_ease_solver(solver, tmp_path, monkeypatch):
    """Every dense EASE fit (main, cold users, ablations, baselines) with each solver: the dual keeps
    the stacked rows (interactions + side features) instead of B, so it is checked on its own."""
    monkeypatch.setattr(ease_module, "DEFAULT_SOLVER", solver)
    assert canary_findings("lastfm", tmp_path, monkeypatch) == []
    content, tables, *_ = planted(tmp_path / "again", "lastfm")
    _, fits = run_evaluation(tables, monkeypatch)
    assert {model.cf_.solver_ for _, model, *_ in fits} == {solver}


def test_canary_fails_when_the_stored_selection_reads_every_word(tmp_path, monkeypatch):
    real = selection.fit_hybrid
    monkeypatch.setattr(selection, "fit_hybrid", lambda tables_, train, description_mask=None, config=None:
                        real(tables_, train, description_mask=None, config=config))
    found = canary_findings("lastfm", tmp_path, monkeypatch, stored_selection=True)
    assert any(f.startswith("main fit") and MAIN in f for f in found)


def test_layout_without_words_has_nothing_to_leak(tmp_path):
    """ml-100k has no users' words: the loader must not invent any (facts are the catalogue's genres)."""
    ds = _load(tmp_path, "movielens-100k", synthetic())
    assert len(ds.descriptions) == 0 and set(ds.facts["relation"]) <= {"has_genre"}


def test_demo_no_held_out_word_reaches_any_fit(monkeypatch):
    """The demo's words are generated from personas: the canary is planted in the loaded descriptions."""
    ds = load_dataset("demo")
    split, _ = split_for(ds.interactions, PROTOCOL)
    held = _pairs(split[split["split"] != "train"])
    key = ds.descriptions["user_id"].astype(str) + "\x1f" + ds.descriptions["item_id"].fillna("").astype(str)
    is_held = key.isin({u + "\x1f" + i for u, i in held}).to_numpy()
    assert is_held.any()
    ds.descriptions = ds.descriptions.assign(text=np.where(is_held, ds.descriptions["text"] + " " + MAIN, ds.descriptions["text"]))
    _, fits = run_evaluation(DatasetTables.from_dataset(ds, ENCODER), monkeypatch)
    for role, model, *_ in fits:
        assert not leaks(model_words(model), MAIN), role


# ---- mutations: each check above goes red when the protection it guards is removed ----------


@pytest.mark.parametrize("solver", ["auto", "dual"])
def test_canary_fails_when_the_held_out_mask_is_off(solver, tmp_path, monkeypatch):
    monkeypatch.setattr(ease_module, "DEFAULT_SOLVER", solver)
    monkeypatch.setattr(holdout, "held_out_description_mask", lambda d, h: np.ones(len(d), dtype=bool))
    found = canary_findings("folder", tmp_path, monkeypatch)
    assert any(f.startswith("main fit") and MAIN in f for f in found)
    assert any(f.startswith("cold fit") and MAIN in f for f in found)
    assert "item vectors differ from the fit without the held-out rows" in found


def test_canary_fails_when_a_loader_stores_facts_from_users_words(tmp_path, monkeypatch):
    """The defect of issue 10: held-out tags aggregated into stored ``tagged_as`` facts."""
    real = load_dataset

    def old_loader(name, data_dir=None):
        ds = real(name, data_dir)
        ds.facts = pd.concat([ds.facts, user_tag_facts(ds.descriptions)], ignore_index=True)
        return ds

    monkeypatch.setattr(sys.modules[__name__], "load_dataset", old_loader)
    found = canary_findings("lastfm", tmp_path, monkeypatch)
    assert any("tagged_as=" + MAIN in f for f in found)
    assert any(f.startswith("side features differ") for f in found)


def test_canary_fails_when_the_cold_user_mask_is_off(tmp_path, monkeypatch):
    monkeypatch.setattr(cold_users, "unrevealed_description_mask", lambda d, c, n: np.ones(len(d), dtype=bool))
    found = canary_findings("movielens-csv", tmp_path, monkeypatch)
    assert any(f.startswith("cold fit") and COLD in f for f in found)


def test_canary_fails_when_an_ablation_reads_every_word(tmp_path, monkeypatch):
    real = training.with_text_from

    def unmasked(model, tables_, users, items):
        everything = copy.copy(model)
        everything.description_mask_ = np.ones_like(model.description_mask_)
        return real(everything, tables_, users, items)

    monkeypatch.setattr(training, "with_text_from", unmasked)
    monkeypatch.setattr(ablation, "with_text_from", unmasked)
    found = canary_findings("folder", tmp_path, monkeypatch)
    assert "ablation: item vectors differ from the fit without the held-out rows" in found


def test_canary_fails_when_fine_tuning_reads_every_word(tmp_path, monkeypatch):
    real = ablation.finetune_pairs
    monkeypatch.setattr(offline, "finetune_pairs", lambda tables, train, mask, seed: real(tables, train, None, seed))
    found = canary_findings("lastfm", tmp_path, monkeypatch)
    assert any(f.startswith("fine-tuning pairs") for f in found)


def test_canary_fails_when_queries_stay_in_the_index(tmp_path, monkeypatch):
    real = queries.split_queries

    def leaky(descriptions, *args, **kwargs):
        split = real(descriptions, *args, **kwargs)
        split.remaining = descriptions
        return split

    monkeypatch.setattr(queries, "split_queries", leaky)
    content, tables, *_ = planted(tmp_path, "douban")
    assert query_findings(tables, monkeypatch) == ["query index: item documents contain held-out queries' words"]


# ---- the temporal protocol: words written after their author's cut are future data ------------

LATE = "zzlatezz"
TEMPORAL = EvaluationProtocol(valid_fraction=0.1, test_fraction=0.2, seed=0, method="temporal", ks=(5, 10),
                              mmr_lambda=None, cold_users=False, rerank=False)


def test_temporal_split_drops_words_written_after_the_cut(tmp_path, monkeypatch):
    """A user's later words — about a train item or about nothing — reach no fit under ``--temporal``."""
    base = synthetic()
    ds = _load(tmp_path / "clean", "folder", base)
    split, _ = split_for(ds.interactions, TEMPORAL)
    held = split[split["split"] != "train"]
    cut = held.groupby("user_id")["timestamp"].min()
    late = []
    for u, i, ts in base.interactions:
        if u in cut and ts < cut[u]:  # a train pair, described after the user's cut
            late.append((u, i, LATE, int(cut[u]) + 10))
            late.append((u, None, f"{LATE} request", int(cut[u]) + 20))
    ds = _load(tmp_path / "planted", "folder", base.with_tags(late))
    tables = DatasetTables.from_dataset(ds, ENCODER)

    def run():
        fits = []
        real = tuning.fit_hybrid
        monkeypatch.setattr(tuning, "fit_hybrid", lambda *a, **k: _record(fits, real, *a, **k))
        offline.offline_evaluation(tables, TEMPORAL, HybridConfig(), baselines=())
        return [w for m in fits for w in leaks(model_words(m), LATE)]

    assert run() == []
    # mutation: without the cut the same words reach the fits
    monkeypatch.setattr(holdout, "before_cut_mask", lambda d, s: np.ones(len(d), dtype=bool))
    assert run()


def _record(fits, real, *args, **kwargs):
    model, matrix = real(*args, **kwargs)
    fits.append(model)
    return model, matrix


def test_before_cut_mask_by_hand():
    split = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "item_id": ["x", "y", "z", "x"],
                          "timestamp": [10, 20, 30, 5], "split": ["train", "test", "valid", "train"]})
    descriptions = pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "b"],
        "item_id": ["x", "x", None, "x", "x"],
        "timestamp": pd.array([19, 20, 25, None, 99], dtype="Int64"),
    })
    # a's cut is 20 (the earliest held-out): before it kept, at/after or undated dropped; b has no cut
    assert offline.before_cut_mask(descriptions, split).tolist() == [True, False, False, False, True]


def test_an_encoder_fine_tuned_on_every_row_is_evaluated_as_its_recipe(tmp_path, monkeypatch):
    """The dataset's encoder saw the test rows: the evaluation retrains its recipe on the train rows
    (masked words only, the recipe's own knobs), every text signal reads that retrained encoder, and
    the cold-user fit (which holds out train rows) reads the untouched base model."""
    from reclm_dagster.encoders import transformer

    _, tables, *_ = planted(tmp_path, "lastfm")
    retrained, base = LexicalEncoder(48), LexicalEncoder(40)
    calls = []

    def recipe_spy(pairs, protocol, dataset, base_model, **train):
        calls.append((pairs, base_model, train))
        return (retrained, {"finetune_pairs": len(pairs)}) if len(calls) == 1 else (LexicalEncoder(32), {})

    monkeypatch.setattr(holdout, "finetuned_encoder", recipe_spy)  # the recipe, retrained when the split is prepared
    monkeypatch.setattr(offline, "finetuned_encoder", recipe_spy)  # hybrid@finetuned
    monkeypatch.setattr(transformer, "TransformerEncoder", lambda model=None, **kw: base)
    recipe = {"dataset": "lastfm", "rows": "all", "base_model": "/models/base",
              "params": {"steps": 7, "seed": 5, "lr": 3e-5, "not_a_knob": 1}}
    result = offline.offline_evaluation(tables, PROTOCOL, HybridConfig(), baselines=("pop",), finetune_base="",
                                        dataset="lastfm", encoder_recipe=recipe)
    pairs, base_model, train = calls[0]
    assert base_model == "/models/base" and train == {"steps": 7, "seed": 5, "lr": 3e-5}
    assert not any(MAIN in t for t in pd.concat([pairs["anchor"], pairs["positive"]]))
    assert result.encoder_version == retrained.version != tables.encoder_version
    assert result.params["hybrid"]["cold_user_encoder"] == base.version
