"""The sparse restricted EASE's fit, side by side in one process: an earlier revision of
``models/large_catalogue.py`` against this one (one thread, then ``--jobs`` threads), and the
λ refit from a kept gram (``SparseItemCF.with_l2``) against a fresh fit at that λ. Every
variant must give the same similarity matrix, entry for entry.

    python benchmarks/sparse_ease_fit.py --interactions DIR/interactions.parquet [--before 185d38d]

``DIR``: a ``reclm synth`` folder (e.g. ``reclm synth --items 100000 --users 200000
--interactions 10000000``) or any table with user_id and item_id columns. Writes
benchmarks/results/sparse_ease_fit.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "sparse_ease_fit.json"
MODULE = "reclm_dagster/models/large_catalogue.py"


def module_at(revision: str):
    """``models/large_catalogue.py`` as it was at ``revision`` (imported beside today's)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:{MODULE}"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"large_catalogue_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"large_catalogue_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def interaction_matrix(path: Path) -> sp.csr_matrix:
    df = pd.read_parquet(path, columns=["user_id", "item_id"])
    users = df["user_id"].astype("category").cat.codes.to_numpy()
    items = df["item_id"].astype("category").cat.codes.to_numpy()
    X = sp.csr_matrix((np.ones(len(df), np.float32), (users, items)))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def timed(fit) -> tuple[object, float]:
    start = time.perf_counter()
    model = fit()
    return model, round(time.perf_counter() - start, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interactions", type=Path, required=True)
    ap.add_argument("--before", default="185d38d", help="the earlier revision to compare with")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--l2", type=float, default=200.0)
    ap.add_argument("--other-l2", type=float, default=500.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from reclm_dagster.models import large_catalogue as now

    before = module_at(args.before)
    X = interaction_matrix(args.interactions)
    print(f"X: {X.shape[0]:,} users × {X.shape[1]:,} items, {X.nnz:,} interactions", flush=True)
    rows = []

    def record(name, model, seconds, reference=None):
        same = None if reference is None else bool((model.similarity_ != reference.similarity_).nnz == 0)
        rows.append({"variant": name, "seconds": seconds, "similarity_nnz": int(model.similarity_.nnz),
                     "equal_to_reference": same})
        print(f"{name:44} {seconds:8.1f} s  equal: {same}", flush=True)

    old, s = timed(lambda: before.SparseItemCF(before.SparseCFConfig(l2=args.l2)).fit(X))
    record(f"{args.before}: fit λ={args.l2:g}", old, s)
    real = now.restricted_ease
    for jobs in (1, args.jobs):
        now.restricted_ease = lambda *a, jobs=jobs, **kw: real(*a, **{**kw, "jobs": jobs})
        model, s = timed(lambda: now.SparseItemCF(now.SparseCFConfig(l2=args.l2), keep_gram=True).fit(X))
        record(f"now, {jobs} thread(s): fit λ={args.l2:g}", model, s, old)
    now.restricted_ease = real
    del old
    fresh, s = timed(lambda: now.SparseItemCF(now.SparseCFConfig(l2=args.other_l2)).fit(X))
    record(f"now: fresh fit λ={args.other_l2:g}", fresh, s)
    refit, s = timed(lambda: model.with_l2(args.other_l2))
    record(f"now: with_l2({args.other_l2:g}) from the kept gram", refit, s, fresh)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"interactions": str(args.interactions), "shape": list(X.shape), "nnz": int(X.nnz),
                                    "before": args.before, "load_average": os.getloadavg(), "rows": rows},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
