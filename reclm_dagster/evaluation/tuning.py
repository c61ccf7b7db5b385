"""Choosing the hybrid's setting on the validation split — never on test.

``fit_tuned_hybrid`` fits side-information EASE for each ``g`` and grid-searches the fusion
weights on validation (signals scored once per validation user, re-fused per setting);
``attach_reranker`` trains the LightGBM re-ranker on validation and keeps it only if it wins
on validation users it neither trained nor early-stopped on.
"""

from __future__ import annotations

import copy
import gc
import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation.metrics import metrics_from_hits
from reclm_dagster.evaluation.protocol import evaluate, relevant_matrix
from reclm_dagster.models.fusion import zscore_rows
from reclm_dagster.models.ranking import topk
from reclm_dagster.models.reranker import LearnedReranker, NotEnoughRerankerData, RerankerConfig, split_validation_users
from reclm_dagster.training import fit_hybrid

# Fusion weights tried on the validation split (CF's weight stays 1: only ratios matter).
WEIGHT_GRID = {"text": (0.0, 0.1, 0.25, 0.5), "lexical": (0.0, 0.1, 0.25)}
# The knowledge-graph signal's weights, tried on top of the best text/lexical setting.
KG_WEIGHT_GRID = (0.1, 0.25, 0.5)
# Weights g of the item side information in the hybrid's EASE, tried on validation.
SIDE_WEIGHT_GRID = (0.5, 1.0, 2.0)
TUNING_METRIC = "ndcg@10"
# The re-ranker replaces the fusion only when its paired per-user NDCG@10 gain on held-out
# validation users (neither trained nor early-stopped on) is at least this many standard errors above zero.
RERANKER_MIN_Z = 2.0
# Fewer validation users than this cannot fill three roles (train, early stop, decide).
RERANKER_MIN_USERS = 20
# Half-lives c of the short-history popularity fade p·2^(-|history|/c), each with the p the cold
# users chose for it; the main validation users (long histories) pick one.
HALF_LIFE_GRID = (4.0, 2.0, 1.0, 0.5)
# Weights of the cold-item boost (models/hybrid.py COLD_BOOST), tried last.
COLD_BOOST_GRID = (0.5, 1.0, 2.0)
# Fusion settings within this relative distance of the best validation NDCG@10 count as
# ties; among them the one that reaches cold items best (validation cold Recall@10) wins.
COLD_TIE_TOLERANCE = 0.01


def validation_users(X_valid) -> np.ndarray:
    """Rows of the users with at least one validation interaction."""
    return np.flatnonzero(np.diff(sp.csr_matrix(X_valid).indptr) > 0)


def validation_signals(model, X_train, X_valid, batch_size: int = 512):
    """Every signal of the hybrid for the validation users, computed once: ``(rows, {signal: scores})``."""
    users = validation_users(X_valid)
    signals: dict[str, np.ndarray] = {}
    for start in range(0, len(users), batch_size):
        batch = model.score_signals(users[start : start + batch_size], X_train)
        for name, S in batch.items():
            if name not in signals:  # filled batch by batch: no list of parts and concatenated copy
                signals[name] = np.empty((len(users), S.shape[1]), dtype=np.float32)
            signals[name][start : start + len(S)] = S
    return users, signals


class ValidationFusion:
    """The validation users' signals, z-scored once: each fusion setting only re-weights them.

    ``fuse`` z-scores every signal per user row; the z-scores do not depend on the weights, so
    a grid of settings shares them (the same float32 arrays ``fuse`` would compute, so every
    setting scores exactly as ``model.fuse`` on the raw signals would).
    """

    def __init__(self, model, X_train, X_valid, block: int = 512):
        self.users, signals = validation_signals(model, X_train, X_valid)
        for name, S in signals.items():  # in place, a block of rows at a time: no second full copy
            for start in range(0, len(S), block):
                S[start : start + block] = zscore_rows(S[start : start + block])
        self.z = signals
        self.lengths = model.history_length(self.users, X_train)
        self.position = np.full(X_train.shape[0], -1)
        self.position[self.users] = np.arange(len(self.users))
        self.X_train, self.X_valid = X_train, X_valid

    def _rows(self, user_rows: np.ndarray):
        p = self.position[user_rows]
        if len(p) and p[-1] - p[0] + 1 == len(p) and np.all(np.diff(p) == 1):
            return slice(int(p[0]), int(p[-1]) + 1)  # evaluate walks the users in order: a view, no copy
        return p

    def ndcg(self, model, config, popularity, k: int) -> dict:
        """``evaluate`` on validation of ``model`` fused with ``config`` (no re-ranker)."""
        saved, model.config = model.config, config
        try:
            return evaluate(lambda r: model.fuse({n: Z[self._rows(r)] for n, Z in self.z.items()},
                                                 self.lengths[self._rows(r)], zscored=True),
                            train_X=self.X_train, test_X=self.X_valid, exclude_X=self.X_train, ks=(k,),
                            item_popularity=popularity, cold_items=popularity <= 2)
        finally:
            model.config = saved


def tune_fusion_weights(model, X_train, X_valid, popularity, grid=WEIGHT_GRID, kg_grid=KG_WEIGHT_GRID) -> tuple[dict[str, float], pd.DataFrame]:
    """Grid-search the hybrid's fusion weights on the validation split (never on test).

    First text × lexical with kg off, then the knowledge-graph weight on top of the best of
    those: the table shows exactly what the KG signal adds on validation. Signals are scored
    and z-scored once per validation user; each setting only re-fuses them.
    """
    fusion = ValidationFusion(model, X_train, X_valid)
    base = dict(model.config.weights)
    k = int(TUNING_METRIC.split("@")[1])
    rows = []

    def trial(weights):
        result = fusion.ndcg(model, replace(model.config, weights=weights), popularity, k)
        rows.append({**weights, TUNING_METRIC: float(result[TUNING_METRIC]),
                     "cold_recall@10": float(result.get("cold", {}).get("recall@10", float("nan")))})

    for values in itertools.product(*grid.values()):
        trial({**base, "cf": 1.0, "kg": 0.0, "cold": 0.0, **dict(zip(grid, values))})
    stage1 = pd.DataFrame(rows)
    best = stage1.loc[stage1[TUNING_METRIC].idxmax()]
    if "kg" in fusion.z:
        for w in kg_grid:
            trial({**{n: float(best[n]) for n in ("cf", *grid)}, "kg": w, "cold": 0.0})
        # then the cold-item boost on top of the setting chosen so far
        so_far = pd.DataFrame(rows)
        best = so_far.loc[choose_setting(so_far)]
        for w in COLD_BOOST_GRID:
            trial({**{n: float(best[n]) for n in ("cf", *grid, "kg")}, "cold": w})
    table = pd.DataFrame(rows).fillna({"cold": 0.0})
    best = table.loc[choose_setting(table)]
    return {name: float(best[name]) for name in ("cf", *grid, "kg", "cold") if name in best}, table


def validation_ndcg(model, X_train, X_valid, popularity, configs) -> list[float]:
    """Validation NDCG@10 of the fused hybrid (no re-ranker) under each config; signals scored once."""
    fusion = ValidationFusion(model, X_train, X_valid)
    k = int(TUNING_METRIC.split("@")[1])
    return [float(fusion.ndcg(model, config, popularity, k)[TUNING_METRIC]) for config in configs]


def choose_setting(table: pd.DataFrame, tolerance: float = COLD_TIE_TOLERANCE) -> int:
    """Row index of the chosen setting: best validation NDCG@10, ties (within ``tolerance``)
    broken by validation cold-item recall — reaching the long tail is worth a rounding error."""
    top = table[TUNING_METRIC].max()
    near = table[table[TUNING_METRIC] >= (1 - tolerance) * top]
    if "cold_recall@10" in near and near["cold_recall@10"].notna().any():
        return int(near["cold_recall@10"].idxmax())
    return int(near[TUNING_METRIC].idxmax())


def attach_reranker(model, X_train, X_valid, popularity, seed: int = 0) -> dict[str, float | int | str]:
    """Train the LightGBM re-ranker on validation; keep it only if it wins on validation users it never saw.

    The validation users get three disjoint, seeded roles (``split_validation_users``): train
    (fit the trees), early stop (LightGBM's eval set) and decide. Returns the decision's
    numbers: full-ranking NDCG@10 of the plain fusion and of the re-ranked list on the decide
    users, and the size of each role. Too little data (the one expected failure) gives
    ``{"skipped": reason}``, so params and MLflow say why there is no ranker; any other error
    of fitting propagates.
    """
    config = RerankerConfig(seed=seed)
    users = validation_users(X_valid)
    if len(users) < RERANKER_MIN_USERS:
        return {"skipped": f"only {len(users)} validation users (< {RERANKER_MIN_USERS})"}
    roles = split_validation_users(len(users), config)
    if roles.decide.sum() < 2:  # no paired z on fewer
        return {"skipped": f"only {int(roles.decide.sum())} validation users to decide on", **roles.sizes()}
    X_train, X_valid = sp.csr_matrix(X_train), sp.csr_matrix(X_valid)
    lengths = model.history_length(users, X_train)

    def score_batch(rows: slice):  # the signals of one batch of users at a time, never all of them
        signals = model.score_signals(users[rows], X_train)
        return signals, model.fuse(signals, lengths[rows])

    try:
        reranker = LearnedReranker(config).fit_batches(
            score_batch, X_train[users], X_valid[users], model.user_said(users),
            holdout=roles.early_stop, train=roles.train, item_popularity=popularity,
        )
    except NotEnoughRerankerData as e:
        return {"skipped": str(e), **roles.sizes()}
    decide_users = users[roles.decide]
    k = int(TUNING_METRIC.split("@")[1])
    fused_values = per_user_ndcg(model.scorer("hybrid", X_train), X_valid, X_train, decide_users, k)
    model.reranker_ = reranker
    reranked_values = per_user_ndcg(model.scorer("hybrid", X_train), X_valid, X_train, decide_users, k)
    # Keep the ranker only for a clear, paired win on users it never trained or stopped on:
    # a few hundred users make a mean difference of a fraction of a percent pure noise.
    diff = reranked_values - fused_values
    z = float(diff.mean() / (diff.std(ddof=1) / np.sqrt(len(diff)))) if len(diff) > 1 and diff.std() > 0 else 0.0
    if z < RERANKER_MIN_Z:
        model.reranker_ = None
    return {"decide_fusion_ndcg10": round(float(fused_values.mean()), 5),
            "decide_reranked_ndcg10": round(float(reranked_values.mean()), 5),
            "decide_paired_z": round(z, 2), **roles.sizes(),
            "trees": int(reranker.model_.best_iteration_ or reranker.model_.n_estimators)}


def per_user_ndcg(score_fn, X_target, exclude, users: np.ndarray, k: int = 10, batch_size: int = 512) -> np.ndarray:
    """NDCG@k of each of ``users`` (full ranking, ``exclude`` items removed) against ``X_target``."""
    R = relevant_matrix(X_target, exclude)
    exclude = sp.csr_matrix(exclude)
    users = users[np.diff(R.indptr)[users] > 0]
    values = []
    for start in range(0, len(users), batch_size):
        rows = users[start : start + batch_size]
        idx, _ = topk(np.asarray(score_fn(rows), np.float32), k, exclude=exclude[rows])
        valid = idx >= 0
        hits = np.take_along_axis(R[rows].toarray() > 0, np.where(valid, idx, 0), axis=1) & valid
        values.append(metrics_from_hits(hits, np.diff(R[rows].indptr), k)["ndcg"])
    return np.concatenate(values) if values else np.zeros(0)


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
    first, matrix = fit_hybrid(tables, train, description_mask=mask, config=replace(config, side_weight=grid[0]))
    skeleton = copy.copy(first)  # text, BM25 and KG do not depend on g: each other g refits the CF alone
    skeleton.cf_ = None
    for g in grid:
        candidate = replace(config, side_weight=g)
        if g == grid[0]:
            model, first = first, None
        else:
            model = copy.copy(skeleton)
            model.config = candidate
            model.refit_cf(matrix.X, model.item_vectors_)
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
