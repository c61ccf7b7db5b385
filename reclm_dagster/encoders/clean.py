"""The one way texts are cleaned before encoding (and before cache keys are computed)."""

from __future__ import annotations

import math


def clean_texts(texts) -> list[str]:
    """None / NaN become '', everything else its str(): encoders and the cache agree on keys."""
    return ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in texts]


# Above this share of [UNK] tokens the encoder is guessing from what little it can read, and its
# vector of the text is noise (MiniLM reads most Chinese characters as [UNK], so every Chinese
# request looked "close in meaning" to every CJK title): such text must not drive a semantic match.
UNREADABLE_UNKNOWN_SHARE = 0.2


def encoder_reads(encoder, text: str) -> tuple[bool, float]:
    """``(readable, unknown share)`` of one text for this encoder (its ``tokenize_stats``)."""
    stats = encoder.tokenize_stats([text])
    n_tokens, n_unknown = int(stats["n_tokens"].iloc[0]), int(stats["n_unknown"].iloc[0])
    share = n_unknown / n_tokens if n_tokens else 0.0
    return share < UNREADABLE_UNKNOWN_SHARE, share
