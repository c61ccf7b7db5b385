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
import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation.baselines import BASELINES, EASE_MAX_ITEMS, run_baseline
from reclm_dagster.evaluation.cold_users import ColdUserProtocol, cold_user_evaluation
from reclm_dagster.evaluation.diversity import list_diversity, mmr_scorer
from reclm_dagster.evaluation.protocol import evaluate
from reclm_dagster.evaluation.split import SplitCounts, split_interactions
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.models.reranker import LearnedReranker, RerankerConfig
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.training import DatasetTables, fit_hybrid

# reclm's hybrid, its fusion without the re-ranker and its single signals; popularity is 'pop'.
MODELS = ("hybrid", "fusion", "cf", "text", "lexical", "kg")
METHODS = ("random", "temporal")
# Fusion weights tried on the validation split (CF's weight stays 1: only ratios matter).
WEIGHT_GRID = {"text": (0.0, 0.1, 0.25, 0.5), "lexical": (0.0, 0.1, 0.25)}
# The knowledge-graph signal's weights, tried on top of the best text/lexical setting.
KG_WEIGHT_GRID = (0.1, 0.25, 0.5)
# Weights g of the item side information in the hybrid's EASE, tried on validation.
SIDE_WEIGHT_GRID = (0.5, 1.0, 2.0)
TUNING_METRIC = "ndcg@10"


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


def metric_rows(model: str, result: dict) -> list[tuple[str, str, str, float]]:
    """``evaluate()`` output as (model, slice, metric, value) rows."""
    rows = []
    for slice_name, values in (("all", result), ("cold", result.get("cold", {}))):
        for metric, value in values.items():
            if isinstance(value, (int, float, np.floating, np.integer)):
                rows.append((model, slice_name, metric, float(value)))
    return rows


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


def offline_evaluation(
    tables: DatasetTables,
    protocol: EvaluationProtocol,
    config: HybridConfig,
    models: tuple[str, ...] = MODELS,
    progress: bool = False,
    baselines: tuple[str, ...] = BASELINES,
    ease_max_items: int = EASE_MAX_ITEMS,
) -> EvaluationResult:
    """The hybrid, its single signals and the baselines, on one split, tuned on validation, reported on test."""
    split, counts = split_for(tables.interactions, protocol)
    train = split[split["split"] == "train"]
    valid = split[split["split"] == "valid"]
    test = split[split["split"] == "test"]
    mask = held_out_description_mask(tables.descriptions, pd.concat([valid, test]))
    matrix = InteractionMatrix(train, users=tables.all_users(), items=tables.items["item_id"].astype(str).to_numpy())
    X_train = matrix.X
    X_valid, _ = matrix.align(valid)
    X_test, _ = matrix.align(test)
    history = (X_train + X_valid).tocsr()  # what the user is known to have consumed at test time
    popularity = np.asarray((X_train > 0).sum(axis=0)).ravel()
    cold = popularity <= protocol.cold_item_max_train

    # Baselines first: the hybrid's EASE reuses the ridge λ that validation chose for EASE.
    b_rows, b_params, b_tables, skipped = _run_baselines(
        baselines, X_train, X_valid, X_test, protocol, popularity, cold, ease_max_items, progress
    )
    if config.cf_model == "ease" and "l2" in b_params.get("ease", {}):
        config = replace(config, ease_l2=float(b_params["ease"]["l2"]))
    tuned = protocol.tune_weights and X_valid.nnz > 0
    model, config, tuning = fit_tuned_hybrid(tables, train, mask, config, X_valid, popularity, tune=tuned, progress=progress)
    cold_rows, cold_tuning = [], pd.DataFrame()
    if protocol.cold_users and "hybrid" in models:
        # Cold users are left out of a second fit; it also tunes the short-history popularity weight.
        cold_result = cold_user_evaluation(tables, config, config.ease_l2, protocol.cold_user_protocol(), progress=progress)
        cold_rows, cold_tuning = list(cold_result.metrics.itertuples(index=False, name=None)), cold_result.tuning
        config = replace(config, short_history_popularity=cold_result.short_history_popularity)
        model.config = config
        gc.collect()
    reranker_report = {}
    if tuned and protocol.rerank:
        reranker_report = attach_reranker(model, X_train, X_valid, popularity, seed=protocol.seed)

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
    params = {m: p for m, p in _hybrid_params(config, model).items() if m in models}
    if any(r[0] == "hybrid_mmr" for r in rows):
        params["hybrid_mmr"] = {"mmr_lambda": protocol.mmr_lambda, "mmr_candidates": 50, "over": "hybrid"}
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
        cold_user_tuning=cold_tuning, hybrid_config=config,
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


def attach_reranker(model, X_train, X_valid, popularity, seed: int = 0) -> dict[str, float]:
    """Train the LightGBM re-ranker on validation; keep it only if it wins on held-out validation users.

    Returns the decision's numbers: full-ranking NDCG@10 of the plain fusion and of the
    re-ranked list on the validation users the ranker did not train on.
    """
    config = RerankerConfig(seed=seed)
    users, signals = validation_signals(model, X_train, X_valid)
    if len(users) < 20:
        return {}
    fused = model.fuse(signals, model.history_length(users, X_train))
    holdout = np.random.default_rng(seed).random(len(users)) < config.holdout_fraction
    X_train, X_valid = sp.csr_matrix(X_train), sp.csr_matrix(X_valid)
    try:
        reranker = LearnedReranker(config).fit(
            signals, fused, X_train[users], X_valid[users], model.user_said(users), holdout, popularity,
        )
    except ValueError:
        return {}
    keep = np.zeros(X_valid.shape[0], dtype=np.float32)
    keep[users[holdout]] = 1.0
    X_holdout = sp.csr_matrix(sp.diags(keep) @ X_valid)
    k = int(TUNING_METRIC.split("@")[1])

    def holdout_ndcg() -> float:
        res = evaluate(model.scorer("hybrid", X_train), X_train, X_holdout, X_train, ks=(k,), item_popularity=popularity)
        return float(res[TUNING_METRIC])

    fused_value = holdout_ndcg()
    model.reranker_ = reranker
    reranked_value = holdout_ndcg()
    if reranked_value <= fused_value:
        model.reranker_ = None
    return {"holdout_fusion_ndcg10": round(fused_value, 5), "holdout_reranked_ndcg10": round(reranked_value, 5),
            "trees": int(reranker.model_.best_iteration_ or reranker.model_.n_estimators)}


def fit_tuned_hybrid(tables, train, mask, config, X_valid, popularity, tune=True, progress=False):
    """``(model, config, tuning)``: the hybrid fitted on train with the setting that validation prefers.

    For side-information EASE each ``g`` in ``SIDE_WEIGHT_GRID`` is fitted and its fusion
    weights tuned; the best (g, weights) on validation NDCG@10 wins. Without tuning the
    configured setting is fitted as is.
    """
    if not tune:
        model, _ = fit_hybrid(tables, train, description_mask=mask, config=config)
        return model, config, pd.DataFrame()
    grid = SIDE_WEIGHT_GRID if config.cf_model == "ease" else (config.side_weight,)
    best, tables_ = None, []
    for g in grid:
        candidate = replace(config, side_weight=g)
        model, matrix = fit_hybrid(tables, train, description_mask=mask, config=candidate)
        weights, table = tune_fusion_weights(model, matrix.X, X_valid, popularity)
        table.insert(0, "side_weight", g)
        tables_.append(table)
        value = float(table[TUNING_METRIC].max())
        if best is None or value > best[0]:
            best = (value, model, replace(candidate, weights=weights))
        del model
        gc.collect()
    _, model, config = best
    model.config = config
    return model, config, pd.concat(tables_, ignore_index=True)


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


def validation_signals(model, X_train, X_valid, batch_size: int = 512):
    """Every signal of the hybrid for the validation users, computed once: ``(rows, {signal: scores})``."""
    users = np.flatnonzero(np.diff(sp.csr_matrix(X_valid).indptr) > 0)
    signals = {}
    for start in range(0, len(users), batch_size):
        batch = model.score_signals(users[start : start + batch_size], X_train)
        for name, S in batch.items():
            signals.setdefault(name, []).append(S.astype(np.float32))
    return users, {name: np.concatenate(parts) for name, parts in signals.items()}


def tune_fusion_weights(model, X_train, X_valid, popularity, grid=WEIGHT_GRID, kg_grid=KG_WEIGHT_GRID) -> tuple[dict[str, float], pd.DataFrame]:
    """Grid-search the hybrid's fusion weights on the validation split (never on test).

    First text × lexical with kg off, then the knowledge-graph weight on top of the best of
    those: the table shows exactly what the KG signal adds on validation. Signals are scored
    once per validation user; each setting only re-fuses them.
    """
    users, signals = validation_signals(model, X_train, X_valid)
    lengths = model.history_length(users, X_train)
    position = np.full(X_train.shape[0], -1)
    position[users] = np.arange(len(users))
    base = dict(model.config.weights)
    k = int(TUNING_METRIC.split("@")[1])
    rows = []

    def trial(weights):
        model.config = replace(model.config, weights=weights)
        result = evaluate(lambda r: model.fuse({n: S[position[r]] for n, S in signals.items()}, lengths[position[r]]),
                          train_X=X_train, test_X=X_valid, exclude_X=X_train, ks=(k,), item_popularity=popularity,
                          cold_items=popularity <= 2)
        rows.append({**weights, TUNING_METRIC: float(result[TUNING_METRIC]),
                     "cold_recall@10": float(result.get("cold", {}).get("recall@10", float("nan")))})

    for values in itertools.product(*grid.values()):
        trial({**base, "cf": 1.0, "kg": 0.0, **dict(zip(grid, values))})
    stage1 = pd.DataFrame(rows)
    best = stage1.loc[stage1[TUNING_METRIC].idxmax()]
    if "kg" in signals:
        for w in kg_grid:
            trial({**{n: float(best[n]) for n in ("cf", *grid)}, "kg": w})
    model.config = replace(model.config, weights=base)
    table = pd.DataFrame(rows)
    best = table.loc[table[TUNING_METRIC].idxmax()]
    return {name: float(best[name]) for name in ("cf", *grid, "kg")}, table
