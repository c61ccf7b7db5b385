"""The offline evaluation of reclm's models on one dataset: split, fit on train, rank fully.

No leakage: a user's own descriptions of a held-out pair (valid or test) are removed
before any text profile or model is built, and metrics are computed on held-out pairs
only, ranking every item the user has not interacted with in train (and validation).

Baselines (Pop, ItemKNN, RP3beta, EASE; see ``evaluation/baselines.py``) run in the
same call, on the same split and item index: their hyper-parameters, like the hybrid's
fusion weights, are chosen on validation and every model is reported on test, fitted
on train only.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation.ablation import FINETUNED, AblationResult, finetune_pairs, finetuned_encoder, run_ablations
from reclm_dagster.evaluation.baselines import BASELINES, EASE_MAX_ITEMS, run_baselines
from reclm_dagster.evaluation.diversity import list_diversity, mmr_scorer
from reclm_dagster.evaluation.holdout import (  # noqa: F401 — EvaluationProtocol and the masks are imported from here
    METHODS, EvaluationProtocol, before_cut_mask, held_out_description_mask, prepare_split, require_evaluable_users, split_for,
    reported_rows, tuning_rows,
)
from reclm_dagster.evaluation.protocol import evaluate, evaluate_many, metric_rows
from reclm_dagster.evaluation.selection import HybridSelection, apply_selection, select_on_split, selection_fingerprint
from reclm_dagster.evaluation.split import SplitCounts
from reclm_dagster.evaluation.tuning import TUNING_METRIC
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.models.signals import FUSED_SIGNALS, signal_params
from reclm_dagster.profiling import LapClock
from reclm_dagster.training import DatasetTables

# reclm's hybrid, its fusion without the re-ranker and its single signals; popularity is 'pop'.
MODELS = ("hybrid", "fusion", *FUSED_SIGNALS)
@dataclass
class EvaluationResult:
    metrics: pd.DataFrame  # model, slice ('all' | 'cold'), metric, value
    split: pd.DataFrame  # user_id, item_id, split
    counts: SplitCounts
    n_descriptions_removed: int  # descriptions of held-out pairs dropped before fitting
    weights: dict[str, float]  # fusion weights used for 'hybrid' (tuned on validation when possible)
    tuning: pd.DataFrame  # one row per fusion-weight combination tried: weights + validation metric
    params: dict[str, dict] = field(default_factory=dict)  # model -> hyper-parameters reported on test
    baseline_tuning: dict[str, pd.DataFrame] = field(default_factory=dict)  # baseline -> validation grid
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why it was not run
    reranker: object | None = None  # the LearnedReranker the hybrid uses, if validation kept one
    cold_user_tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # popularity weight -> validation NDCG
    hybrid_config: HybridConfig | None = None  # the hybrid's whole setting as chosen on validation
    model_encoders: dict[str, str] = field(default_factory=dict)  # model -> encoder version, where not the dataset's
    encoder_version: str = ""  # the encoder the text signals ran with (a recipe's retraining, see offline_evaluation)
    stages: pd.DataFrame = field(default_factory=pd.DataFrame)  # stage, seconds, rss_mb, peak_rss_mb (profiling.LapClock)
    selection: HybridSelection | None = None  # the choice the hybrid ran with (stored, or made on this split)
    # {"tuning": (validation users settings were judged on, of all), "test": (test users reported on, of all)}
    scored_users: dict[str, tuple[int, int]] = field(default_factory=dict)
    selection_source: str = ""  # which of the two, in words

    def wide(self, slice_: str = "all") -> pd.DataFrame:
        """One row per model (in run order), one column per metric."""
        m = self.metrics[self.metrics["slice"] == slice_]
        return m.pivot(index="model", columns="metric", values="value").reindex(pd.unique(m["model"]))


def _hybrid_params(config: HybridConfig, model) -> dict[str, dict]:
    return {"hybrid": config.as_params(), "fusion": config.as_params(), **signal_params(model)}


def offline_evaluation(
    tables: DatasetTables,
    protocol: EvaluationProtocol,
    config: HybridConfig,
    models: tuple[str, ...] = MODELS,
    progress: bool = False,
    baselines: tuple[str, ...] = BASELINES,
    ease_max_items: int = EASE_MAX_ITEMS,
    dataset: str = "",
    finetune_base: str | None = None,
    encoder_recipe: dict | None = None,
    selection: HybridSelection | None = None,
) -> EvaluationResult:
    """The hybrid, its single signals and the baselines, on one split, tuned on validation, reported on test.

    ``finetune_base``: the transformer folder (or '' for the packaged MiniLM) that
    ``hybrid@finetuned`` fine-tunes when ``protocol.finetune_steps`` > 0; None when the dataset's
    encoder is no transformer (the ablation is then skipped, with the reason).
    ``encoder_recipe``: the ``TRAINED_ON`` record of a dataset encoder that was fine-tuned on
    rows this split holds out. Its weights have seen the test pairs, so the evaluation measures
    its recipe instead: the same fine-tuning on this split's train rows, and every text signal
    reads that encoder (``EvaluationResult.encoder_version``).
    ``selection``: a stored choice (``hybrid_selection``). Used only when its fingerprint equals this
    split's (same split, words, catalogue, encoder and base setting: the same choice, already made);
    otherwise the hybrid is re-selected here, on this split's train and validation rows only.
    """
    laps = LapClock()
    data = prepare_split(tables, protocol, dataset, encoder_recipe, laps)
    tables, split, counts, mask, train = data.tables, data.split, data.counts, data.mask, data.train
    # X_test: the test users reported on (all of them, or a seeded sample above protocol.test_max_cells)
    matrix, X_train, X_valid, X_test = data.matrix, data.X_train, data.X_valid, data.X_report
    popularity, cold, recipe_params, cold_tables = data.popularity, data.cold, data.recipe_params, data.cold_tables
    history = (X_train + X_valid).tocsr()  # what the user is known to have consumed at test time

    fingerprint = selection_fingerprint(data, protocol, config)
    stored = selection is not None and selection.fingerprint == fingerprint
    # Baselines first: the hybrid's EASE reuses the ridge λ that validation chose for EASE (a stored
    # selection of this very split has chosen it already: fitted once, not the grid again).
    b_rows, b_params, b_tables, skipped = run_baselines(
        baselines, X_train, X_valid, X_test, protocol, popularity, cold, ease_max_items, progress, TUNING_METRIC,
        chosen=selection.baselines if stored else None, X_tune=data.X_tune,
    )
    laps("baselines")
    if stored:
        model, cold_rows = apply_selection(data, protocol, selection, "hybrid" in models, progress, laps)
        selection_source = "stored hybrid_selection (chosen on this split's validation rows)"
    else:
        selection_source = ("re-selected on this split's validation rows: the stored selection was chosen on "
                            "another split, tables, encoder or setting" if selection is not None
                            else "selected on this split's validation rows")
        model, selection, cold_rows = select_on_split(data, protocol, config, b_params.get("ease", {}),
                                                      "hybrid" in models, progress, laps)
        selection.fingerprint = fingerprint
    config, tuned, tuning, cold_tuning = selection.config, selection.tuned, selection.tuning, selection.cold_user_tuning
    reranker_report = selection.reranker_report

    rows = []
    scorers = batch_scorers(model, history, models)  # one batch's signals serve every name
    diverse = protocol.mmr_lambda is not None and model.kg_ is not None and "hybrid" in models
    if diverse:  # KG-aware MMR over the hybrid's top 50, reported beside it with both lists' ild@10
        scorers["hybrid_mmr"] = mmr_scorer(scorers["hybrid"], history, model.kg_["E"], lambda_=protocol.mmr_lambda)
    results = evaluate_many(scorers, train_X=X_train, test_X=X_test, exclude_X=history,
                            ks=protocol.ks, cold_items=cold, item_popularity=popularity, progress=progress)
    for name, result in results.items():
        rows += metric_rows(name, result)
    if diverse:
        users = np.flatnonzero(np.diff(sp.csr_matrix(X_test).indptr) > 0)
        ild = list_diversity({n: scorers[n] for n in ("hybrid_mmr", "hybrid")}, users, history, model.kg_["E"])
        rows += [(name, "all", "ild@10", value) for name, value in ild.items()]
    laps("test scoring")
    ablation, finetuned = AblationResult(), None
    if protocol.ablations and tuned and "hybrid" in models:
        if protocol.finetune_steps > 0 and finetune_base is None:
            skipped[FINETUNED] = "the dataset's encoder is not a transformer folder to fine-tune"
        elif protocol.finetune_steps > 0:
            finetuned = finetuned_encoder(finetune_pairs(tables, train, mask, protocol.seed), protocol, dataset,
                                          finetune_base or None)
            laps("fine-tuning")
        ablation = run_ablations(model, tables, matrix.users, matrix.items, X_train, data.X_tune, X_test, history,
                                 popularity, cold, protocol, progress, finetuned=finetuned)
        rows += ablation.rows
        laps("ablations")
    params = {m: p for m, p in _hybrid_params(config, model).items() if m in models}
    params.update(ablation.params)
    if any(r[0] == "hybrid_mmr" for r in rows):
        params["hybrid_mmr"] = {"mmr_lambda": protocol.mmr_lambda, "mmr_candidates": 50, "over": "hybrid"}
    if "hybrid" in params and recipe_params:
        params["hybrid"].update({"encoder_evaluated_as": "its recipe, fine-tuned on this split's train rows",
                                 "cold_user_encoder": cold_tables.encoder_version, **recipe_params})
    if "hybrid" in params:
        params["hybrid"]["reranker"] = "lightgbm-lambdarank" if model.reranker_ is not None else "none"
        params["hybrid"].update({f"reranker_{k}": v for k, v in reranker_report.items()})
    del model  # side-information EASE holds an n_items² array: free it
    gc.collect()
    rows += cold_rows

    metrics = pd.DataFrame(rows + b_rows, columns=["model", "slice", "metric", "value"])
    return EvaluationResult(
        metrics, split[["user_id", "item_id", "split"]], counts, int((~mask).sum()), dict(config.weights), tuning,
        params={**params, **b_params}, baseline_tuning=b_tables, skipped=skipped, reranker=selection.reranker,
        cold_user_tuning=cold_tuning, hybrid_config=config, model_encoders=ablation.encoders,
        encoder_version=tables.encoder_version, stages=laps.table(), selection=selection,
        selection_source=selection_source, scored_users=_scored_users(data.X_tune, X_valid, X_test, data.X_test),
    )


def _scored_users(X_tune, X_valid, X_report, X_test) -> dict[str, tuple[int, int]]:
    def users(X) -> int:
        return int((np.diff(sp.csr_matrix(X).indptr) > 0).sum())
    return {"tuning": (users(X_tune), users(X_valid)), "test": (users(X_report), users(X_test))}


def batch_scorers(model, history, names) -> dict:
    """``{name: score_fn}`` for ``evaluate_many``: the hybrid, its fusion and its signals, each batch of users
    scored once (signals, fusion, re-ranking) and shared by every name — the values ``model.scorer`` gives."""
    last: dict = {}

    def scored(rows):
        if last.get("rows") is None or not np.array_equal(last["rows"], rows):
            final, signals = model.score_with_signals(rows, history)
            last.update(rows=rows, final=final, signals=signals)
        return last

    def scorer(name):
        if name == "hybrid":
            return lambda rows: scored(rows)["final"]
        if name == "fusion":
            return lambda rows: model.fuse(scored(rows)["signals"], model.history_length(rows, history))
        def signal(rows):
            signals = scored(rows)["signals"]
            return signals[name] if name in signals else model.scorer(name, history)(rows)
        return signal

    return {name: scorer(name) for name in names}


def evaluate_baselines(
    interactions: pd.DataFrame,
    protocol: EvaluationProtocol,
    baselines: tuple[str, ...] = BASELINES,
    items: np.ndarray | None = None,
    ease_max_items: int = EASE_MAX_ITEMS,
    progress: bool = False,
) -> EvaluationResult:
    """The baselines alone (no text, no DuckDB) under the same protocol as ``offline_evaluation``.

    The index covers every user and every item of ``interactions`` (or the
    catalogue ``items``), so test-only items exist, as cold items.
    """
    split, counts = split_for(interactions, protocol)
    users = np.sort(interactions["user_id"].astype(str).unique())
    if items is None:
        items = np.sort(interactions["item_id"].astype(str).unique())
    matrix = InteractionMatrix(split[split["split"] == "train"], users=users, items=items)
    X_valid, _ = matrix.align(split[split["split"] == "valid"])
    X_all_test, _ = matrix.align(split[split["split"] == "test"])
    X_test, X_tune = reported_rows(X_all_test, protocol), tuning_rows(X_valid, protocol)
    popularity = np.asarray((matrix.X > 0).sum(axis=0)).ravel()
    cold = popularity <= protocol.cold_item_max_train
    rows, params, tables, skipped = run_baselines(
        baselines, matrix.X, X_valid, X_test, protocol, popularity, cold, ease_max_items, progress, TUNING_METRIC,
        X_tune=X_tune,
    )
    metrics = pd.DataFrame(rows, columns=["model", "slice", "metric", "value"])
    return EvaluationResult(
        metrics, split[["user_id", "item_id", "split"]], counts, 0, {}, pd.DataFrame(),
        params=params, baseline_tuning=tables, skipped=skipped,
        scored_users=_scored_users(X_tune, X_valid, X_test, X_all_test),
    )
