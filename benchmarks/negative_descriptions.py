"""What handling negative descriptions ("overrated", a 1★ review) does to the text signals.

Same split and leakage rules as `reclm eval` (80/10/10, seed 0). The text profile is built
three ways — negative words treated like praise (weight 1), ignored (0), pushing away (-0.5,
the default) — and the `text` and `lexical` signals are scored on test, for all users and
for the users who wrote at least one negative description (the only ones it can change).
CF does not depend on this choice, so ItemKNN stands in for EASE to keep the run short.

    .venv/bin/python benchmarks/negative_descriptions.py --store $RECLM_HOME/reclm.duckdb \
        --dataset hetrec2011-lastfm-2k
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation.offline import EvaluationProtocol, held_out_description_mask, split_for
from reclm_dagster.evaluation.protocol import evaluate
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.settings import schema_name
from reclm_dagster.text.sentiment import negative_mask
from reclm_dagster.training import DatasetTables, fit_hybrid

RESULTS = Path(__file__).parent / "results" / "negative_descriptions.json"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True, help="a reclm DuckDB file where the dataset was embedded")
    p.add_argument("--dataset", default="hetrec2011-lastfm-2k")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    with duckdb.connect(args.store, read_only=True) as con:
        tables = DatasetTables.load(con, schema_name(args.dataset))
    protocol = EvaluationProtocol()
    split, _ = split_for(tables.interactions, protocol)
    train, held = split[split["split"] == "train"], split[split["split"] != "train"]
    mask = held_out_description_mask(tables.descriptions, held)
    negative = negative_mask(tables.descriptions, tables.description_tokens) & mask
    negative_users = set(tables.descriptions.loc[negative, "user_id"].astype(str))
    rows = []
    for weight in (1.0, 0.0, -0.5):
        config = HybridConfig(cf_model="itemknn", negative_weight=weight, weights={"cf": 1.0})
        model, matrix = fit_hybrid(tables, train, description_mask=mask, config=config)
        X_valid, _ = matrix.align(split[split["split"] == "valid"])
        X_test, _ = matrix.align(split[split["split"] == "test"])
        history = (matrix.X + X_valid).tocsr()
        only = np.isin(matrix.users, list(negative_users)).astype(np.float32)
        X_test_neg = sp.csr_matrix(sp.diags(only) @ X_test)
        for signal in ("text", "lexical"):
            for group, target in (("all users", X_test), ("users with negative words", X_test_neg)):
                res = evaluate(model.scorer(signal, history), matrix.X, target, history, ks=(10, 20))
                rows.append({"negative_weight": weight, "signal": signal, "users": group, "n_users": res["n_users"],
                             "ndcg@10": round(res["ndcg@10"], 4), "recall@20": round(res["recall@20"], 4)})
        print(pd.DataFrame(rows[-4:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{args.dataset}: {int(negative.sum())} negative descriptions by {len(negative_users)} users\n")
    print(table.to_string(index=False))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"dataset": args.dataset, "n_negative": int(negative.sum()),
                                          "n_users": len(negative_users), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
