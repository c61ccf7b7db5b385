"""Side information in EASE on validation: one HybridConfig knob varied, everything else fixed.

    RECLM_HOME=... python benchmarks/side_information.py --dataset hetrec2011-lastfm-2k \
        --vary dense_weight --values 0 0.5 1 2 4 [--dims 64] [--side-weight 1] [--l2 L]
    RECLM_HOME=... python benchmarks/side_information.py --dataset hetrec2011-lastfm-2k \
        --vary tag_merge_threshold --values 0 0.95 0.9 0.85

``dense_weight``: the items' text embeddings (PCA to ``--dims``, unit rows) stacked under X in
EASE's closed form next to the sparse side information (gram + g²FFᵀ + g_e²EEᵀ).
``tag_merge_threshold``: short texts said about items merged into one feature when their
embeddings have at least that cosine (plurals, misspellings, synonyms) before they become
side-information columns and KG entities.

Reads the dataset's stored tables (run `reclm run` or `reclm eval` first), splits it with the
default protocol (80/10/10, seed 0), fits the hybrid on train for each value and reports on
**validation only** (this script chooses nothing on test): NDCG@10 of the ``cf`` signal alone
and of the fusion with its weights tuned on validation, cold-item Recall@10, and the number of
side features. Writes benchmarks/results/<knob>_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from reclm_dagster import settings
from reclm_dagster.evaluation.offline import EvaluationProtocol, held_out_description_mask, split_for
from reclm_dagster.evaluation.protocol import evaluate
from reclm_dagster.evaluation.tuning import TUNING_METRIC, choose_setting, tune_fusion_weights
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.training import DatasetTables, fit_hybrid

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--vary", choices=["dense_weight", "tag_merge_threshold"], default="dense_weight")
    p.add_argument("--values", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("--side-weight", type=float, default=1.0)
    p.add_argument("--l2", type=float, default=None, help="EASE λ (default: the one the stored evaluation chose)")
    args = p.parse_args()

    schema = settings.schema_name(args.dataset)
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        tables = DatasetTables.load(con, schema)
        l2 = args.l2
        if l2 is None:
            report = json.loads(con.execute(f'SELECT json FROM "{schema}".evaluation_report').fetchone()[0])
            l2 = float(report["models"]["ease"]["params"]["l2"])
    protocol = EvaluationProtocol()
    split, _ = split_for(tables.interactions, protocol)
    train, valid, test = (split[split["split"] == s] for s in ("train", "valid", "test"))
    mask = held_out_description_mask(tables.descriptions, pd.concat([valid, test]))
    matrix = InteractionMatrix(train, users=tables.all_users(), items=tables.items["item_id"].astype(str).to_numpy())
    X_valid, _ = matrix.align(valid)
    popularity = np.asarray((matrix.X > 0).sum(axis=0)).ravel()
    cold = popularity <= protocol.cold_item_max_train

    rows = []
    for w in args.values:
        start = time.perf_counter()
        config = replace(HybridConfig(ease_l2=l2, side_weight=args.side_weight, dense_dims=args.dims), **{args.vary: w})
        model, m = fit_hybrid(tables, train, description_mask=mask, config=config)
        cf = evaluate(model.scorer("cf", m.X), m.X, X_valid, m.X, ks=(10,), cold_items=cold, item_popularity=popularity)
        weights, table = tune_fusion_weights(model, m.X, X_valid, popularity)
        best = table.loc[choose_setting(table)]
        rows.append({args.vary: w, "side_features": len(model.side_feature_names_), "cf_valid_ndcg@10": round(cf["ndcg@10"], 5),
                     "cf_valid_cold_recall@10": round(cf["cold"]["recall@10"], 5),
                     "fusion_valid_ndcg@10": round(float(best[TUNING_METRIC]), 5),
                     "fusion_valid_cold_recall@10": round(float(best["cold_recall@10"]), 5),
                     "fusion_weights": {k: float(v) for k, v in weights.items()},
                     "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
        del model
    out = {"benchmark": args.vary, "dataset": args.dataset, "split": "validation (80/10/10 seed 0)",
           "ease_l2": l2, "side_weight": args.side_weight, "dims": args.dims, "encoder": tables.encoder_version,
           "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    name = "dense_side_information" if args.vary == "dense_weight" else args.vary
    path = RESULTS / f"{name}_{args.dataset}.json"
    path.write_text(json.dumps(out, indent=2))
    print(pd.DataFrame(rows).drop(columns="fusion_weights").to_string(index=False))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
