"""Cold users: people no model saw in training, who reveal 0, 1 or 3 interactions plus their words.

Protocol ("strong generalisation", as in Marlin 2004 / Liang et al. 2018, with a
cold-start twist). A seeded ``user_fraction`` of the users with at least
``min_interactions`` interactions is taken out of training entirely. Each one's
interactions are put in a seeded random order: the first ``n`` are *revealed*
(``n`` in ``reveal``, e.g. 0, 1, 3) and everything from position ``max(reveal)`` on
is *test*, so every ``n`` is scored on the same test items. Models are fitted once,
on the other users; at scoring time a cold user's history is the revealed prefix.

Words. What a cold user said about a pair that is not revealed (a test pair, or a
pair beyond ``n``) is never used: not in their profile, and — because the model is
fitted without any cold user's words about their own pairs — not in any item's text
or side information either. Words about items they did not interact with (Last.fm
users tag artists they never played) are part of their profile at every ``n``.

Inside the offline evaluation the cold users are drawn from the main split's train rows
only, and the main split's held-out words stay hidden (``interactions`` and
``description_mask``): the popularity prior tuned here is reused by the main hybrid
reported on test, so this protocol may not see that test data either.

Comparators. Pop is reported at every ``n``. EASE only from ``n = 1``: with an empty
history it scores every item 0, so its "list" is catalogue order, not a recommendation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from reclm_dagster.evaluation.protocol import evaluate, evaluate_many, metric_rows
from reclm_dagster.models.fusion import zscore_rows
from reclm_dagster.models.hybrid import HybridConfig, UserText
from reclm_dagster.models.large_catalogue import cf_for_catalogue
from reclm_dagster.models.neighbors import Popularity
from reclm_dagster.models.signals import WORD_SIGNALS
from reclm_dagster.training import DatasetTables, fit_hybrid

REVEAL = (0, 1, 3)
COLD_USER_PREFIX = "cold_users_"
ONBOARDING_PREFIX = "onboarding_"
ONBOARDING_SIGNALS = ("hybrid", *WORD_SIGNALS)


# Popularity weights for short histories tried on the validation cold users
# (4, the old top, was chosen on both real datasets: the grid reaches past it).
POPULARITY_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class ColdUserProtocol:
    user_fraction: float = 0.1  # of eligible users for test, and as many again for validation
    reveal: tuple[int, ...] = REVEAL
    min_interactions: int = 5  # max(reveal) revealed + at least 2 test items
    seed: int = 0
    max_users: int | None = None  # per role: validation cold users' signals are held users × items each

    def slice_name(self, n: int) -> str:
        return f"{COLD_USER_PREFIX}{n}"


@dataclass
class ColdUserResult:
    metrics: pd.DataFrame  # model, slice ('cold_users_<n>'), metric, value — test cold users
    short_history_popularity: float  # chosen on the validation cold users
    tuning: pd.DataFrame  # (half-life, popularity weight) -> mean validation NDCG@10 over n
    short_history_half_life: float = 3.0  # chosen with it (see cold_user_evaluation)


def cold_user_split(interactions: pd.DataFrame, protocol: ColdUserProtocol) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, cold)``: the other users' interactions, and the cold users' with ``position`` and ``role``.

    ``role`` is 'valid' (tunes the short-history popularity weight) or 'test' (reported).
    """
    df = interactions.assign(user_id=interactions["user_id"].astype(str), item_id=interactions["item_id"].astype(str))
    counts = df.groupby("user_id").size()
    eligible = np.sort(counts[counts >= protocol.min_interactions].index.to_numpy())
    rng = np.random.default_rng(protocol.seed)
    n_cold = min(int(round(len(eligible) * protocol.user_fraction)), len(eligible) // 2,
                 len(eligible) if protocol.max_users is None else protocol.max_users)
    chosen = rng.choice(eligible, size=2 * n_cold, replace=False) if n_cold else np.array([], dtype=object)
    role = dict(zip(chosen, ["test"] * n_cold + ["valid"] * n_cold))
    is_cold = df["user_id"].isin(role).to_numpy()
    cold = df[is_cold].copy()
    # seeded shuffle within each user: sort by (user, random key), then number the rows
    cold["_key"] = rng.random(len(cold))
    cold = cold.sort_values(["user_id", "_key"], kind="stable")
    cold["position"] = cold.groupby("user_id").cumcount()
    cold["role"] = cold["user_id"].map(role)
    return df[~is_cold], cold.drop(columns="_key")


def _pair_key(df: pd.DataFrame) -> pd.Series:
    return df["user_id"].astype(str) + "\x1f" + df["item_id"].fillna("").astype(str)


def unrevealed_description_mask(descriptions: pd.DataFrame, cold: pd.DataFrame, n: int) -> np.ndarray:
    """True for descriptions that may be used when cold users have revealed ``n`` interactions."""
    hidden = cold[cold["position"] >= n]
    return ~_pair_key(descriptions).isin(set(_pair_key(hidden))).to_numpy()


def cold_user_evaluation(
    tables: DatasetTables,
    config: HybridConfig,
    ease_l2: float,
    protocol: ColdUserProtocol = ColdUserProtocol(),
    ks: Sequence[int] = (10, 20),
    progress: bool = False,
    *,
    interactions: pd.DataFrame | None = None,
    description_mask: np.ndarray | None = None,
    half_lives: Sequence[float] | None = None,
    choose_half_life: Callable[[dict[float, float]], float] | None = None,
    popularity_grid: Sequence[float] = POPULARITY_GRID,
    score_test_users: bool = True,
) -> ColdUserResult:
    """``hybrid`` and ``pop`` per revealed ``n``, ``ease`` per ``n >= 1``, on the test cold users.

    The hybrid's short-history popularity weight p is chosen on the validation cold users
    (mean NDCG@10 over the revealed ``n``), one p per fade half-life in ``half_lives`` (default:
    the config's); ``choose_half_life({half-life: its p})`` then picks the pair — the caller
    judges it on users with long histories, where the fade decides how much of p remains —
    before anything is scored on test (``popularity_grid=(p,)``: a prior already chosen, kept).
    Everything else comes from ``config``. ``score_test_users=False``: choose p (and the half-life) only —
    no test cold user scored, no comparator fitted (``hybrid_selection`` needs the choice alone).
    ``interactions``: the rows this protocol may use (default: all of ``tables.interactions``).
    ``description_mask``: descriptions the caller already allows (True) or forbids; a
    forbidden one stays forbidden in the fit and in every user's profile.
    """
    train, cold = cold_user_split(tables.interactions if interactions is None else interactions, protocol)
    allowed = np.ones(len(tables.descriptions), bool) if description_mask is None else np.asarray(description_mask, bool)

    def words(n: int) -> np.ndarray:
        """Descriptions usable once cold users revealed ``n``: the caller's and not about an unrevealed pair."""
        return allowed & unrevealed_description_mask(tables.descriptions, cold, n)

    columns = ["model", "slice", "metric", "value"]
    if not len(cold):
        return ColdUserResult(pd.DataFrame([], columns=columns), config.short_history_popularity, pd.DataFrame(),
                              config.short_history_half_life)
    model, matrix = fit_hybrid(tables, train, description_mask=words(0), config=config)
    first_test = max(protocol.reveal)
    held = cold[cold["position"] >= first_test]
    X_target = {role: matrix.align(held[held["role"] == role])[0] for role in ("valid", "test")}
    popularity = np.asarray((matrix.X > 0).sum(axis=0)).ravel()
    histories = {n: matrix.align(cold[cold["position"] < n])[0] for n in protocol.reveal}
    texts = {}
    for n in protocol.reveal:
        keep = np.flatnonzero(words(n))
        texts[n] = UserText.build(matrix.users, tables.descriptions.iloc[keep], tables.description_vectors,
                                  [tables.description_tokens[i] for i in keep], config.negative_weight, positions=keep)

    def run(score_for: Callable, role: str, reveal: Sequence[int] = protocol.reveal, k: Sequence[int] = ks) -> dict:
        out = {}
        for n in reveal:
            res = evaluate(score_for(n), matrix.X, X_target[role], histories[n], ks=k, item_popularity=popularity, progress=progress)
            res.pop("cold", None)
            out[n] = res
        return out

    def hybrid_for(n):
        model.user_text_ = texts[n]
        return model.scorer("hybrid", histories[n])

    # The signals do not depend on the prior (p, c): one pass over the validation cold users per
    # revealed n scores and z-scores each batch's signals once and re-fuses them for every setting,
    # so only one batch's signals are held (all of them were: 1,342 users × 100k items × signals).
    priors = [(c, p) for c in half_lives or (config.short_history_half_life,) for p in popularity_grid]
    valid_ndcg: dict[tuple[float, float], dict[int, float]] = {s: {} for s in priors}
    for n in protocol.reveal:
        model.user_text_ = texts[n]
        batch: dict = {}

        def zscored(rows, n=n, batch=batch) -> dict:
            if batch.get("rows") is not rows:  # evaluate_many hands every scorer the same rows array
                signals = model.score_with_signals(rows, histories[n], rerank=False)[1]
                batch.update(rows=rows, z={name: zscore_rows(S) for name, S in signals.items()})
            return batch["z"]

        def refused(setting: HybridConfig, n=n):
            def score(rows):
                saved, model.config = model.config, setting
                try:
                    return model.fuse(zscored(rows), model.history_length(rows, histories[n]), zscored=True)
                finally:
                    model.config = saved
            return score

        scorers = {(c, p): refused(replace(config, short_history_popularity=p, short_history_half_life=c))
                   for c, p in priors}
        results = evaluate_many(scorers, matrix.X, X_target["valid"], histories[n], ks=(10,), item_popularity=popularity)
        for setting, res in results.items():
            valid_ndcg[setting][n] = res["ndcg@10"]
        batch.clear()
    tuning = [{"short_history_half_life": c, "short_history_popularity": p,
               "ndcg@10": float(np.nanmean(list(per_n.values()))), **{f"ndcg@10_n{n}": v for n, v in per_n.items()}}
              for (c, p), per_n in valid_ndcg.items()]
    tuning = pd.DataFrame(tuning)
    best = tuning.loc[tuning.groupby("short_history_half_life", sort=False)["ndcg@10"].idxmax()]
    p_for = dict(zip(best["short_history_half_life"].astype(float), best["short_history_popularity"].astype(float)))
    best_c = float(choose_half_life(p_for)) if choose_half_life is not None and len(p_for) > 1 else next(iter(p_for))
    best_p = p_for[best_c]
    model.config = replace(config, short_history_popularity=best_p, short_history_half_life=best_c)
    if not score_test_users:
        return ColdUserResult(pd.DataFrame([], columns=columns), best_p, tuning, best_c)

    rows: list[tuple] = []

    def report(name, results, prefix=COLD_USER_PREFIX):
        for n, res in results.items():
            rows.extend((m, f"{prefix}{n}", k, v) for m, _, k, v in metric_rows(name, res))

    report("hybrid", run(hybrid_for, "test"))
    # Onboarding: the same users also tell reclm what they like — the words of the part of their
    # history that n = max(reveal) would show, its item ids hidden (a profile never reads a
    # description's item), plus their words about items they never consumed — and are scored
    # on the same test items. Hybrid vs its text-only signals: the encoder, BM25.
    said = np.flatnonzero(words(first_test))
    onboarding_text = UserText.build(matrix.users, tables.descriptions.iloc[said], tables.description_vectors,
                                     [tables.description_tokens[i] for i in said], config.negative_weight, positions=said)

    def onboarded(signal):
        def score_for(n):
            model.user_text_ = onboarding_text
            return model.scorer(signal, histories[n])
        return score_for

    for signal in ONBOARDING_SIGNALS:
        report(signal, run(onboarded(signal), "test"), prefix=ONBOARDING_PREFIX)
    model = None  # side-information EASE: free its n_items² array before plain EASE is fitted
    pop = Popularity().fit(matrix.X)
    pop_results = run(lambda n: (lambda r: pop.score(r, histories[n])), "test")
    report("pop", pop_results)
    report("pop", pop_results, prefix=ONBOARDING_PREFIX)  # words change nothing for Pop: its comparator there too
    # EASE on an empty history scores every item 0 (its "list" is catalogue order): not run at n = 0.
    ease_reveal = [n for n in protocol.reveal if n > 0]
    if ease_reveal:
        ease = cf_for_catalogue(matrix.X.shape[1], ease_l2=ease_l2, n_rows=matrix.X.shape[0]).fit(matrix.X)
        report("ease", run(lambda n: (lambda r: ease.score(r, histories[n])), "test", reveal=ease_reveal))
    return ColdUserResult(pd.DataFrame(rows, columns=columns), best_p, tuning, best_c)
