"""reclm's baselines under two protocols: tuned 80/10/10 and the untuned 80/20 reference.

Uses the same code path as the evaluation asset (``evaluate_baselines`` shares the
split, tuning and test scoring of ``offline_evaluation``), without text, so no
DuckDB or embeddings are needed. Prints one table per run and writes
``benchmarks/results/baselines_protocols.json``.

    python benchmarks/baselines_protocols.py [--runs ml-801010,ml-8020,lastfm-8020,lastfm-801010]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DATA_DIR = Path(os.environ.get("RECLM_DATA_DIR", "/work/shared/data"))
OUT = Path(__file__).resolve().parent / "results" / "baselines_protocols.json"
# NDCG@10 (and EASE's Recall@20) of the reference 80/20 protocol (see reference_baselines.py)
REFERENCE = {
    "hetrec2011-lastfm-2k": {"pop": 0.078, "itemknn": 0.187, "ease": 0.223, "ease_recall@20": 0.266},
    "ml-latest-small": {"pop": 0.187, "itemknn": 0.333, "ease": 0.377, "ease_recall@20": 0.257},
}
# name -> (dataset, valid_fraction, test_fraction)
RUNS = {
    "ml-801010": ("ml-latest-small", 0.1, 0.1),
    "ml-8020": ("ml-latest-small", 0.0, 0.2),
    "lastfm-8020": ("hetrec2011-lastfm-2k", 0.0, 0.2),
    "lastfm-801010": ("hetrec2011-lastfm-2k", 0.1, 0.1),
}


def run(name: str, seed: int) -> dict:
    from reclm_dagster.datasets import load_dataset
    from reclm_dagster.evaluation.offline import EvaluationProtocol, evaluate_baselines
    from reclm_dagster.evaluation.report import eval_json, format_table

    dataset, valid, test = RUNS[name]
    protocol = EvaluationProtocol(valid_fraction=valid, test_fraction=test, seed=seed)
    interactions = load_dataset(dataset, DATA_DIR).interactions
    start = time.perf_counter()
    result = evaluate_baselines(interactions, protocol)
    seconds = time.perf_counter() - start
    print(f"\n== {dataset}: {protocol.name()} ({seconds:.0f}s)\n{format_table(result)}")
    for model, params in result.params.items():
        print(f"  {model:8s} {params}")
    for model, table in result.baseline_tuning.items():
        print(f"  validation grid of {model}:\n    " + table.to_string(index=False).replace("\n", "\n    "))
    ref = REFERENCE.get(dataset, {}) if valid == 0 and test == 0.2 else {}
    if ref:
        wide = result.wide()
        cmp = [f"{m} {wide.at[m, 'ndcg@10']:.3f} (ref {ref[m]})" for m in ("pop", "itemknn", "ease") if m in wide.index]
        if "ease" in wide.index:
            cmp.append(f"EASE Recall@20 {wide.at['ease', 'recall@20']:.3f} (ref {ref['ease_recall@20']})")
        print("  vs reference NDCG@10: " + ", ".join(cmp))
    return {
        "run": name,
        "seconds": round(seconds, 1),
        "reference": ref,
        "evaluation": eval_json(dataset, protocol, result),
        "tuning": {m: t.to_dict(orient="records") for m, t in result.baseline_tuning.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="ml-801010,ml-8020,lastfm-8020")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    results = [run(name, args.seed) for name in args.runs.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data_dir": str(DATA_DIR), "runs": results}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
