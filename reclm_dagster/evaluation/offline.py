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
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation.ablation import FINETUNED, AblationResult, finetune_pairs, finetuned_encoder, run_ablations
from reclm_dagster.evaluation.baselines import BASELINES, EASE_MAX_ITEMS, run_baseline
from reclm_dagster.evaluation.cold_users import ColdUserProtocol, cold_user_evaluation
from reclm_dagster.evaluation.diversity import list_diversity, mmr_scorer
from reclm_dagster.evaluation.protocol import evaluate, metric_rows
from reclm_dagster.evaluation.tuning import (
    HALF_LIFE_GRID, TUNING_METRIC, attach_reranker, fit_tuned_hybrid, validation_ndcg,
)
from reclm_dagster.evaluation.split import SplitCounts, time_key, split_interactions
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.profiling import LapClock
from reclm_dagster.training import DatasetTables

# reclm's hybrid, its fusion without the re-ranker and its single signals; popularity is 'pop'.
MODELS = ("hybrid", "fusion", "cf", "text", "lexical", "kg")
METHODS = ("random", "temporal")
# What a fine-tuned encoder's recipe may set when the evaluation retrains it (encoders/finetune.finetune).
RECIPE_KNOBS = ("steps", "batch_size", "lr", "warmup_fraction", "temperature", "max_grad_norm", "weight_decay",
                "max_length", "seed")


@dataclass
class EvaluationProtocol:
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    method: str = "random"  # 'random' (seeded per-user shuffle) or 'temporal' (latest held out)
    ks: tuple[int, ...] = (5, 10, 20)
    cold_item_max_train: int = 2
    tune_weights: bool = True
    cold_users: bool = True  # also run the cold-user protocol (evaluation/cold_users.py)
    cold_user_fraction: float = 0.1
    rerank: bool = True  # train the learned re-ranker on validation (kept only if it wins there)
    mmr_lambda: float | None = 0.7  # also report KG-aware MMR diversity re-ranking (None: skip)
    ablations: bool = True  # also report hybrid@lexical and hybrid-notext (evaluation/ablation.py)
    finetune_steps: int = 0  # > 0: also hybrid@finetuned, the encoder fine-tuned on this split's train rows

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"evaluation method must be one of {METHODS}, got {self.method!r}")

    @classmethod
    def from_config(cls, cfg: dict) -> "EvaluationProtocol":
        e = cfg.get("evaluation", {})
        return cls(
            valid_fraction=float(e.get("valid_fraction", 0.1)),
            test_fraction=float(e.get("test_fraction", 0.1)),
            seed=int(e.get("seed", 0)),
            method=str(e.get("method", "random")),
            ks=tuple(int(k) for k in e.get("ks", (5, 10, 20))),
            cold_item_max_train=int(e.get("cold_item_max_train", 2)),
            tune_weights=bool(e.get("tune_weights", True)),
            cold_users=bool(e.get("cold_users", True)),
            cold_user_fraction=float(e.get("cold_user_fraction", 0.1)),
            rerank=bool(e.get("rerank", True)),
            mmr_lambda=None if e.get("mmr_lambda", 0.7) is None else float(e.get("mmr_lambda", 0.7)),
            ablations=bool(e.get("ablations", True)),
            finetune_steps=int(e.get("finetune_steps", 0)),
        )

    def cold_user_protocol(self) -> ColdUserProtocol:
        return ColdUserProtocol(user_fraction=self.cold_user_fraction, seed=self.seed)

    def name(self) -> str:
        train = 1 - self.valid_fraction - self.test_fraction
        return f"{self.method}-per-user {train:.0%}/{self.valid_fraction:.0%}/{self.test_fraction:.0%} seed {self.seed}, full ranking"

    def as_params(self) -> dict[str, object]:
        return {
            "protocol": self.method,
            "valid_fraction": self.valid_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "ks": ",".join(map(str, self.ks)),
            "cold_item_max_train": self.cold_item_max_train,
        }


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

    def wide(self, slice_: str = "all") -> pd.DataFrame:
        """One row per model (in run order), one column per metric."""
        m = self.metrics[self.metrics["slice"] == slice_]
        return m.pivot(index="model", columns="metric", values="value").reindex(pd.unique(m["model"]))


def held_out_description_mask(descriptions: pd.DataFrame, held_out: pd.DataFrame) -> np.ndarray:
    """True for descriptions that may be used: not a user's words about one of their held-out pairs."""
    if not len(descriptions):
        return np.zeros(0, dtype=bool)
    key = descriptions["user_id"].astype(str) + "\x1f" + descriptions["item_id"].fillna("").astype(str)
    held = set(held_out["user_id"].astype(str) + "\x1f" + held_out["item_id"].astype(str))
    return ~key.isin(held).to_numpy()


def before_cut_mask(descriptions: pd.DataFrame, split: pd.DataFrame) -> np.ndarray:
    """Temporal protocol: True for words their author wrote before their own cut.

    A user's cut is the earliest timestamp of their held-out (valid or test) interactions:
    what they wrote at or after it — about any item, or none — is future to every model,
    exactly like their later interactions. Undated words of a user with a cut cannot be
    placed before it and are dropped too. Users with nothing held out keep everything.
    """
    if not len(descriptions):
        return np.zeros(0, dtype=bool)
    held = split[split["split"] != "train"]
    cut = pd.Series(time_key(held["timestamp"]), index=held["user_id"].astype(str).to_numpy()).groupby(level=0).min()
    user_cut = descriptions["user_id"].astype(str).map(cut).to_numpy(np.float64)
    written = descriptions["timestamp"] if "timestamp" in descriptions else pd.Series(np.nan, index=descriptions.index)
    when = time_key(written.astype("float64") if pd.api.types.is_numeric_dtype(written) else written)
    has_cut = ~np.isnan(user_cut)
    return ~has_cut | (~np.isnan(when) & (when < user_cut))


def split_for(interactions: pd.DataFrame, protocol: EvaluationProtocol) -> tuple[pd.DataFrame, SplitCounts]:
    """The protocol's split; a temporal split needs a timestamp on every interaction."""
    if protocol.method == "temporal":
        ts = interactions["timestamp"] if "timestamp" in interactions else None
        if ts is None or ts.isna().any():
            missing = len(interactions) if ts is None else int(ts.isna().sum())
            raise ValueError(
                f"temporal evaluation needs a timestamp on every interaction ({missing} of "
                f"{len(interactions)} have none); use method='random'"
            )
    return split_interactions(
        interactions,
        valid_fraction=protocol.valid_fraction,
        test_fraction=protocol.test_fraction,
        seed=protocol.seed,
        method=protocol.method,
    )


def _run_baselines(names, X_train, X_valid, X_test, protocol, popularity, cold, ease_max_items, progress):
    """Metric rows, params, validation tables and skip reasons of each baseline."""
    rows, params, tables, skipped = [], {}, {}, {}
    for name in names:
        res = run_baseline(name, X_train, X_valid, X_test, ks=protocol.ks, cold_items=cold,
                           item_popularity=popularity, metric=TUNING_METRIC,
                           ease_max_items=ease_max_items, progress=progress)
        params[name] = res.params
        if len(res.tuning):
            tables[name] = res.tuning
        if res.skipped:
            skipped[name] = res.skipped
        else:
            rows += metric_rows(name, res.metrics)
    return rows, params, tables, skipped


def _hybrid_params(config: HybridConfig, model) -> dict[str, dict]:
    return {
        "hybrid": config.as_params(),
        "fusion": config.as_params(),
        "cf": config.cf_params(),
        "text": {"description_share": config.description_share, "said_share": config.said_share},
        "lexical": {"bm25_k1": model.bm25_.k1, "bm25_b": model.bm25_.b},
        "kg": {"entities": int(model.kg_["E"].shape[1]) if model.kg_ else 0},
    }


def require_evaluable_users(interactions: pd.DataFrame, protocol: EvaluationProtocol) -> None:
    """``DatasetError`` in one line when the protocol's split would hold out nothing to test on."""
    _require_evaluable_users(interactions, split_for(interactions, protocol)[1], protocol)


def _require_evaluable_users(interactions: pd.DataFrame, counts: SplitCounts, protocol: EvaluationProtocol) -> None:
    """One clear line when the split holds out nothing to test on (header-only or all-unknown
    interactions; douban-moviedata-small, whose 974 users have 1,000 ratings): otherwise every
    metric is NaN, is stored as NULL, and a later check fails on it with a TypeError."""
    if counts.n_test > 0:
        return
    from reclm_dagster.datasets.schema import DatasetError
    from reclm_dagster.evaluation.split import holdout_sizes

    # split_interactions' rule: users with < 3 interactions are never split, and a hold-out of
    # round(n * fraction) is 0 for small n; the fewest interactions that give a test item:
    sizes = np.arange(3, 10_001)
    gives_test = holdout_sizes(sizes, protocol.valid_fraction, protocol.test_fraction, 3)[1] > 0
    need = f"≥ {sizes[gives_test][0]}" if gives_test.any() else "more than 10,000"
    per_user = interactions["user_id"].value_counts()
    raise DatasetError(
        f"no user can be evaluated: a per-user test hold-out at test fraction {protocol.test_fraction:g} needs {need} "
        f"interactions per user (≥ 3 for any hold-out); of {len(per_user)} users none has that many "
        f"({int((per_user >= 3).sum())} have ≥ 3, the most is {int(per_user.max()) if len(per_user) else 0}); "
        "free-text requests can still be evaluated from the descriptions: `reclm eval --queries`"
    )


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
) -> EvaluationResult:
    """The hybrid, its single signals and the baselines, on one split, tuned on validation, reported on test.

    ``finetune_base``: the transformer folder (or '' for the packaged MiniLM) that
    ``hybrid@finetuned`` fine-tunes when ``protocol.finetune_steps`` > 0; None when the dataset's
    encoder is no transformer (the ablation is then skipped, with the reason).
    ``encoder_recipe``: the ``TRAINED_ON`` record of a dataset encoder that was fine-tuned on
    rows this split holds out. Its weights have seen the test pairs, so the evaluation measures
    its recipe instead: the same fine-tuning on this split's train rows, and every text signal
    reads that encoder (``EvaluationResult.encoder_version``).
    """
    laps = LapClock()
    split, counts = split_for(tables.interactions, protocol)
    _require_evaluable_users(tables.interactions, counts, protocol)
    train = split[split["split"] == "train"]
    valid = split[split["split"] == "valid"]
    test = split[split["split"] == "test"]
    mask = held_out_description_mask(tables.descriptions, pd.concat([valid, test]))
    if protocol.method == "temporal":
        mask &= before_cut_mask(tables.descriptions, split)
    matrix = InteractionMatrix(train, users=tables.all_users(), items=tables.items["item_id"].astype(str).to_numpy())
    X_train = matrix.X
    X_valid, _ = matrix.align(valid)
    X_test, _ = matrix.align(test)
    history = (X_train + X_valid).tocsr()  # what the user is known to have consumed at test time
    laps("split")
    recipe_params, cold_tables = {}, tables
    if encoder_recipe is not None:
        # The cold-user fit holds out rows of the main train split, which the retrained encoder has
        # seen: it reads the base model instead (no fine-tuning at all, so nothing of theirs).
        from reclm_dagster.encoders.transformer import TransformerEncoder

        cold_tables = tables.with_encoder(TransformerEncoder(encoder_recipe.get("base_model") or None))
        train_knobs = {k: v for k, v in (encoder_recipe.get("params") or {}).items() if k in RECIPE_KNOBS}
        encoder, recipe_params = finetuned_encoder(
            finetune_pairs(tables, train, mask, int(train_knobs.get("seed", protocol.seed))), protocol, dataset,
            encoder_recipe.get("base_model") or None, **train_knobs)
        tables = tables.with_encoder(encoder)
        laps("encoder recipe retrained")
    popularity = np.asarray((X_train > 0).sum(axis=0)).ravel()
    cold = popularity <= protocol.cold_item_max_train

    # Baselines first: the hybrid's EASE reuses the ridge λ that validation chose for EASE.
    b_rows, b_params, b_tables, skipped = _run_baselines(
        baselines, X_train, X_valid, X_test, protocol, popularity, cold, ease_max_items, progress
    )
    laps("baselines")
    if config.cf_model == "ease" and "l2" in b_params.get("ease", {}):
        config = replace(config, ease_l2=float(b_params["ease"]["l2"]))
    tuned = protocol.tune_weights and X_valid.nnz > 0
    model, config, tuning = fit_tuned_hybrid(tables, train, mask, config, X_valid, popularity, tune=tuned, progress=progress)
    laps("hybrid fit and tuning")
    cold_rows, cold_tuning = [], pd.DataFrame()
    if protocol.cold_users and "hybrid" in models:
        # Cold users are left out of a second fit; it also tunes the short-history popularity weight.
        # Its users come from the main split's train rows and it may not see the main split's held-out
        # words, so the popularity prior it tunes (and the hybrid reported on test uses) never saw test data.
        # Its p is judged for each fade half-life on the cold users; the main validation users, whose
        # long histories decide how much of p is left, then pick the half-life (tests never seen).
        half_life_scores: dict[float, float] = {}

        def choose_half_life(p_for: dict[float, float]) -> float:
            options = list(p_for.items())
            scores = validation_ndcg(model, X_train, X_valid, popularity, [
                replace(config, short_history_popularity=p, short_history_half_life=c) for c, p in options])
            half_life_scores.update({c: s for (c, _), s in zip(options, scores)})
            return options[int(np.argmax(scores))][0]

        cold_result = cold_user_evaluation(cold_tables, config, config.ease_l2, protocol.cold_user_protocol(),
                                           interactions=train, description_mask=mask, progress=progress,
                                           half_lives=HALF_LIFE_GRID if tuned else None,
                                           choose_half_life=choose_half_life if tuned else None)
        cold_rows, cold_tuning = list(cold_result.metrics.itertuples(index=False, name=None)), cold_result.tuning
        if half_life_scores:
            cold_tuning = cold_tuning.assign(main_valid_ndcg_at_10=cold_tuning["short_history_half_life"].map(
                half_life_scores).where(cold_tuning.groupby("short_history_half_life")["ndcg@10"].transform("max")
                                        == cold_tuning["ndcg@10"]))
        config = replace(config, short_history_popularity=cold_result.short_history_popularity,
                         short_history_half_life=cold_result.short_history_half_life)
        model.config = config
        gc.collect()
        laps("cold users")
    reranker_report = {}
    if tuned and protocol.rerank:
        reranker_report = attach_reranker(model, X_train, X_valid, popularity, seed=protocol.seed)
        laps("re-ranker")

    rows = []
    for name in models:
        result = evaluate(
            model.scorer(name, history),
            train_X=X_train,
            test_X=X_test,
            exclude_X=history,
            ks=protocol.ks,
            cold_items=cold,
            item_popularity=popularity,
            progress=progress,
        )
        rows += metric_rows(name, result)
    if protocol.mmr_lambda is not None and model.kg_ is not None and "hybrid" in models:
        rows += _diversity_rows(model, history, X_train, X_test, protocol, cold, popularity, progress)
    laps("test scoring")
    ablation, finetuned = AblationResult(), None
    if protocol.ablations and tuned and "hybrid" in models:
        if protocol.finetune_steps > 0 and finetune_base is None:
            skipped[FINETUNED] = "the dataset's encoder is not a transformer folder to fine-tune"
        elif protocol.finetune_steps > 0:
            finetuned = finetuned_encoder(finetune_pairs(tables, train, mask, protocol.seed), protocol, dataset,
                                          finetune_base or None)
            laps("fine-tuning")
        ablation = run_ablations(model, tables, matrix.users, matrix.items, X_train, X_valid, X_test, history,
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
    reranker = model.reranker_
    del model  # side-information EASE holds an n_items² array: free it
    gc.collect()
    rows += cold_rows

    metrics = pd.DataFrame(rows + b_rows, columns=["model", "slice", "metric", "value"])
    return EvaluationResult(
        metrics, split[["user_id", "item_id", "split"]], counts, int((~mask).sum()), dict(config.weights), tuning,
        params={**params, **b_params}, baseline_tuning=b_tables, skipped=skipped, reranker=reranker,
        cold_user_tuning=cold_tuning, hybrid_config=config, model_encoders=ablation.encoders,
        encoder_version=tables.encoder_version, stages=laps.table(),
    )


def _diversity_rows(model, history, X_train, X_test, protocol, cold, popularity, progress):
    """``hybrid_mmr`` (KG-aware MMR over the hybrid's top 50) and ``ild@10`` of both lists."""
    E = model.kg_["E"]
    hybrid = model.scorer("hybrid", history)
    mmr = mmr_scorer(hybrid, history, E, lambda_=protocol.mmr_lambda)
    result = evaluate(mmr, train_X=X_train, test_X=X_test, exclude_X=history, ks=protocol.ks, cold_items=cold,
                      item_popularity=popularity, progress=progress)
    users = np.flatnonzero(np.diff(sp.csr_matrix(X_test).indptr) > 0)
    rows = metric_rows("hybrid_mmr", result)
    rows.append(("hybrid_mmr", "all", "ild@10", list_diversity(mmr, users, history, E)))
    rows.append(("hybrid", "all", "ild@10", list_diversity(hybrid, users, history, E)))
    return rows


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
    X_test, _ = matrix.align(split[split["split"] == "test"])
    popularity = np.asarray((matrix.X > 0).sum(axis=0)).ravel()
    cold = popularity <= protocol.cold_item_max_train
    rows, params, tables, skipped = _run_baselines(
        baselines, matrix.X, X_valid, X_test, protocol, popularity, cold, ease_max_items, progress
    )
    metrics = pd.DataFrame(rows, columns=["model", "slice", "metric", "value"])
    return EvaluationResult(
        metrics, split[["user_id", "item_id", "split"]], counts, 0, {}, pd.DataFrame(),
        params=params, baseline_tuning=tables, skipped=skipped,
    )
