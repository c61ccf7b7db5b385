"""The hybrid recommender: behaviour, meaning and words, fused per user.

Three signals score every catalogue item for a user:
- ``cf``: collaborative filtering on the interaction matrix (ItemKNN cosine or EASE);
- ``text``: cosine between the user's text profile (the embeddings of what they consumed
  and of what they wrote) and each item's embedding — the only signal that reaches
  cold items besides ``lexical``;
- ``lexical``: BM25 of the user's own words (tags, reviews, requests; jieba-segmented
  for Chinese) against each item's tokens — the encoder is English-only, this is not.
The ``hybrid`` score z-scores each signal per user and blends them with fixed weights.
Everything is computed in user batches: no dense users × items matrix is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.models.fusion import linear_fusion
from reclm_dagster.models.ease import EASE
from reclm_dagster.models.neighbors import ItemKNN, Popularity
from reclm_dagster.text.bm25 import BM25

SIGNALS = ("cf", "text", "lexical")


@dataclass
class HybridConfig:
    cf_model: str = "itemknn"  # "itemknn" or "ease"
    k_neighbors: int = 100
    ease_l2: float = 200.0
    # Fusion weights over per-user z-scores; CF leads because behaviour is the
    # strongest signal where it exists, text and words break its ties and reach cold items.
    weights: dict[str, float] = field(default_factory=lambda: {"cf": 1.0, "text": 0.5, "lexical": 0.5})
    # Share of a user's text profile that comes from their own words (vs consumed items).
    description_share: float = 0.5

    def as_params(self) -> dict[str, object]:
        params: dict[str, object] = {
            "cf_model": self.cf_model,
            "description_share": self.description_share,
        }
        params.update({f"weight_{k}": v for k, v in self.weights.items()})
        params["k_neighbors" if self.cf_model == "itemknn" else "ease_l2"] = (
            self.k_neighbors if self.cf_model == "itemknn" else self.ease_l2
        )
        return params


def _l2_rows(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    return M / np.where(norms > 0, norms, 1.0)


@dataclass
class UserText:
    """What each user said, aligned to a user index: mean embedding and pooled tokens."""

    vectors: np.ndarray  # (n_users, dim), zero rows for users who said nothing
    tokens: list[list[str]]  # (n_users,) token lists, empty for users who said nothing

    @classmethod
    def build(
        cls,
        users: np.ndarray,
        descriptions: pd.DataFrame,
        description_vectors: np.ndarray,
        description_tokens: list[list[str]],
    ) -> "UserText":
        """``descriptions`` rows align with ``description_vectors`` / ``description_tokens``."""
        dim = description_vectors.shape[1] if description_vectors.ndim == 2 else 0
        index = pd.Index(users)
        rows = index.get_indexer(descriptions["user_id"].astype(str))
        keep = np.flatnonzero(rows >= 0)
        vectors = np.zeros((len(users), dim), dtype=np.float32)
        tokens: list[list[str]] = [[] for _ in range(len(users))]
        if len(keep):
            np.add.at(vectors, rows[keep], description_vectors[keep])
            for r, d in zip(rows[keep], keep):
                tokens[r].extend(description_tokens[d])
        return cls(_l2_rows(vectors).astype(np.float32), tokens)


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
    ) -> "HybridRecommender":
        cfg = self.config
        if cfg.cf_model == "ease":
            self.cf_ = EASE(l2=cfg.ease_l2).fit(X)
        elif cfg.cf_model == "itemknn":
            self.cf_ = ItemKNN(k_neighbors=cfg.k_neighbors).fit(X)
        else:
            raise ValueError(f"unknown cf_model {cfg.cf_model!r} (use 'itemknn' or 'ease')")
        self.popularity_ = Popularity().fit(X)
        self.item_vectors_ = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.bm25_ = BM25().fit(item_tokens)
        self.user_text_ = user_text
        return self

    # -- signals -------------------------------------------------------------
    def text_profiles(self, user_rows: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """Unit vectors mixing consumed items (log-weighted) and the user's own words."""
        hist = sp.csr_matrix(X[user_rows], dtype=np.float32, copy=True)
        hist.data = np.log1p(hist.data)  # play counts are heavy-tailed
        consumed = _l2_rows(np.asarray(hist @ self.item_vectors_))
        said = self.user_text_.vectors[user_rows]
        share = self.config.description_share
        has_said = np.linalg.norm(said, axis=1, keepdims=True) > 0
        mix = np.where(has_said, (1 - share) * consumed + share * said, consumed)
        return _l2_rows(mix).astype(np.float32)

    def score_signals(self, user_rows: np.ndarray, X: sp.csr_matrix, signals=SIGNALS) -> dict[str, np.ndarray]:
        user_rows = np.asarray(user_rows)
        out: dict[str, np.ndarray] = {}
        if "cf" in signals:
            out["cf"] = np.asarray(self.cf_.score(user_rows, X), dtype=np.float32)
        if "text" in signals:
            out["text"] = self.text_profiles(user_rows, X) @ self.item_vectors_.T
        if "lexical" in signals:
            out["lexical"] = self.bm25_.score([self.user_text_.tokens[r] for r in user_rows])
        if "popularity" in signals:
            out["popularity"] = np.asarray(self.popularity_.score(user_rows, X), dtype=np.float32)
        return out

    def fuse(self, signals: dict[str, np.ndarray]) -> np.ndarray:
        weights = {k: w for k, w in self.config.weights.items() if k in signals and w != 0}
        return linear_fusion({k: signals[k] for k in weights}, weights, norm="zscore")

    def score(self, user_rows: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        return self.fuse(self.score_signals(user_rows, X, signals=tuple(self.config.weights)))

    def scorer(self, signal: str, X: sp.csr_matrix):
        """A ``score_fn(user_rows)`` for evaluation: 'hybrid' or one signal alone."""
        if signal == "hybrid":
            return lambda rows: self.score(rows, X)
        return lambda rows: self.score_signals(rows, X, signals=(signal,))[signal]

    # -- free-text requests --------------------------------------------------
    def score_query(self, query_vector: np.ndarray, query_tokens: list[str]) -> dict[str, np.ndarray]:
        """Per-signal scores (1 × items) of a free-text request."""
        text = (self.item_vectors_ @ np.asarray(query_vector, dtype=np.float32).ravel())[None, :]
        lexical = self.bm25_.score([query_tokens])
        return {"text": text.astype(np.float32), "lexical": lexical.astype(np.float32)}
