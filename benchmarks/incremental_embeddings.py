"""What the embedding cache saves: a full encode into an empty cache vs. the next run after
1% new descriptions arrive.

    python benchmarks/incremental_embeddings.py [--dataset hetrec2011-lastfm-2k] [--new-share 0.01]

Texts are those the ``text_embeddings`` asset encodes (item documents + description texts,
each distinct text once), from the dataset under RECLM_DATA_DIR (default /work/shared/data).
The new descriptions are synthesised by perturbing existing ones (seeded): a random
existing description's text joined with another's, so each is a text the cache has not
seen. Both runs go through ``cached_encode`` on a fresh DuckDB file with the packaged
MiniLM, so the second time includes hashing, lookup and insert, not only the model.
The pair is repeated (--repeats, each on a new empty cache) and the best time of each kept,
so a burst of load from another process hurts one round rather than the ratio. Writes benchmarks/results/incremental_embeddings.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import torch

from reclm_dagster.datasets import load_dataset
from reclm_dagster.encoders.cache import cached_encode
from reclm_dagster.encoders.transformer import TransformerEncoder
from reclm_dagster.text.documents import item_documents

RESULTS = Path(__file__).resolve().parent / "results" / "incremental_embeddings.json"


def new_descriptions(texts: pd.Series, share: float, seed: int) -> list[str]:
    """ceil(share * rows) texts not among ``texts``: one description's text joined with another's."""
    rng = np.random.default_rng(seed)
    n = math.ceil(share * len(texts))
    seen, out = set(texts), []
    values = texts.to_numpy()
    while len(out) < n:
        a, b = values[rng.integers(len(values), size=2)]
        text = f"{a} {b}"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def timed(con, encoder, texts: list[str]) -> tuple[float, dict]:
    stats: dict = {}
    start = time.perf_counter()
    cached_encode(con, encoder, texts, stats=stats)
    return time.perf_counter() - start, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="hetrec2011-lastfm-2k")
    ap.add_argument("--new-share", type=float, default=0.01, help="new descriptions as a share of the stored ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    root = Path(os.environ.get("RECLM_DATA_DIR", "/work/shared/data"))
    ds = load_dataset(args.dataset, root)
    desc = ds.descriptions["text"].astype(str)
    base = item_documents(ds.items, ds.facts).tolist() + desc.tolist()
    added = new_descriptions(desc, args.new_share, args.seed)
    encoder = TransformerEncoder()
    print(f"{args.dataset}: {len(ds.items)} items, {len(desc)} descriptions -> {len(set(base))} distinct texts; "
          f"+{len(added)} new descriptions; {encoder.version}, {encoder.precision}, {torch.get_num_threads()} torch threads")
    encoder.encode(base[:64])  # warm-up outside the timings (kernel selection, allocations)

    load_before = os.getloadavg()[0]
    rounds = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            con = duckdb.connect(str(Path(tmp) / "cache.duckdb"))
            full_s, full = timed(con, encoder, base)
            incr_s, incr = timed(con, encoder, base + added)
            cache_mb = (Path(tmp) / "cache.duckdb").stat().st_size / 1e6
            con.close()
        rounds.append({"full_seconds": round(full_s, 2), "incremental_seconds": round(incr_s, 2)})
        print(f"round {r + 1}: full encode into an empty cache {full_s:.1f}s ({full['misses']} encoded); "
              f"after +{len(added)} descriptions {incr_s:.1f}s ({incr['hits']} from the cache, {incr['misses']} encoded)")
    full_s = min(x["full_seconds"] for x in rounds)
    incr_s = min(x["incremental_seconds"] for x in rounds)
    ratio = full_s / incr_s
    print(f"best: full {full_s:.1f}s, incremental {incr_s:.1f}s, speed-up {ratio:.1f}x; cache file {cache_mb:.0f} MB")

    result = {
        "dataset": args.dataset,
        "encoder": encoder.version,
        "precision": encoder.precision,
        "torch_threads": torch.get_num_threads(),
        "n_items": len(ds.items),
        "n_descriptions": len(desc),
        "distinct_texts": len(set(base)),
        "new_descriptions": len(added),
        "new_share": args.new_share,
        "full_seconds": round(full_s, 2),
        "full_encoded": full["misses"],
        "incremental_seconds": round(incr_s, 2),
        "incremental_hits": incr["hits"],
        "incremental_encoded": incr["misses"],
        "speedup": round(ratio, 2),
        "rounds": rounds,
        "cache_file_mb": round(cache_mb, 1),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
