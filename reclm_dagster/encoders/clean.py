"""The one way texts are cleaned before encoding (and before cache keys are computed)."""

from __future__ import annotations

import math


def clean_texts(texts) -> list[str]:
    """None / NaN become '', everything else its str(): encoders and the cache agree on keys."""
    return ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in texts]
