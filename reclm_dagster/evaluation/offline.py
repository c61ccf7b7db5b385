"""The offline evaluation of reclm's models on one dataset: split, fit on train, rank fully.

No leakage: a user's own descriptions of a held-out pair (valid or test) are removed
before any text profile or model is built, and metrics are computed on held-out pairs
only, ranking every item the user has not interacted with in train (and validation).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from reclm_dagster.evaluation.protocol import evaluate
from reclm_dagster.evaluation.split import SplitCounts, split_interactions
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.training import DatasetTables, fit_hybrid

MODELS = ("hybrid", "cf", "text", "lexical", "popularity")
# Fusion weights tried on the validation split (CF's weight stays 1: only ratios matter).
WEIGHT_GRID = {"text": (0.0, 0.25, 0.5, 1.0), "lexical": (0.0, 0.25, 0.5, 1.0)}
TUNING_METRIC = "ndcg@10"


@dataclass
class EvaluationProtocol:
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    method: str = "random"
    ks: tuple[int, ...] = (5, 10, 20)
    cold_item_max_train: int = 2
    tune_weights: bool = True

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
        )

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
    tuning: pd.DataFrame  # one row per weight combination tried: weights + validation metric

    def wide(self, slice_: str = "all") -> pd.DataFrame:
        """One row per model, one column per metric."""
        m = self.metrics[self.metrics["slice"] == slice_]
        return m.pivot(index="model", columns="metric", values="value")


def held_out_description_mask(descriptions: pd.DataFrame, held_out: pd.DataFrame) -> np.ndarray:
    """True for descriptions that may be used: not a user's words about one of their held-out pairs."""
    if not len(descriptions):
        return np.zeros(0, dtype=bool)
    key = descriptions["user_id"].astype(str) + "\x1f" + descriptions["item_id"].fillna("").astype(str)
    held = set(held_out["user_id"].astype(str) + "\x1f" + held_out["item_id"].astype(str))
    return ~key.isin(held).to_numpy()


def offline_evaluation(
    tables: DatasetTables,
    protocol: EvaluationProtocol,
    config: HybridConfig,
    models: tuple[str, ...] = MODELS,
    progress: bool = False,
) -> EvaluationResult:
    split, counts = split_interactions(
        tables.interactions,
        valid_fraction=protocol.valid_fraction,
        test_fraction=protocol.test_fraction,
        seed=protocol.seed,
        method=protocol.method,
    )
    train = split[split["split"] == "train"]
    valid = split[split["split"] == "valid"]
    test = split[split["split"] == "test"]
    mask = held_out_description_mask(tables.descriptions, pd.concat([valid, test]))
    model, matrix = fit_hybrid(tables, train, description_mask=mask, config=config)
    X_train = matrix.X
    X_valid, _ = matrix.align(valid)
    X_test, _ = matrix.align(test)
    history = (X_train + X_valid).tocsr()  # what the user is known to have consumed at test time
    popularity = np.asarray((X_train > 0).sum(axis=0)).ravel()
    cold = popularity <= protocol.cold_item_max_train

    weights, tuning = dict(config.weights), pd.DataFrame()
    if protocol.tune_weights and X_valid.nnz:
        weights, tuning = tune_fusion_weights(model, X_train, X_valid, popularity)
        model.config = replace(model.config, weights=weights)

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
        for slice_name, values in (("all", result), ("cold", result.get("cold", {}))):
            for metric, value in values.items():
                if isinstance(value, (int, float, np.floating, np.integer)):
                    rows.append((name, slice_name, metric, float(value)))
    metrics = pd.DataFrame(rows, columns=["model", "slice", "metric", "value"])
    return EvaluationResult(metrics, split[["user_id", "item_id", "split"]], counts, int((~mask).sum()), weights, tuning)


def tune_fusion_weights(model, X_train, X_valid, popularity, grid=WEIGHT_GRID) -> tuple[dict[str, float], pd.DataFrame]:
    """Grid-search the hybrid's fusion weights on the validation split (never on test)."""
    rows = []
    base = dict(model.config.weights)
    for values in itertools.product(*grid.values()):
        weights = {**base, "cf": 1.0, **dict(zip(grid, values))}
        model.config = replace(model.config, weights=weights)
        k = int(TUNING_METRIC.split("@")[1])
        result = evaluate(model.scorer("hybrid", X_train), train_X=X_train, test_X=X_valid, exclude_X=X_train, ks=(k,), item_popularity=popularity)
        rows.append({**weights, TUNING_METRIC: float(result[TUNING_METRIC])})
    model.config = replace(model.config, weights=base)
    table = pd.DataFrame(rows)
    best = table.loc[table[TUNING_METRIC].idxmax()]
    return {name: float(best[name]) for name in base if name in best}, table
