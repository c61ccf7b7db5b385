"""Which descriptions say the user *dislikes* the item (a 1★ review, the tag "overrated").

Negative words must not pull a user towards items like the one they disliked. A description
is negative when it carries a rating in the bottom ``NEGATIVE_RATING_SHARE`` of its scale
(≤ 2 of 5), or, without a rating, when it is short (a tag: ≤ 4 tokens) and names a word of
``assets/sentiment/negative.txt``. Long unrated reviews are left alone: a lexicon cannot
read "not boring at all".
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from reclm_dagster.settings import ASSETS_DIR
from reclm_dagster.text.normalize import SHORT_TEXT_TOKENS, normalize

NEGATIVE_RATING_SHARE = 0.4  # ratings ≤ 40% of the scale's maximum (2 of 5, 4 of 10) are negative


@lru_cache(maxsize=1)
def negative_words() -> frozenset[str]:
    words = set()
    for line in (ASSETS_DIR / "sentiment" / "negative.txt").read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.add(normalize(word))
    return frozenset(words)


def negative_mask(descriptions: pd.DataFrame, tokens: list[list[str]], rating_max: float | None = None) -> np.ndarray:
    """True for descriptions that express dislike (rows align with ``tokens``)."""
    n = len(descriptions)
    out = np.zeros(n, dtype=bool)
    if not n:
        return out
    if "rating" in descriptions:
        ratings = pd.to_numeric(descriptions["rating"], errors="coerce").to_numpy(dtype=float)
        scale = rating_max or (np.nanmax(ratings) if np.isfinite(ratings).any() else np.nan)
        rated = np.isfinite(ratings)
        if np.isfinite(scale) and scale > 0:
            out |= rated & (ratings <= NEGATIVE_RATING_SHARE * scale)
    else:
        rated = np.zeros(n, dtype=bool)
    lexicon = negative_words()
    texts = descriptions["text"].astype(str).map(normalize).to_numpy() if "text" in descriptions else np.full(n, "")
    for i, (text, toks) in enumerate(zip(texts, tokens)):
        if rated[i] or len(toks) > SHORT_TEXT_TOKENS:
            continue
        if text in lexicon or any(t in lexicon for t in toks):
            out[i] = True
    return out
