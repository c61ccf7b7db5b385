"""Per-user train / valid / test hold-out (RecBole-style ratio split)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SplitCounts:
    n_users_split: int  # users with ≥1 held-out interaction
    n_users_train_only: int
    n_train: int
    n_valid: int
    n_test: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    # Python's round() is banker's rounding (round(2.5) == 2); hold-outs use half-up
    return np.floor(x + 0.5).astype(np.int64)


def holdout_sizes(
    n: np.ndarray,
    valid_fraction: float,
    test_fraction: float,
    min_interactions: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (n_valid, n_test) for users with ``n`` interactions each.

    Sizes are round-half-up(n * fraction). A user with fewer than
    ``min_interactions`` interactions, or whose hold-out would leave no train
    interaction, is not split at all (both sizes 0).
    """
    n = np.asarray(n, dtype=np.int64)
    n_test = _round_half_up(n * test_fraction)
    n_valid = _round_half_up(n * valid_fraction)
    ok = (n >= min_interactions) & (n - n_test - n_valid >= 1)
    return np.where(ok, n_valid, 0), np.where(ok, n_test, 0)


def split_interactions(
    df: pd.DataFrame,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    method: str = "random",
    min_interactions: int | None = None,
    user_col: str = "user_id",
    time_col: str = "timestamp",
) -> tuple[pd.DataFrame, SplitCounts]:
    """Return ``(copy of df with a 'split' column, counts)``.

    Per user, ``round(n*test_fraction)`` interactions go to 'test' and
    ``round(n*valid_fraction)`` to 'valid' (half-up rounding), the rest to
    'train'. ``method='random'`` orders each user's interactions by a seeded
    shuffle (``np.random.default_rng(seed)``); ``'temporal'`` holds out the
    latest by ``time_col`` (test = latest, valid = just before it).
    ``min_interactions`` defaults to 3 when any hold-out is requested:
    smaller users keep everything in train. Deterministic for a given seed
    and input row order.
    """
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction >= 1:
        raise ValueError("fractions must be ≥ 0 and sum to < 1")
    if method not in ("random", "temporal"):
        raise ValueError("method must be 'random' or 'temporal'")
    if min_interactions is None:
        min_interactions = 3 if (valid_fraction > 0 or test_fraction > 0) else 0

    out = df.copy()
    n_rows = len(out)
    if n_rows == 0:
        out["split"] = pd.Series(dtype=object)
        return out, SplitCounts(0, 0, 0, 0, 0)
    codes, _ = pd.factorize(out[user_col], sort=True)
    rng = np.random.default_rng(seed)
    # one random key per row: sorting by it within a user == a seeded shuffle
    key = rng.random(n_rows)
    if method == "temporal":
        if time_col not in out.columns:
            raise KeyError(f"temporal split needs a '{time_col}' column")
        # latest first; the random key breaks timestamp ties reproducibly
        order = np.lexsort((key, -time_key(out[time_col]), codes))
    else:
        order = np.lexsort((key, codes))

    sorted_codes = codes[order]
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # position of each (sorted) row within its user's ordering: 0 = held out first
    pos = np.arange(n_rows) - starts[sorted_codes]
    n_valid, n_test = holdout_sizes(counts, valid_fraction, test_fraction, min_interactions)

    label = np.full(n_rows, "train", dtype=object)
    t_sorted = pos < n_test[sorted_codes]
    v_sorted = ~t_sorted & (pos < (n_test + n_valid)[sorted_codes])
    label[order[t_sorted]] = "test"
    label[order[v_sorted]] = "valid"
    out["split"] = label

    split_users = int(((n_valid + n_test) > 0).sum())
    counts_out = SplitCounts(
        n_users_split=split_users,
        n_users_train_only=int((counts > 0).sum()) - split_users,
        n_train=int((label == "train").sum()),
        n_valid=int((label == "valid").sum()),
        n_test=int((label == "test").sum()),
    )
    return out, counts_out


def time_key(t: pd.Series) -> np.ndarray:
    """Timestamps as sortable numbers (int64 ns for datetimes, else float)."""
    if pd.api.types.is_numeric_dtype(t):
        return t.to_numpy(dtype=np.float64)
    return pd.to_datetime(t).to_numpy(dtype="datetime64[ns]").astype(np.int64)
