"""A deterministic synthetic catalogue of any size, in reclm's own folder format (issue 13.4).

Scale is tested without downloads: ``reclm synth --items 100000 --users 200000
--interactions 10000000`` writes items, interactions, descriptions and facts as Parquet
under ``$RECLM_DATA_DIR/<name>/``, and ``reclm run --dataset <name>`` reads them like any
catalogue. The same spec and seed always give the same files.

The data has the shape that matters for recommenders, so a model's cost and quality on it
mean something:
- item popularity is Zipf-like (a few items take most interactions), within each genre too;
- user activity is log-normal (most users have a few interactions, some many);
- each user prefers one genre: ``genre_affinity`` of their interactions come from it, the
  rest from the whole catalogue by popularity — collaborative filtering has signal to find;
- items have a synopsis built from their genre's words, users tag items with words mostly of
  the item's genre, a few write short reviews — text that agrees with the interactions;
- facts: every item ``has_genre`` and is ``by_artist`` one of ``items / 5`` creators.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_ADJ = ("quiet", "loud", "dark", "bright", "funny", "sad", "epic", "gentle", "strange", "warm", "cold", "wild",
        "slow", "fast", "tender", "bitter", "sweet", "grim", "hopeful", "lonely")
_NOUN = ("journey", "city", "river", "machine", "garden", "storm", "island", "night", "song", "letter",
         "mirror", "forest", "engine", "harbour", "tower", "desert", "planet", "kitchen", "circus", "archive")
_GENRE_WORDS = ("space", "robots", "romance", "heist", "jazz", "folk", "techno", "noir", "comedy", "horror", "western",
                "anime", "opera", "punk", "blues", "drama", "mystery", "fantasy", "documentary", "ambient",
                "metal", "soul", "thriller", "cooking", "travel", "history", "sport", "poetry", "satire", "war")
CHUNK = 2_000_000  # rows per Parquet row group: bounds the memory of the string columns


@dataclass(frozen=True)
class SynthSpec:
    items: int = 1_000
    users: int = 2_000
    interactions: int = 50_000
    seed: int = 0
    zipf: float = 1.0  # item popularity exponent
    genre_affinity: float = 0.7
    tag_rate: float = 0.05  # tags per interaction
    review_rate: float = 0.005

    def __post_init__(self):
        for name in ("items", "users", "interactions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.interactions > self.items * self.users:
            raise ValueError(f"{self.interactions} interactions cannot fit {self.users} users x {self.items} items")

    @property
    def genres(self) -> int:
        return int(np.clip(self.items // 500, 4, 4 * len(_GENRE_WORDS)))

    def name(self) -> str:
        return f"synth-{self.items}i-{self.users}u-{self.interactions}x-s{self.seed}"


def _ids(prefix: str, idx: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(pa.array(idx), pa.string()), "")


def _genre_name(g: np.ndarray) -> np.ndarray:
    base = np.array(_GENRE_WORDS, dtype=object)[g % len(_GENRE_WORDS)]
    round_ = g // len(_GENRE_WORDS)
    return np.where(round_ == 0, base, base + np.char.mod("-%d", round_).astype(object))


def _catalogue(spec: SynthSpec, rng: np.random.Generator):
    n, k = spec.items, spec.genres
    genre = rng.integers(0, k, n)
    popularity = 1.0 / np.arange(1, n + 1) ** spec.zipf
    popularity = popularity[rng.permutation(n)]  # popular items spread over genres and ids
    # Items grouped by genre, each genre's cumulative popularity shifted by its index, so one
    # searchsorted draws an item of genre g with a uniform number in [g, g + 1).
    order = np.lexsort((np.arange(n), genre))
    sorted_genre, sorted_pop = genre[order], popularity[order]
    totals = np.bincount(sorted_genre, weights=sorted_pop, minlength=k)
    local = np.cumsum(sorted_pop) - np.concatenate([[0], np.cumsum(totals)[:-1]])[sorted_genre]
    local_cdf = sorted_genre + local / np.where(totals[sorted_genre] > 0, totals[sorted_genre], 1)
    global_cdf = np.cumsum(popularity) / popularity.sum()
    return genre, order, local_cdf, global_cdf, totals


def _interactions(spec: SynthSpec, rng: np.random.Generator, genre_of_item, order, local_cdf, global_cdf, totals):
    activity = rng.lognormal(0.0, 1.0, spec.users)
    favourite = rng.choice(spec.genres, spec.users, p=totals / totals.sum())
    factor, pairs = 1.1, np.empty(0, np.int64)
    for _ in range(6):  # heavy users draw popular items twice: oversample until the pairs suffice
        counts = np.minimum(spec.items, np.maximum(1, np.floor(activity / activity.sum() * spec.interactions * factor))).astype(np.int64)
        users = np.repeat(np.arange(spec.users, dtype=np.int64), counts)
        in_genre = rng.random(len(users)) < spec.genre_affinity
        draws = rng.random(len(users))
        local_pos = np.searchsorted(local_cdf, favourite[users] + draws * 0.999999, side="right")
        items = np.where(in_genre, order[np.minimum(local_pos, spec.items - 1)],
                         np.minimum(np.searchsorted(global_cdf, draws, side="right"), spec.items - 1))
        pairs = np.unique(users * spec.items + items)  # one row per (user, item), sorted by user
        if len(pairs) >= spec.interactions:
            break
        factor *= 1.05 * spec.interactions / len(pairs)
    if len(pairs) > spec.interactions:
        pairs = np.sort(rng.choice(pairs, spec.interactions, replace=False))
    return pairs // spec.items, pairs % spec.items


def _words(rng, genre: np.ndarray, affinity: float) -> np.ndarray:
    own = rng.random(len(genre)) < affinity
    g = np.where(own, genre, rng.integers(0, int(genre.max(initial=0)) + 1, len(genre)))
    return _genre_name(g)


def write(spec: SynthSpec, folder: Path) -> dict[str, int]:
    """Write the catalogue into ``folder`` (created); returns the row count of each table."""
    rng = np.random.default_rng(spec.seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    genre, order, local_cdf, global_cdf, totals = _catalogue(spec, rng)
    n = spec.items
    adj = np.array(_ADJ, dtype=object)[rng.integers(0, len(_ADJ), n)]
    noun = np.array(_NOUN, dtype=object)[rng.integers(0, len(_NOUN), n)]
    gname = _genre_name(genre)
    idx = np.arange(n)
    titles = adj + " " + noun + " " + idx.astype(str).astype(object)
    synopsis = "a " + adj + " " + gname + " " + noun + " about " + _words(rng, genre, 1.0) + " and " + noun
    pq.write_table(pa.table({"item_id": _ids("i", idx), "title": pa.array(titles.tolist()), "description": pa.array(synopsis.tolist()),
                             "domain": pa.array(np.where(genre % 3 == 0, "audio", "video").tolist()), "language": pa.array(["en"] * n)}),
                   folder / "items.parquet")
    creators = np.minimum((rng.pareto(1.2, n) * 3).astype(np.int64), max(1, n // 5) - 1)
    facts = pa.table({
        "item_id": pa.concat_arrays([_ids("i", idx), _ids("i", idx)]),
        "relation": pa.array(["has_genre"] * n + ["by_artist"] * n),
        "entity": pa.concat_arrays([pa.array(gname.tolist()), _ids("artist ", creators)]),
    })
    pq.write_table(facts, folder / "facts.parquet")
    users, items = _interactions(spec, rng, genre, order, local_cdf, global_cdf, totals)
    m = len(users)
    weights = rng.geometric(0.4, m).astype(np.float64)  # play counts: 1 most often
    times = (1_500_000_000 + rng.integers(0, 200_000_000, m)).astype(np.int64)
    with pq.ParquetWriter(folder / "interactions.parquet", pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                                                                    ("weight", pa.float64()), ("timestamp", pa.int64())])) as out:
        for s in range(0, m, CHUNK):
            e = min(m, s + CHUNK)
            out.write_table(pa.table({"user_id": _ids("u", users[s:e]), "item_id": _ids("i", items[s:e]),
                                      "weight": weights[s:e], "timestamp": times[s:e]}))
    n_desc = _descriptions(spec, rng, folder, users, items, genre, times)
    counts = {"items": n, "users": int(len(np.unique(users))), "interactions": m, "descriptions": n_desc, "facts": 2 * n}
    (folder / "SOURCE.md").write_text(
        "# Synthetic catalogue written by `reclm synth`\n\nDeterministic: the same spec gives the same files.\n\n"
        f"```json\n{json.dumps({'spec': asdict(spec), 'rows': counts}, indent=1)}\n```\n", encoding="utf-8")
    return counts


def _descriptions(spec, rng, folder: Path, users, items, genre, times) -> int:
    m = len(users)
    tagged = np.sort(rng.choice(m, min(m, int(m * spec.tag_rate)), replace=False))
    reviewed = np.sort(rng.choice(m, min(m, int(m * spec.review_rate)), replace=False))
    tag_text = _words(rng, genre[items[tagged]], spec.genre_affinity)
    mood = np.array(_ADJ, dtype=object)[rng.integers(0, len(_ADJ), len(reviewed))]
    review_text = mood + " and " + _words(rng, genre[items[reviewed]], spec.genre_affinity) + ", " + \
        np.where(rng.random(len(reviewed)) < 0.7, "loved it", "not for me").astype(object)
    rows = [("t", tagged, "tag", tag_text), ("r", reviewed, "review", review_text)]
    schema = pa.schema([("description_id", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()),
                        ("kind", pa.string()), ("text", pa.string()), ("timestamp", pa.int64())])
    with pq.ParquetWriter(folder / "descriptions.parquet", schema) as out:
        for prefix, rows_at, kind, text in rows:
            for s in range(0, len(rows_at), CHUNK):
                at = rows_at[s:s + CHUNK]
                out.write_table(pa.table({"description_id": _ids(prefix, np.arange(s, s + len(at))), "user_id": _ids("u", users[at]),
                                          "item_id": _ids("i", items[at]), "kind": pa.array([kind] * len(at)),
                                          "text": pa.array(text[s:s + len(at)].tolist()), "timestamp": times[at]}, schema=schema))
    return len(tagged) + len(reviewed)
