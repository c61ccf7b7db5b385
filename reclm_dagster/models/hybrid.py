"""The hybrid recommender: behaviour, meaning and words, fused per user.

The signals of the registry (``models/signals.py``) score every catalogue item for a user:
- ``cf``: collaborative filtering on the interaction matrix: EASE with the items' side
  information (tags, genres, people) stacked into its closed form (see ``models/ease.py``),
  or ItemKNN cosine;
- ``text``: cosine between the user's text profile (the embeddings of what they consumed
  and of what they wrote) and each item's embedding — the only signal that reaches
  cold items besides ``lexical``;
- ``lexical``: BM25 of the user's own words (tags, reviews, requests; jieba-segmented
  for Chinese) against each item's tokens — the encoder is English-only, this is not;
- ``kg``: overlap of the user's and the item's knowledge-graph entities (``kg/signals.py``).
The fused score z-scores each signal per user and blends them with weights chosen on
validation (``fusion``); when a learned re-ranker (``models/reranker.py``) is attached and
validation preferred it, ``hybrid`` re-orders the fused candidates with it.
Everything is computed in user batches: no dense users × items matrix is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.models.ease import ease_rows
from reclm_dagster.models.fusion import linear_fusion, zscore_rows
from reclm_dagster.models.large_catalogue import cf_for_catalogue
from reclm_dagster.models.neighbors import ItemKNN, Popularity
from reclm_dagster.kg.signals import item_entity_profiles, user_entity_affinity
from reclm_dagster.kg.similarity import entity_idf
from reclm_dagster.models.side_information import l2_rows, product_with_rows, text_features
from reclm_dagster.models.signals import COLD_EVIDENCE_SIGNALS, FUSED_SIGNALS, default_weights
from reclm_dagster.models.signals import SIGNALS as SIGNAL_REGISTRY
from reclm_dagster.text.bm25 import BM25
from reclm_dagster.text.sentiment import negative_mask

SIGNALS = FUSED_SIGNALS  # the registry's (models/signals.py): cf, text, lexical, kg
# Fusion weight key of the cold-item boost: cold items get boost × max(0, mean z of these signals).
COLD_BOOST = "cold"
COLD_BOOST_SIGNALS = COLD_EVIDENCE_SIGNALS
COLD_MAX_TRAIN = 2
# Ties (e.g. a user with no history and no words: every signal is flat) are broken by
# popularity, with a weight far below any fusion weight so it never reorders real evidence.
POPULARITY_TIE_BREAK = 1e-3


@dataclass
class HybridConfig:
    cf_model: str = "ease"  # "ease" (side-information EASE) or "itemknn"
    k_neighbors: int = 100
    ease_l2: float = 200.0
    side_weight: float = 1.0  # g: weight of item features stacked under X in EASE (0 = plain EASE)
    side_weighting: str = "log_users"  # item feature values: 'binary' or 'log_users' (1 + log #users who said it)
    # g_e: weight of the items' text embeddings (PCA to dense_dims, unit rows) stacked under X in
    # EASE next to the sparse features (0 = off): the encoder's semantics shaping B itself.
    dense_weight: float = 0.0
    dense_dims: int = 64
    # Fusion weights over per-user z-scores; CF leads because behaviour is the
    # strongest signal where it exists, text and words break its ties and reach cold items.
    weights: dict[str, float] = field(default_factory=default_weights)
    # Share of a user's text profile that comes from their own words (vs consumed items).
    description_share: float = 0.5
    # Share of an item's text vector taken from what users said about it (vs its catalogue entry).
    said_share: float = 0.5
    # Weight of popularity for users with short histories, fading as 2^(-|history|/c):
    # with one or three interactions CF and words are noisy and the crowd is a strong prior.
    short_history_popularity: float = 0.0
    # c in that fade: popularity halves every c interactions. Chosen on the main validation
    # users (long histories) together with the weight chosen on cold users.
    short_history_half_life: float = 3.0
    # Short texts said about items whose embeddings have at least this cosine become one side
    # feature (models/side_information.merge_similar); 0: every distinct text its own feature.
    tag_merge_threshold: float = 0.0
    # How a user's negative words (1★ review, "overrated") count in their text profile:
    # -0.5 pushes away from such items, 0 ignores them, 1 treats them like praise.
    negative_weight: float = -0.5

    def as_params(self) -> dict[str, object]:
        params: dict[str, object] = {
            "cf_model": self.cf_model,
            "description_share": self.description_share,
            "negative_weight": self.negative_weight,
            "said_share": self.said_share,
            "short_history_popularity": self.short_history_popularity,
            "short_history_half_life": self.short_history_half_life,
        }
        params.update({f"weight_{k}": v for k, v in self.weights.items()})
        params.update(self.cf_params())
        return params

    def cf_params(self) -> dict[str, object]:
        if self.cf_model == "itemknn":
            return {"cf_model": "itemknn", "k_neighbors": self.k_neighbors}
        return {"cf_model": self.cf_model, "ease_l2": self.ease_l2, "side_weight": self.side_weight,
                "tag_merge_threshold": self.tag_merge_threshold,
                "side_weighting": self.side_weighting, "dense_weight": self.dense_weight, "dense_dims": self.dense_dims}



@dataclass
class UserText:
    """What each user said, aligned to a user index: mean embedding and pooled tokens."""

    vectors: np.ndarray  # (n_users, dim), zero rows for users who said nothing
    tokens: list[list[str]]  # (n_users,) token lists, empty for users who said nothing
    # (n_users,) side-information features the user named ('said=space opera'): KG mentions
    features: list[list[str]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        users: np.ndarray,
        descriptions: pd.DataFrame,
        description_vectors: np.ndarray,
        description_tokens: list[list[str]],
        negative_weight: float = -0.5,
        positions: np.ndarray | None = None,
    ) -> "UserText":
        """``descriptions`` rows align with ``description_tokens``, and with ``description_vectors`` — or,
        given ``positions``, with those rows of it (ascending: a subset read in place, not copied).

        Descriptions that say the user disliked an item (``text/sentiment.py``: a low rating,
        a tag like "overrated") enter the profile vector with ``negative_weight`` (negative:
        push away from such items; 0: ignore; 1: treat like any other words) and never
        contribute words or named entities.
        """
        dim = description_vectors.shape[1] if description_vectors.ndim == 2 else 0
        index = pd.Index(users)
        rows = index.get_indexer(descriptions["user_id"].astype(str))
        keep = np.flatnonzero(rows >= 0)
        vectors = np.zeros((len(users), dim), dtype=np.float32)
        tokens: list[list[str]] = [[] for _ in range(len(users))]
        features: list[list[str]] = [[] for _ in range(len(users))]
        texts = descriptions["text"].to_numpy() if "text" in descriptions else np.full(len(descriptions), "")
        if len(keep):
            negative = negative_mask(descriptions, description_tokens) if negative_weight != 1.0 else np.zeros(len(descriptions), bool)
            weight = np.where(negative, negative_weight, 1.0).astype(np.float32)
            # users × descriptions weights times the vectors: a sparse product, not np.add.at (100× slower)
            # over copies of the description vectors
            owner = sp.csr_matrix((weight[keep], (rows[keep], keep)), shape=(len(users), len(descriptions)))
            vectors = product_with_rows(owner, description_vectors, positions).astype(np.float32, copy=False)
            for r, d in zip(rows[keep], keep):
                if negative[d] and negative_weight < 1.0:
                    continue
                tokens[r].extend(description_tokens[d])
                features[r].extend(text_features(texts[d], description_tokens[d]))
        return cls(l2_rows(vectors).astype(np.float32), tokens, features)


def reduced_rows(vectors: np.ndarray, dims: int) -> np.ndarray:
    """Item vectors centred, projected on their top ``dims`` principal axes, rows back to unit length.

    Centring removes what every item shares (MiniLM vectors all lean one way), so the dense
    rows' gram links items by what distinguishes them; zero rows (no text) stay zero.
    """
    V = np.asarray(vectors, np.float64)
    has = np.linalg.norm(V, axis=1) > 0
    out = np.zeros((len(V), min(dims, V.shape[1])), np.float32)
    if has.sum() < 2:
        return out
    C = V[has] - V[has].mean(axis=0)
    _, _, Vt = np.linalg.svd(C, full_matrices=False)
    out[has] = l2_rows(C @ Vt[: out.shape[1]].T)
    return out


class HybridRecommender:
    """Fit on a train matrix plus item/user text; score user batches per signal."""

    def __init__(self, config: HybridConfig | None = None):
        self.config = config or HybridConfig()

    def fit(
        self,
        X: sp.csr_matrix,
        item_vectors: np.ndarray,
        item_tokens: list[list[str]],
        user_text: UserText,
        side: sp.csr_matrix | None = None,
        side_names: np.ndarray | None = None,
    ) -> "HybridRecommender":
        """``side``: item × feature matrix (rows aligned with X's columns), named by ``side_names``:
        side information for EASE and the entities of the ``kg`` signal."""
        self.side_ = side  # the weighted item features: refit_cf reuses them for another g or λ
        self.refit_cf(X, item_vectors)
        self.popularity_ = Popularity().fit(X)
        counts = np.log1p(np.asarray((X > 0).sum(axis=0), dtype=np.float64).ravel())
        spread = counts.std()
        self.popularity_z_ = ((counts - counts.mean()) / (spread if spread > 0 else 1.0)).astype(np.float32)
        self.tie_break_ = POPULARITY_TIE_BREAK * self.popularity_z_
        self.cold_items_ = np.asarray((X > 0).sum(axis=0)).ravel() <= COLD_MAX_TRAIN
        self.item_vectors_ = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.bm25_ = BM25().fit(item_tokens)
        self.user_text_ = user_text
        self.reranker_ = None  # attached by the evaluation when validation prefers it
        self._fit_kg(side, side_names)
        return self

    def refit_cf(self, X: sp.csr_matrix, item_vectors: np.ndarray | None) -> "HybridRecommender":
        """(Re)fit the CF signal alone from the config's λ, g and the stored side features; the
        dense side rows come from ``item_vectors`` (None: none). Text, BM25 and KG stay as fitted,
        so a grid over g or an ablation with other vectors pays for the CF fit only."""
        cfg = self.config
        if cfg.cf_model == "ease":
            use_dense = item_vectors is not None and cfg.dense_weight > 0
            dense = reduced_rows(item_vectors, cfg.dense_dims) if use_dense else None
            # dense EASE where its n_items² arrays fit, else the sparse restricted EASE (same λ, g)
            dense_weight = cfg.dense_weight if use_dense else 0.0
            rows = ease_rows(X, self.side_, dense, side_weight=cfg.side_weight, dense_weight=dense_weight)
            self.cf_ = cf_for_catalogue(X.shape[1], ease_l2=cfg.ease_l2, side_weight=cfg.side_weight,
                                        dense_weight=dense_weight, n_rows=rows).fit(X, side=self.side_, dense=dense)
        elif cfg.cf_model == "itemknn":
            self.cf_ = ItemKNN(k_neighbors=cfg.k_neighbors).fit(X)
        else:
            raise ValueError(f"unknown cf_model {cfg.cf_model!r} (use 'itemknn' or 'ease')")
        return self

    def _fit_kg(self, side, side_names) -> None:
        """The ``kg`` signal: idf-weighted cosine of user and item entity profiles (kg/signals.py)."""
        if side is None or side_names is None or side.shape[1] == 0:
            self.kg_ = None
            return
        E = sp.csr_matrix(side, dtype=np.float32, copy=True)  # a copy: side_ keeps its weights for refit_cf
        E.data[:] = 1.0
        idf = entity_idf(E)
        self.kg_ = {"E": E, "idf": idf, "items": item_entity_profiles(E, idf).T.tocsr(),
                    "index": {name: j for j, name in enumerate(side_names)}}

    def _mentions(self, user_rows: np.ndarray) -> sp.csr_matrix:
        """users × entities: the entities each user named in their own words."""
        index, rows, cols = self.kg_["index"], [], []
        features = self.user_text_.features
        for r, u in enumerate(user_rows):
            for name in (features[u] if u < len(features) else ()):
                j = index.get(name)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(user_rows), self.kg_["E"].shape[1]))

    def kg_scores(self, user_rows: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        if self.kg_ is None:
            return np.zeros((len(user_rows), X.shape[1]), np.float32)
        affinity = user_entity_affinity(sp.csr_matrix(X)[user_rows], self.kg_["E"], self.kg_["idf"], self._mentions(user_rows))
        return np.asarray((affinity @ self.kg_["items"]).toarray(), dtype=np.float32)

    # -- signals -------------------------------------------------------------
    def text_profiles(self, user_rows: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """Unit vectors mixing consumed items (log-weighted) and the user's own words."""
        hist = sp.csr_matrix(X[user_rows], dtype=np.float32, copy=True)
        hist.data = np.log1p(hist.data)  # play counts are heavy-tailed
        consumed = l2_rows(np.asarray(hist @ self.item_vectors_))
        said = self.user_text_.vectors[user_rows]
        share = self.config.description_share
        has_said = np.linalg.norm(said, axis=1, keepdims=True) > 0
        mix = np.where(has_said, (1 - share) * consumed + share * said, consumed)
        return l2_rows(mix).astype(np.float32)

    def score_signals(self, user_rows: np.ndarray, X: sp.csr_matrix, signals=SIGNALS) -> dict[str, np.ndarray]:
        """``{name: (len(user_rows), n_items)}`` for the requested registry signals, in registry order
        (other names, such as the cold boost's weight key, are not signals and are skipped)."""
        user_rows = np.asarray(user_rows)
        return {name: s.score(self, user_rows, X) for name, s in SIGNAL_REGISTRY.items() if name in signals}

    def fuse(self, signals: dict[str, np.ndarray], history_length: np.ndarray | None = None,
             zscored: bool = False) -> np.ndarray:
        """Weighted per-user z-scores, plus popularity for short histories (``history_length`` per row).

        ``zscored``: the signals are already ``zscore_rows`` of the raw ones (a tuning grid z-scores once)."""
        weights = {k: w for k, w in self.config.weights.items() if k in signals and w != 0 and k != COLD_BOOST}
        if weights:
            fused = linear_fusion({k: signals[k] for k in weights}, weights, norm=None if zscored else "zscore")
            fused += self.tie_break_  # a new array: added in place
        else:
            fused = np.zeros_like(next(iter(signals.values()))) + self.tie_break_
        boost = self.config.weights.get(COLD_BOOST, 0.0)
        if boost and all(k in signals for k in COLD_BOOST_SIGNALS):
            # Items CF barely knows (≤ COLD_MAX_TRAIN interactions) get an extra push from the
            # signals that reach them (words and KG); warm items are left exactly as they were.
            evidence = sum(signals[k] if zscored else zscore_rows(signals[k]) for k in COLD_BOOST_SIGNALS) / len(COLD_BOOST_SIGNALS)
            fused = fused + boost * np.where(self.cold_items_[None, :], np.maximum(evidence, 0.0), 0.0)
        p = self.config.short_history_popularity
        if p and history_length is not None:
            # halves every c interactions: strong for 1-3, gone for the long histories CF serves well
            # (c/(c+n) with c = 3 still added 1.1 z-units of popularity at n = 40 with p = 16, below CF alone)
            fade = np.exp2(-np.asarray(history_length, np.float32) / self.config.short_history_half_life)
            fused += (p * fade)[:, None] * self.popularity_z_[None, :]
        return fused

    @staticmethod
    def history_length(user_rows: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        return np.diff(sp.csr_matrix(X)[np.asarray(user_rows)].indptr)

    def user_said(self, user_rows: np.ndarray) -> np.ndarray:
        """True for users whose own words are part of their profile."""
        return np.linalg.norm(self.user_text_.vectors[np.asarray(user_rows)], axis=1) > 0

    def score(self, user_rows: np.ndarray, X: sp.csr_matrix, rerank: bool = True) -> np.ndarray:
        return self.score_with_signals(user_rows, X, rerank)[0]

    def score_with_signals(self, user_rows: np.ndarray, X: sp.csr_matrix, rerank: bool = True):
        """``(final scores, {signal: scores})`` of a user batch: fused, then re-ranked if a ranker is attached."""
        user_rows = np.asarray(user_rows)
        lengths = self.history_length(user_rows, X)
        use_ranker = self.reranker_ is not None and rerank
        needed = set(self.config.weights) | (set(COLD_BOOST_SIGNALS) if self.config.weights.get(COLD_BOOST) else set())
        signals = self.score_signals(user_rows, X, signals=SIGNALS if use_ranker else tuple(needed))
        fused = self.fuse(signals, lengths)
        if not use_ranker:
            return fused, signals
        return self.reranker_.rerank(signals, fused, sp.csr_matrix(X)[user_rows], self.user_said(user_rows)), signals

    def scorer(self, signal: str, X: sp.csr_matrix):
        """A ``score_fn(user_rows)`` for evaluation: 'hybrid', 'fusion' (no re-ranker) or one signal."""
        if signal == "hybrid":
            return lambda rows: self.score(rows, X)
        if signal == "fusion":
            return lambda rows: self.score(rows, X, rerank=False)
        return lambda rows: self.score_signals(rows, X, signals=(signal,))[signal]
