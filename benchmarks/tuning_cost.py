"""What model selection and the evaluation cost on one dataset: seconds, dense EASE fits, NDCG.

    python benchmarks/tuning_cost.py --dataset ml-latest-small [--threads 1] [--json F]

Runs what `reclm run` runs for the hybrid on the default protocol — ``select_hybrid`` (the
``hybrid_selection`` asset), then ``offline_evaluation`` with that stored choice (the
``evaluation`` asset) — and counts every EASE fit (``EASE.fit``) with its seconds and solver
(``primal``: an n_items² inversion; ``dual``: a rows² one, models/ease.py).
Texts are embedded with the hashed bag-of-words encoder (no model: the cost measured is the
fitting and tuning). To compare two versions of reclm fairly on a loaded machine, run this
script from both checkouts at the same time with ``--threads 1`` (they then share the load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: the library's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    from reclm_dagster import settings
    from reclm_dagster.datasets import load_dataset
    from reclm_dagster.encoders.lexical_encoder import LexicalEncoder
    from reclm_dagster.evaluation.holdout import EvaluationProtocol
    from reclm_dagster.evaluation.offline import offline_evaluation
    from reclm_dagster.evaluation.selection import select_hybrid
    from reclm_dagster.models import ease
    from reclm_dagster.profiling import peak_rss_mb
    from reclm_dagster.training import DatasetTables, hybrid_config

    fits: list[tuple[str, float]] = []
    real_fit = ease.EASE.fit

    def counted(self, X, *a, **k):
        start = time.perf_counter()
        out = real_fit(self, X, *a, **k)
        fits.append((self.solver_, time.perf_counter() - start))
        return out

    ease.EASE.fit = counted
    cfg = settings.load_config()
    protocol, config = EvaluationProtocol.from_config(cfg), hybrid_config(cfg)
    tables = DatasetTables.from_dataset(load_dataset(args.dataset), LexicalEncoder())
    t0 = time.perf_counter()
    selection = select_hybrid(tables, protocol, config, dataset=args.dataset)
    t1 = time.perf_counter()
    n_selection = len(fits)
    kwargs = {"selection": selection} if "selection" in offline_evaluation.__code__.co_varnames else {}
    result = offline_evaluation(tables, protocol, config, dataset=args.dataset, **kwargs)
    t2 = time.perf_counter()
    wide = result.wide()
    out = {
        "dataset": args.dataset, "threads": args.threads, "n_items": len(tables.items),
        "selection_seconds": round(t1 - t0, 1), "evaluation_seconds": round(t2 - t1, 1),
        "dense_fits": {"selection": n_selection, "evaluation": len(fits) - n_selection,
                       "seconds": round(sum(s for _, s in fits), 1),
                       "solvers": {k: sum(1 for s, _ in fits if s == k) for k in sorted({s for s, _ in fits})}},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "ndcg@10": {m: round(float(wide.loc[m, "ndcg@10"]), 5) for m in wide.index if "ndcg@10" in wide.columns},
        "hybrid_setting": result.hybrid_config.as_params() if result.hybrid_config else None,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
