"""The one scorer of free-text requests, used by `reclm recommend --query` (serving.py) and by
the query-retrieval evaluation (evaluation/queries.py).

A request is scored against every item by each query signal (``text``: cosine between the
request's embedding and the item's; ``lexical``: BM25 of its ``segment`` tokens against the
item's tokens), then the signals are fused per request (``fuse``: z-scores through
``models.fusion.linear_fusion``, or reciprocal ranks) — the same helpers the hybrid fuses with.
What an item's vector and tokens are made of is the caller's business (serving: the hybrid's
item text; evaluation: catalogue document plus the descriptions not held out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reclm_dagster.encoders.protocol import query_side
from reclm_dagster.models.fusion import linear_fusion, reciprocal_rank_fusion
from reclm_dagster.text.bm25 import BM25
from reclm_dagster.text.normalize import segment

RRF_K = 60


def unique_encode(encoder, texts: Sequence[str]) -> np.ndarray:
    """Encode each distinct text once (tags repeat a lot), return rows in input order."""
    texts = ["" if t is None else str(t) for t in texts]
    if not texts:
        return np.zeros((0, int(encoder.dim)), dtype=np.float32)
    unique, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    vectors = np.asarray(encoder.encode(unique.tolist()), dtype=np.float32)
    return vectors[inverse.reshape(-1)]


def query_vectors(encoder, queries: Sequence[str]) -> np.ndarray:
    """Request embeddings, through ``encoder.query_encoder`` when the encoder has one (e5 prefixes)."""
    return unique_encode(query_side(encoder), queries)


@dataclass
class QueryScorer:
    """Scores requests against a fixed catalogue: ``(n_requests, n_items)`` per signal."""

    item_vectors: np.ndarray | None  # (n_items, dim) unit rows; None: words only
    bm25: BM25

    @classmethod
    def fit(cls, item_vectors: np.ndarray | None, item_tokens: list[list[str]], k1: float = 1.2,
            b: float = 0.75) -> "QueryScorer":
        vectors = None if item_vectors is None else np.ascontiguousarray(item_vectors, dtype=np.float32)
        return cls(vectors, BM25(k1=k1, b=b).fit(item_tokens))

    def text(self, encoder, queries: Sequence[str]) -> np.ndarray:
        """Cosine of each request's embedding with each item's (float32)."""
        return query_vectors(encoder, queries) @ self.item_vectors.T

    def lexical(self, queries: Sequence[str], tokens: Sequence[list[str]] | None = None) -> np.ndarray:
        """BM25 of each request's ``segment`` tokens (or the ``tokens`` given) against each item's."""
        return self.bm25.score([segment(q) for q in queries] if tokens is None else list(tokens))

    def score(self, queries: Sequence[str], encoder=None, tokens=None, readable: Sequence[bool] | None = None,
              ) -> dict[str, np.ndarray]:
        """``{"text": ..., "lexical": ...}`` (no ``text`` without an encoder and item vectors).

        ``readable``: per request, False where the encoder cannot read it (too many unknown
        tokens): its ``text`` row is 0, so only words rank it."""
        out: dict[str, np.ndarray] = {}
        if encoder is not None and self.item_vectors is not None:
            text = self.text(encoder, queries)
            if readable is not None:
                text[~np.asarray(readable, bool)] = 0.0
            out["text"] = text
        out["lexical"] = self.lexical(queries, tokens)
        return out


def fuse(signals: Mapping[str, np.ndarray], weights: Mapping[str, float], method: str = "zscore",
         mask: np.ndarray | None = None, tie_order: np.ndarray | None = None, dtype=np.float32,
         min_std: float = 0.0) -> np.ndarray:
    """Per-request fusion of query signals.

    ``zscore``: weighted sum of per-row z-scores (``linear_fusion``), statistics over the items
    ``mask`` leaves in (masked items come out -inf). ``rrf``: weighted reciprocal ranks over every
    item, ties broken by ``tie_order``. ``dtype``/``min_std`` as in ``linear_fusion``.
    """
    if method == "zscore":
        scores = signals if mask is None else {k: np.where(mask, -np.inf, v) for k, v in signals.items()}
        return linear_fusion(scores, weights, norm="zscore", dtype=dtype, min_std=min_std)
    if method == "rrf":
        return reciprocal_rank_fusion(signals, k=RRF_K, weights=weights, tie_order=tie_order, dtype=dtype)
    raise ValueError(f"fusion must be 'zscore' or 'rrf', got {method!r}")
