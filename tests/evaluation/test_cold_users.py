"""Cold-user protocol: who is left out, what they reveal, which of their words may be used."""

from dataclasses import replace

import numpy as np
import pandas as pd

from reclm_dagster.evaluation import cold_users
from reclm_dagster.evaluation.cold_users import (
    ColdUserProtocol,
    cold_user_evaluation,
    cold_user_split,
    unrevealed_description_mask,
)
from reclm_dagster.models.hybrid import HybridConfig, UserText
from reclm_dagster.training import DatasetTables


def _interactions(n_users=40, per_user=8, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", 1.0) for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])


def test_split_leaves_cold_users_out_and_orders_their_interactions():
    df = _interactions()
    protocol = ColdUserProtocol(user_fraction=0.1, seed=3)
    train, cold = cold_user_split(df, protocol)
    cold_users = set(cold["user_id"])
    assert len(cold_users) == 8 and not cold_users & set(train["user_id"])  # 4 test + 4 validation users
    assert cold.groupby("role")["user_id"].nunique().to_dict() == {"test": 4, "valid": 4}
    assert len(train) + len(cold) == len(df)
    for _, g in cold.groupby("user_id"):
        assert sorted(g["position"]) == list(range(len(g)))
    # deterministic for a seed
    pd.testing.assert_frame_equal(cold, cold_user_split(df, protocol)[1])


def test_words_about_unrevealed_pairs_are_hidden():
    cold = pd.DataFrame({"user_id": ["u1"] * 4, "item_id": ["a", "b", "c", "d"], "position": [0, 1, 2, 3]})
    descriptions = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u2"], "item_id": ["a", "d", "z", "d"],
                                 "text": ["x", "y", "never played", "other user"]})
    assert unrevealed_description_mask(descriptions, cold, 0).tolist() == [False, False, True, True]
    assert unrevealed_description_mask(descriptions, cold, 1).tolist() == [True, False, True, True]


GENRES = ("jazz", "metal", "folk", "techno")
CONFIG = HybridConfig(ease_l2=10.0, weights={"cf": 1.0, "text": 1.0, "lexical": 0.5})


def _tables(informative: bool = True, pair_words: bool | str = False, seed: int = 0) -> DatasetTables:
    """Four genres of 15 items, popular to niche; each user plays 6 items of one genre.

    Every user also says one genre name, not about any item: their own genre when
    ``informative``, a random one otherwise. ``pair_words`` adds a description per
    interaction whose only word names that (user, item) pair (``"genre"``: names the item's genre).
    """
    rng = np.random.default_rng(seed)
    per_genre = 15
    n_items = per_genre * len(GENRES)
    zipf = 1.0 / np.arange(1, per_genre + 1)
    rows, descs = [], []
    for u in range(80):
        g = u % len(GENRES)
        for j in rng.choice(per_genre, 6, replace=False, p=zipf / zipf.sum()):
            rows.append((f"u{u}", f"i{g * per_genre + j}", 1.0))
            if pair_words:
                text = GENRES[g] if pair_words == "genre" else f"pair{u}x{g * per_genre + j}"
                descs.append((f"p{u}-{g * per_genre + j}", f"u{u}", f"i{g * per_genre + j}", text))
        said = g if informative else int(rng.integers(len(GENRES)))
        descs.append((f"d{u}", f"u{u}", None, GENRES[said]))
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "title": [f"t{i}" for i in range(n_items)], "domain": "music"})
    genre_of = np.arange(n_items) // per_genre
    dim = len(GENRES) + 1  # the last axis: words that name no genre (the pair words)
    vec = np.zeros((n_items, dim), np.float32)
    vec[np.arange(n_items), genre_of] = 1
    descriptions = pd.DataFrame(descs, columns=["description_id", "user_id", "item_id", "text"])
    dvec = np.zeros((len(descs), dim), np.float32)
    dvec[np.arange(len(descs)), [GENRES.index(t) if t in GENRES else dim - 1 for t in descriptions["text"]]] = 1
    return DatasetTables(
        items=items, interactions=pd.DataFrame(rows, columns=["user_id", "item_id", "weight"]),
        descriptions=descriptions, item_vectors=vec, item_tokens=[[GENRES[g]] for g in genre_of],
        description_vectors=dvec, description_tokens=[[t] for t in descriptions["text"]], encoder_version="test",
    )


def _ndcg(result, k: int = 10) -> pd.Series:
    m = result.metrics
    return m[m["metric"] == f"ndcg@{k}"].set_index(["model", "slice"])["value"]


PROTOCOL = ColdUserProtocol(user_fraction=0.2, seed=0)


def test_pop_at_every_n_and_ease_only_once_something_is_revealed():
    result = cold_user_evaluation(_tables(), CONFIG, 10.0, PROTOCOL)
    m = result.metrics[result.metrics["slice"].str.startswith("cold_users_")]
    slices = m.groupby("model")["slice"].agg(set).to_dict()
    assert slices == {"hybrid": {"cold_users_0", "cold_users_1", "cold_users_3"},
                      "pop": {"cold_users_0", "cold_users_1", "cold_users_3"},
                      "ease": {"cold_users_1", "cold_users_3"}}  # an empty history gives EASE no list
    assert result.short_history_popularity in set(result.tuning["short_history_popularity"])
    assert result.tuning.loc[result.tuning["ndcg@10"].idxmax(), "short_history_popularity"] == result.short_history_popularity


def test_choosing_the_prior_alone_scores_no_test_cold_user_and_chooses_the_same_p(monkeypatch):
    from reclm_dagster.evaluation import cold_users

    full = cold_user_evaluation(_tables(), CONFIG, 10.0, PROTOCOL)
    fitted = []
    real = cold_users.cf_for_catalogue
    monkeypatch.setattr(cold_users, "cf_for_catalogue", lambda *a, **k: fitted.append(1) or real(*a, **k))
    chosen = cold_user_evaluation(_tables(), CONFIG, 10.0, PROTOCOL, score_test_users=False)
    assert chosen.metrics.empty and not fitted  # no test row, no EASE comparator
    assert chosen.short_history_popularity == full.short_history_popularity
    assert chosen.tuning.equals(full.tuning)


def test_hybrid_beats_pop_at_n0_only_when_words_predict_items():
    """Pop is the fair n = 0 comparator; the hybrid beats it by a margin only through informative words."""
    ndcg = _ndcg(cold_user_evaluation(_tables(informative=True), CONFIG, 10.0, PROTOCOL))
    assert ndcg[("hybrid", "cold_users_0")] > 1.5 * ndcg[("pop", "cold_users_0")] > 0
    # the same users with words that say nothing about them: no margin left (the test can fail)
    ndcg = _ndcg(cold_user_evaluation(_tables(informative=False), CONFIG, 10.0, PROTOCOL))
    assert ndcg[("hybrid", "cold_users_0")] < 1.5 * ndcg[("pop", "cold_users_0")]


def test_onboarding_users_are_scored_with_the_words_of_other_items_they_consumed():
    """Onboarding: what a user said about 3 consumed items (ids hidden) predicts the rest of their history."""
    result = cold_user_evaluation(_tables(informative=False, pair_words="genre"), CONFIG, 10.0, PROTOCOL)
    ndcg = _ndcg(result)
    slices = result.metrics[result.metrics["slice"].str.startswith("onboarding_")].groupby("model")["slice"].agg(set)
    assert set(slices.index) == {"hybrid", "text", "lexical", "pop"}
    assert ndcg[("hybrid", "onboarding_0")] > 1.5 * ndcg[("pop", "onboarding_0")] > 0
    assert ndcg[("text", "onboarding_0")] > 1.5 * ndcg[("pop", "onboarding_0")]
    # the plain cold-user slice hides those words (they are about unrevealed pairs): no margin there
    assert ndcg[("hybrid", "cold_users_0")] < 1.5 * ndcg[("pop", "cold_users_0")]
    # Pop's list does not read words: the same numbers in both slices
    assert ndcg[("pop", "onboarding_3")] == ndcg[("pop", "cold_users_3")]


def test_only_the_callers_rows_and_words_reach_the_cold_user_protocol(monkeypatch):
    """Inside the offline evaluation: the main split's held-out pairs and their words stay out."""
    tables = _tables(pair_words=True)
    rng = np.random.default_rng(1)
    inter = tables.interactions
    held = rng.random(len(inter)) < 0.3  # the main split's valid + test rows
    allowed_pairs = set(zip(inter["user_id"][~held], inter["item_id"][~held]))
    held_pairs = set(zip(inter["user_id"][held], inter["item_id"][held]))
    d = tables.descriptions
    mask = ~np.array([(u, i) in held_pairs for u, i in zip(d["user_id"], d["item_id"])])
    mask[d["description_id"].isin(["d0", "d1", "d2"]).to_numpy()] = False  # words the caller forbids for another reason
    forbidden = set(d["description_id"][~mask])

    fits, built = [], []
    real_fit, real_build = cold_users.fit_hybrid, UserText.build.__func__

    def fit_spy(tables_, train, description_mask=None, config=None):
        fits.append((train, np.asarray(description_mask, bool)))
        return real_fit(tables_, train, description_mask=description_mask, config=config)

    def build_spy(cls, users, descriptions, *args, **kwargs):
        built.append(set(descriptions["description_id"]))
        return real_build(cls, users, descriptions, *args, **kwargs)

    monkeypatch.setattr(cold_users, "fit_hybrid", fit_spy)
    monkeypatch.setattr(UserText, "build", classmethod(build_spy))
    result = cold_user_evaluation(tables, CONFIG, 10.0, PROTOCOL, interactions=inter[~held], description_mask=mask)

    assert len(result.metrics) and len(fits) == 1
    train, fit_mask = fits[0]
    assert set(zip(train["user_id"], train["item_id"])) <= allowed_pairs
    assert not (fit_mask & ~mask).any()  # the fit (item texts, side information, profiles) never sees a forbidden word
    assert len(built) == 2 + len(PROTOCOL.reveal)  # the fit's profiles, the cold users' at each n, onboarding
    assert all(ids and not ids & forbidden for ids in built)


def test_each_half_life_gets_its_own_popularity_weight_and_the_caller_picks_the_pair():
    """p is chosen on the cold users for each fade half-life; the caller (main validation users,
    long histories) picks the half-life before anything is scored on test."""
    seen = {}

    def choose(p_for):
        seen.update(p_for)
        return 0.5

    result = cold_user_evaluation(_tables(), CONFIG, 10.0, PROTOCOL, half_lives=(3.0, 0.5), choose_half_life=choose)
    assert set(seen) == {3.0, 0.5} and set(result.tuning["short_history_half_life"]) == {3.0, 0.5}
    for c, p in seen.items():
        rows = result.tuning[result.tuning["short_history_half_life"] == c]
        assert rows.loc[rows["ndcg@10"].idxmax(), "short_history_popularity"] == p
    assert (result.short_history_half_life, result.short_history_popularity) == (0.5, seen[0.5])


def test_the_fade_half_life_sets_how_much_popularity_a_long_history_keeps():
    from reclm_dagster.models.hybrid import HybridRecommender

    model = HybridRecommender.__new__(HybridRecommender)
    model.config = replace(CONFIG, weights={"cf": 1.0}, short_history_popularity=4.0, short_history_half_life=1.0)
    model.tie_break_, model.popularity_z_ = 0.0, np.array([1.0, -1.0], np.float32)
    signals = {"cf": np.zeros((3, 2), np.float32)}
    fused = model.fuse(signals, np.array([0, 1, 9]))
    # p·2^(-n/c) on popularity z: 4, 4/2, 4/512 — a long history keeps almost nothing
    assert np.allclose(fused[:, 0], [4.0, 2.0, 4 / 512]) and np.allclose(fused[:, 1], [-4.0, -2.0, -4 / 512])


def test_the_prior_grid_scores_each_batch_of_cold_users_once_and_holds_one_batch(monkeypatch):
    """Every (half-life, p) re-fuses one batch's z-scored signals: the same table in batches of 3
    users as in one batch, with each batch's signals scored once per revealed n."""
    from functools import partial

    from reclm_dagster.models.hybrid import HybridRecommender

    one_batch = cold_user_evaluation(_tables(), CONFIG, 10.0, PROTOCOL, half_lives=(3.0, 0.5), score_test_users=False)
    scored = []
    real = HybridRecommender.score_with_signals
    monkeypatch.setattr(HybridRecommender, "score_with_signals",
                        lambda self, rows, *a, **kw: scored.append(np.array(rows)) or real(self, rows, *a, **kw))
    monkeypatch.setattr(cold_users, "evaluate_many", partial(cold_users.evaluate_many, batch_size=3))
    batches = cold_user_evaluation(_tables(), CONFIG, 10.0, PROTOCOL, half_lives=(3.0, 0.5), score_test_users=False)
    pd.testing.assert_frame_equal(batches.tuning, one_batch.tuning)
    users, times = np.unique(np.concatenate(scored), return_counts=True)
    assert len(batches.tuning) == 14 and len(users) > 3 and max(map(len, scored)) <= 3
    assert (times == len(PROTOCOL.reveal)).all()  # each validation cold user once per n, whatever the 14 settings
