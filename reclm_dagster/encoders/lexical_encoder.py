"""A non-neural baseline encoder: hashed TF-IDF-style bag of words, for encoder comparisons.

``reclm run --encoder lexical`` runs the whole graph with it, so `reclm compare` shows what
the transformer adds over plain word overlap on the same pipeline. Tokens are reclm's own
(jieba for Chinese, an English word tokenizer, stop words dropped), hashed into ``dim``
buckets with scikit-learn's ``HashingVectorizer`` (stateless: a text's vector never depends
on the rest of the corpus, so the embedding cache stays valid), sublinear term frequency,
L2-normalised rows.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer

from reclm_dagster.encoders.clean import clean_texts
from reclm_dagster.text.normalize import segment


class LexicalEncoder:
    name = "reclm/hashed-bag-of-words"

    def __init__(self, dim: int = 1024):
        self.dim = int(dim)
        self._vectorizer = HashingVectorizer(
            n_features=self.dim, analyzer=segment, alternate_sign=False, norm=None, dtype=np.float32
        )
        params = f"{self.name}|dim={self.dim}|sublinear-tf|segment-v1"
        self.weights_hash = hashlib.sha256(params.encode()).hexdigest()

    @property
    def version(self) -> str:
        return f"{self.name}@{self.weights_hash[:12]}"

    @property
    def precision(self) -> str:
        return "fp32"


    def encode(self, texts, progress: bool = False, desc: str = "encoding") -> np.ndarray:
        if len(texts) == 0:  # every text came from the cache (sklearn's hasher refuses an empty batch)
            return np.zeros((0, self.dim), dtype=np.float32)
        counts = self._vectorizer.transform(clean_texts(texts)).tocsr()
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf: a word said 10 times is not 10x the evidence
        dense = counts.toarray().astype(np.float32)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        return dense / np.where(norms > 0, norms, 1.0)

    def tokenize_stats(self, texts) -> pd.DataFrame:
        """Same columns as TransformerEncoder.tokenize_stats: hashed bucket ids, never truncated."""
        texts = clean_texts(texts)
        hashed = self._vectorizer.transform(texts).tocsr()
        hashed.sort_indices()
        return pd.DataFrame({
            "token_ids": [hashed.indices[hashed.indptr[i]:hashed.indptr[i + 1]].astype(np.int64) for i in range(len(texts))],
            "n_tokens": [len(segment(t)) for t in texts],
            "truncated": [False] * len(texts),
            "n_unknown": [0] * len(texts),
        }, columns=["token_ids", "n_tokens", "truncated", "n_unknown"])
