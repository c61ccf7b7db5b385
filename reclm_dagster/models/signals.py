"""The signal registry: every score the hybrid can compute for a user, by name.

One place that says which signals exist and what each is for; the hybrid's scoring and fusion
(``models/hybrid.py``), the re-ranker's features (``models/reranker.py``), the free-text
request scorer (``models/query.py``), serving's JSON (``serving.py``) and the evaluation's
reports all read it instead of spelling the names out. Scorers take the fitted
``HybridRecommender`` (duck-typed: this module does not import it), a batch of user rows and the
history matrix, and return a ``(len(rows), n_items)`` float32 matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Signal:
    name: str
    what: str  # one line for reports and docs
    score: Callable  # (model, user_rows, X) -> (len(user_rows), n_items) float32
    params: Callable  # (model) -> its hyper-parameters, as reported beside its metrics
    weight: float = 0.0  # default fusion weight over per-user z-scores (HybridConfig.weights)
    fused: bool = True  # part of the hybrid's fusion (and of the evaluation's single-signal rows)
    reranker_feature: bool = False  # its z-score and log-rank are features of the learned re-ranker
    reaches_cold: bool = False  # evidence for the cold-item boost (items CF barely knows)
    words_only: bool = False  # needs nothing but what a user said (the onboarding comparisons)
    query: bool = False  # also scores free-text requests (models/query.py)


def _cf(model, rows, X):
    return np.asarray(model.cf_.score(rows, X), dtype=np.float32)


def _text(model, rows, X):
    return model.text_profiles(rows, X) @ model.item_vectors_.T


def _lexical(model, rows, X):
    return model.bm25_.score([model.user_text_.tokens[r] for r in rows])


def _kg(model, rows, X):
    return model.kg_scores(rows, X)


def _popularity(model, rows, X):
    return np.asarray(model.popularity_.score(rows, X), dtype=np.float32)


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("cf", "collaborative filtering on the interaction matrix (EASE with side information, or ItemKNN)",
           _cf, lambda m: m.config.cf_params(), weight=1.0, reranker_feature=True),
    Signal("text", "cosine of the user's text profile (what they consumed and said) with each item's embedding",
           _text, lambda m: {"description_share": m.config.description_share, "said_share": m.config.said_share},
           weight=0.1, reranker_feature=True, words_only=True, query=True),
    Signal("lexical", "BM25 of the user's own words (jieba for Chinese) against each item's tokens",
           _lexical, lambda m: {"bm25_k1": m.bm25_.k1, "bm25_b": m.bm25_.b},
           weight=0.1, reranker_feature=True, reaches_cold=True, words_only=True, query=True),
    Signal("kg", "idf-weighted overlap of the user's and the item's knowledge-graph entities",
           _kg, lambda m: {"entities": int(m.kg_["E"].shape[1]) if m.kg_ else 0}, weight=0.0, reaches_cold=True),
    Signal("popularity", "how many users consumed the item (a baseline and tie-breaker, never fused)",
           _popularity, lambda m: {}, fused=False),
)}

FUSED_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.fused)
RERANK_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.reranker_feature)
COLD_EVIDENCE_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.reaches_cold)
WORD_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.words_only)
QUERY_SIGNALS: tuple[str, ...] = tuple(n for n, s in SIGNALS.items() if s.query)


def default_weights() -> dict[str, float]:
    """The fusion weights a new ``HybridConfig`` starts from, in registry order."""
    return {n: SIGNALS[n].weight for n in FUSED_SIGNALS}


def signal_params(model) -> dict[str, dict]:
    """Each fused signal's hyper-parameters in a fitted hybrid (the evaluation's ``params``)."""
    return {n: SIGNALS[n].params(model) for n in FUSED_SIGNALS}

