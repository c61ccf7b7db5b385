"""EASE's primal and dual solvers side by side, on one dataset's default split, in one process.

    python benchmarks/ease_solvers.py --dataset hetrec2011-lastfm-2k [--threads 1]

Fits what a `reclm run` fits — the EASE baseline (users × items) and the hybrid's EASE with its
side-information rows (users + item features) — with ``solver="primal"`` (the items² inversion)
and ``solver="dual"`` (the rows² one, models/ease.py) at the configured λ and g, and reports for
each: seconds, the memory the fit and a scoring pass allocate (tracemalloc peak), validation
NDCG@10 and the largest score difference between the two. Texts are embedded with the hashed
bag-of-words encoder (only the fit is measured). JSON: benchmarks/results/ease_solvers_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _measure(make, X_train, X_valid, side, popularity):
    from reclm_dagster.evaluation.protocol import evaluate

    tracemalloc.start()
    start = time.perf_counter()
    model = make().fit(X_train, side=side)
    fit_s = time.perf_counter() - start
    rows = np.arange(min(512, X_train.shape[0]))
    scores = model.score(rows, X_train)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    res = evaluate(lambda r: model.score(r, X_train), X_train, X_valid, X_train, ks=(10,), item_popularity=popularity)
    return model, scores, {"solver": model.solver_, "fit_s": round(fit_s, 2), "peak_alloc_mb": round(peak / 2**20, 1),
                           "valid_ndcg@10": round(float(res["ndcg@10"]), 5),
                           "valid_scoring_s": round(time.perf_counter() - start, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: the library's)")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    from reclm_dagster import settings
    from reclm_dagster.datasets import load_dataset
    from reclm_dagster.encoders.lexical_encoder import LexicalEncoder
    from reclm_dagster.evaluation.holdout import EvaluationProtocol, prepare_split
    from reclm_dagster.models.ease import EASE
    from reclm_dagster.training import DatasetTables, fit_hybrid, hybrid_config

    cfg = settings.load_config()
    protocol, config = EvaluationProtocol.from_config(cfg), hybrid_config(cfg)
    data = prepare_split(DatasetTables.from_dataset(load_dataset(args.dataset), LexicalEncoder()), protocol, args.dataset)
    hybrid, _ = fit_hybrid(data.tables, data.train, data.mask, config)
    side = hybrid.side_
    del hybrid
    cases = {"ease baseline": dict(l2=config.ease_l2), "hybrid cf (side rows)": dict(l2=config.ease_l2, side_weight=config.side_weight)}
    out = {"dataset": args.dataset, "threads": args.threads, "users": data.X_train.shape[0], "items": data.X_train.shape[1],
           "side_features": int(side.shape[1]) if side is not None else 0, "cases": {}}
    for name, kw in cases.items():
        row = {}
        primal, s_primal, row["primal"] = _measure(lambda: EASE(solver="primal", **kw), data.X_train, data.X_valid, side, data.popularity)
        del primal
        dual, s_dual, row["dual"] = _measure(lambda: EASE(solver="dual", **kw), data.X_train, data.X_valid, side, data.popularity)
        row["rows"] = int(dual.Rt_.shape[1])
        row["fit_speed-up"] = round(row["primal"]["fit_s"] / max(row["dual"]["fit_s"], 1e-9), 1)
        row["max_abs_score_diff"] = float(np.abs(s_primal - s_dual).max())
        out["cases"][name] = row
        print(name, json.dumps(row), flush=True)
    out["load_average"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"ease_solvers_{args.dataset}.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
