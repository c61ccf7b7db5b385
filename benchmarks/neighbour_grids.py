"""The evaluation's Item-kNN and RP3beta grids: one fit per setting against one pass per grid
(``Baseline.fit_grid``), side by side in one process. Every model of the pass must equal its own
fit, entry for entry.

    python benchmarks/neighbour_grids.py --interactions DIR/interactions.parquet [--max-items 30000]

``DIR``: a ``reclm synth`` folder or any table with user_id and item_id columns (all its rows are
fitted, as the evaluation fits its train rows). ``--max-items``: only the interactions of that
many most popular items. Writes benchmarks/results/neighbour_grids.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparse_ease_fit import interaction_matrix  # noqa: E402  (one loader for both fit benchmarks)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "neighbour_grids.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interactions", type=Path, required=True)
    ap.add_argument("--max-items", type=int, default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from reclm_dagster.evaluation.baselines import REGISTRY, candidates, fit_baseline

    X = interaction_matrix(args.interactions)
    if args.max_items is not None and args.max_items < X.shape[1]:
        top = np.sort(np.argsort(-np.asarray(X.sum(axis=0)).ravel(), kind="stable")[: args.max_items])
        X = X[:, top].tocsr()
        X = X[np.diff(X.indptr) > 0]
    print(f"X: {X.shape[0]:,} users × {X.shape[1]:,} items, {X.nnz:,} interactions", flush=True)
    rows = []
    for name in ("itemknn", "rp3beta"):
        settings = candidates(name)
        start = time.perf_counter()
        alone = [fit_baseline(name, X, s) for s in settings]
        alone_s = time.perf_counter() - start
        start = time.perf_counter()
        shared = REGISTRY[name].fit_grid(X, settings)
        shared_s = time.perf_counter() - start
        equal = all((a.similarity_ != b.similarity_).nnz == 0 for a, b in zip(alone, shared))
        rows.append({"model": name, "settings": settings, "one_fit_per_setting_s": round(alone_s, 1),
                     "one_pass_s": round(shared_s, 1), "speed_up": round(alone_s / shared_s, 2), "equal": equal})
        print(f"{name:8} {len(settings)} fits {alone_s:7.1f} s   one pass {shared_s:7.1f} s   "
              f"{alone_s / shared_s:.2f}×   equal: {equal}", flush=True)
        del alone, shared
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"interactions": str(args.interactions), "shape": list(X.shape), "nnz": int(X.nnz),
                                    "max_items": args.max_items, "load_average": os.getloadavg(), "rows": rows},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
