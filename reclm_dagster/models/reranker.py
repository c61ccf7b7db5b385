"""A learned re-ranker over the hybrid's candidates (LightGBM LambdaRank).

The linear fusion of z-scores is one fixed way to weigh behaviour against words; a
gradient-boosted ranker learns how much each signal should count *for this user and
this item*: text matters more for a cold item or a user with three plays, CF more for
a heavy listener. It re-orders a candidate set per user:

- the top ``n_candidates`` items by the fused hybrid score, plus
- the top ``n_cold_candidates`` cold items (≤ ``cold_max_train`` train interactions) by
  text similarity, so items CF cannot reach are at least considered.

Features per (user, candidate): each signal's per-user z-score and log-rank, the fused
score, the item's log-popularity and cold flag, the user's history length and whether
they said anything. It is trained on the **validation** split only (labels: validation
interactions; features: models fitted on train); items outside the candidate set keep the
fused order below it. ``split_validation_users`` gives the validation users three disjoint,
seeded roles: *train* (fit the trees), *early stop* (LightGBM's eval set) and *decide*
(whether the ranker replaces the plain fusion, by full-ranking NDCG@10 in
``evaluation/tuning.py``) — users that stopped the boosting would flatter the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from reclm_dagster.cores import default_jobs
from reclm_dagster.models.fusion import ordinal_ranks, zscore_rows
from reclm_dagster.models.signals import RERANK_SIGNALS

RANK_SIGNALS = RERANK_SIGNALS  # the registry's re-ranker features (models/signals.py): cf, text, lexical
FEATURES = (
    *(f"{name}_{kind}" for name in RANK_SIGNALS for kind in ("z", "logrank")),
    "fused_z", "item_logpop", "item_cold", "user_loghist", "user_said",
)


def _log_ranks(S: np.ndarray) -> np.ndarray:
    return np.log1p(ordinal_ranks(S)).astype(np.float32)


@dataclass
class RerankerConfig:
    n_candidates: int = 100
    n_cold_candidates: int = 20
    cold_max_train: int = 2
    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    early_stopping_rounds: int = 30
    holdout_fraction: float = 0.4  # validation users kept out of tree fitting: early stop + decide
    decide_fraction: float = 0.2  # of all validation users, the part of the holdout kept for the use/skip decision
    seed: int = 0  # also seeds the split of validation users into roles


class NotEnoughRerankerData(ValueError):
    """Too few validation users (with a candidate hit) to train or judge the re-ranker: the one
    expected reason to go without it; any other error of fitting is a bug and must surface."""


@dataclass(frozen=True)
class UserRoles:
    """Disjoint boolean masks over the validation users (one entry per user)."""

    train: np.ndarray  # fit the trees
    early_stop: np.ndarray  # LightGBM's eval set for early stopping
    decide: np.ndarray  # the keep/drop decision only: never seen by ``fit``

    def sizes(self) -> dict[str, int]:
        return {"train_users": int(self.train.sum()), "early_stop_users": int(self.early_stop.sum()),
                "decide_users": int(self.decide.sum())}


def split_validation_users(n_users: int, config: RerankerConfig) -> UserRoles:
    """Seeded, deterministic roles of ``n_users`` validation users (one uniform draw each)."""
    if not 0 < config.decide_fraction < config.holdout_fraction < 1:
        raise ValueError("need 0 < decide_fraction < holdout_fraction < 1")
    u = np.random.default_rng(config.seed).random(n_users)
    decide = u < config.decide_fraction
    early_stop = (u >= config.decide_fraction) & (u < config.holdout_fraction)
    return UserRoles(train=~(decide | early_stop), early_stop=early_stop, decide=decide)


class CandidateFeatures:
    """Turns per-signal scores of a user batch into candidate (row, item) pairs and features."""

    def __init__(self, config: RerankerConfig, item_popularity: np.ndarray):
        self.config = config
        pop = np.asarray(item_popularity, np.float64)
        self.item_logpop = np.log1p(pop).astype(np.float32)
        self.item_cold = (pop <= config.cold_max_train).astype(np.float32)

    def candidates(self, fused: np.ndarray, text: np.ndarray | None, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, items)`` of each user's candidates; consumed items never are."""
        n_rows, n_items = fused.shape
        masked = np.where(history.toarray() > 0, -np.inf, fused)
        chosen = np.zeros((n_rows, n_items), dtype=bool)
        n = min(self.config.n_candidates, n_items)
        top = np.argpartition(-masked, n - 1, axis=1)[:, :n]
        np.put_along_axis(chosen, top, True, axis=1)
        cold = self.item_cold > 0
        if text is not None and self.config.n_cold_candidates and cold.any():
            cold_ids = np.flatnonzero(cold)
            cold_text = np.where(np.isneginf(masked[:, cold_ids]), -np.inf, text[:, cold_ids])
            m = min(self.config.n_cold_candidates, len(cold_ids))
            best = np.argpartition(-cold_text, m - 1, axis=1)[:, :m]
            np.put_along_axis(chosen, cold_ids[best], True, axis=1)
        chosen &= np.isfinite(masked)
        return np.nonzero(chosen)

    def features(self, signals: dict[str, np.ndarray], fused: np.ndarray, rows: np.ndarray, items: np.ndarray,
                 history: sp.csr_matrix, user_said: np.ndarray) -> np.ndarray:
        cols = []
        for name in RANK_SIGNALS:
            S = signals.get(name)
            if S is None:
                cols += [np.zeros(len(rows), np.float32)] * 2
                continue
            cols += [zscore_rows(S)[rows, items], _log_ranks(S)[rows, items]]
        cols.append(zscore_rows(fused)[rows, items])
        cols.append(self.item_logpop[items])
        cols.append(self.item_cold[items])
        cols.append(np.log1p(np.diff(history.indptr)).astype(np.float32)[rows])
        cols.append(np.asarray(user_said, np.float32)[rows])
        return np.column_stack(cols).astype(np.float32)


class LearnedReranker:
    """LightGBM LambdaRank over ``CandidateFeatures``; ``fit`` on validation, ``rerank`` any batch."""

    def __init__(self, config: RerankerConfig | None = None):
        self.config = config or RerankerConfig()

    def _ranker(self, n_jobs: int):
        from lightgbm import LGBMRanker

        c = self.config
        return LGBMRanker(
            objective="lambdarank", n_estimators=c.n_estimators, learning_rate=c.learning_rate,
            num_leaves=c.num_leaves, min_child_samples=c.min_child_samples, random_state=c.seed,
            n_jobs=n_jobs, verbose=-1,
        )

    def fit(self, signals: dict[str, np.ndarray], fused: np.ndarray, history: sp.csr_matrix,
            labels: sp.csr_matrix, user_said: np.ndarray, holdout: np.ndarray,
            item_popularity: np.ndarray, n_jobs: int | None = None, batch_size: int = 512,
            train: np.ndarray | None = None) -> "LearnedReranker":
        """Train on validation users: row ``r`` of every argument is one user.

        ``labels``: their validation interactions; ``history``: their train interactions;
        ``holdout``: users kept out of training for early stopping; ``train``: users that fit
        the trees (default: all others). Users in neither are not looked at — the ones the
        keep/drop decision is made on. Raises ``NotEnoughRerankerData`` when either set has no
        user with a candidate hit.
        """
        return self.fit_batches(lambda sl: ({k: v[sl] for k, v in signals.items()}, fused[sl]), history, labels,
                                user_said, holdout, item_popularity, n_jobs=n_jobs, batch_size=batch_size, train=train)

    def fit_batches(self, score_batch, history: sp.csr_matrix, labels: sp.csr_matrix, user_said: np.ndarray,
                    holdout: np.ndarray, item_popularity: np.ndarray, n_jobs: int | None = None,
                    batch_size: int = 512, train: np.ndarray | None = None) -> "LearnedReranker":
        """``fit`` with the scores made batch by batch: ``score_batch(rows slice) -> (signals, fused)``,
        so only one batch of users × items scores is ever held (the rest as in ``fit``)."""
        import lightgbm

        holdout = np.asarray(holdout, bool)
        train = ~holdout if train is None else np.asarray(train, bool)
        if (train & holdout).any():
            raise ValueError("re-ranker training and early-stopping users must be disjoint")
        self.features_ = CandidateFeatures(self.config, item_popularity)
        history, labels = sp.csr_matrix(history), sp.csr_matrix(labels)
        parts = {True: ([], [], []), False: ([], [], [])}  # holdout? -> (X, y, group sizes)
        members = {True: holdout, False: train}
        for start in range(0, history.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            sig, fused = score_batch(sl)
            rows, items = self.features_.candidates(fused, sig.get("text"), history[sl])
            X = self.features_.features(sig, fused, rows, items, history[sl], user_said[sl])
            y = np.asarray(labels[sl][rows, items]).ravel() > 0
            n = fused.shape[0]
            sizes = np.bincount(rows, minlength=n)
            has_pos = np.bincount(rows[y], minlength=n) > 0  # only users with a hit teach anything
            for flag in (True, False):
                keep = np.flatnonzero(members[flag][sl] & has_pos)
                take = np.isin(rows, keep)  # rows are sorted, so groups stay contiguous
                parts[flag][0].append(X[take])
                parts[flag][1].append(y[take].astype(np.int32))
                parts[flag][2].append(sizes[keep])
            del sig, fused, X  # one batch's scores at a time
        (Xf, yf, gf), (Xh, yh, gh) = ([np.concatenate(p) for p in parts[f]] for f in (False, True))
        if not len(gf) or not len(gh):
            raise NotEnoughRerankerData("not enough validation users with a candidate hit to train the re-ranker")
        self.model_ = self._ranker(n_jobs or default_jobs()).fit(
            Xf, yf, group=gf, eval_X=(Xh,), eval_y=(yh,), eval_group=[gh], eval_at=[10],
            callbacks=[lightgbm.early_stopping(self.config.early_stopping_rounds, verbose=False)],
        )
        self.n_training_rows_ = int(len(yf))
        return self

    def rerank(self, signals: dict[str, np.ndarray], fused: np.ndarray, history: sp.csr_matrix, user_said: np.ndarray) -> np.ndarray:
        """Scores (batch × items): candidates by the ranker, everything else below in fused order."""
        rows, items = self.features_.candidates(fused, signals.get("text"), history)
        out = np.array(fused, dtype=np.float32)
        if len(rows):
            X = self.features_.features(signals, fused, rows, items, history, user_said)
            pred = np.asarray(self.model_.predict(X), np.float64)
            # lift each user's candidates above all their other items, keeping the ranker's order
            finite = np.where(np.isfinite(out), out, -np.inf).max(axis=1)
            low = np.full(out.shape[0], np.inf)
            np.minimum.at(low, rows, pred)
            shift = np.where(np.isfinite(finite), finite, 0.0) - low + 1.0
            out[rows, items] = (pred + shift[rows]).astype(np.float32)
        return out

    def to_model_string(self) -> str:
        return self.model_.booster_.model_to_string()

    @classmethod
    def from_model_string(cls, text: str, item_popularity: np.ndarray, config: RerankerConfig | None = None) -> "LearnedReranker":
        """A stored ranker, with candidate features computed from ``item_popularity`` (e.g. all data)."""
        import lightgbm

        self = cls(config)
        self.features_ = CandidateFeatures(self.config, item_popularity)
        self.model_ = lightgbm.Booster(model_str=text)
        return self

    def feature_importance(self) -> dict[str, float]:
        booster = getattr(self.model_, "booster_", self.model_)
        gains = booster.feature_importance(importance_type="gain")
        total = gains.sum() or 1.0
        return {name: float(g / total) for name, g in zip(FEATURES, gains)}
