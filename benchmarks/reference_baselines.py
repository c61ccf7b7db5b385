"""Reference CF baselines on two public datasets (full ranking, per-user 80/20).

Checks that reclm's Popularity / ItemKNN / EASE / RP3beta and the evaluation
protocol reproduce published-order-of-magnitude figures. Each (dataset, model)
runs in a fresh spawned process so its peak RSS is its own.

    python benchmarks/reference_baselines.py [--models pop,itemknn,ease,rp3beta]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(os.environ.get("RECLM_DATA_DIR", "/work/shared/data"))
OUT = Path(__file__).resolve().parent / "results" / "reference_baselines.json"
SEED = 0
TEST_FRACTION = 0.2

# NDCG@10 (and Recall@20 where given) this benchmark is expected to land near.
REFERENCE = {
    "lastfm-2k": {"pop": 0.078, "itemknn": 0.187, "ease": 0.223, "ease_recall@20": 0.266},
    "ml-latest-small": {"pop": 0.187, "itemknn": 0.333, "ease": 0.377, "ease_recall@20": 0.257},
}


def load(name: str) -> pd.DataFrame:
    """Interactions as (user_id, item_id, weight) with string ids."""
    if name == "lastfm-2k":
        df = pd.read_csv(DATA_DIR / "hetrec2011-lastfm-2k" / "user_artists.dat", sep="\t")
        df = df.rename(columns={"userID": "user_id", "artistID": "item_id"})
    elif name == "ml-latest-small":
        df = pd.read_csv(DATA_DIR / "ml-latest-small" / "ratings.csv")
        df = df.rename(columns={"userId": "user_id", "movieId": "item_id", "rating": "weight"})
    else:
        raise KeyError(name)
    df["user_id"] = df["user_id"].astype(str)
    df["item_id"] = df["item_id"].astype(str)
    return df[["user_id", "item_id", "weight"]]


def make_model(name: str):
    from reclm_dagster.models import EASE, ItemKNN, Popularity, RP3beta

    return {
        "pop": lambda: Popularity(),
        "itemknn": lambda: ItemKNN(k_neighbors=100, shrink=0.0),
        "ease": lambda: EASE(l2=200.0),
        "rp3beta": lambda: RP3beta(alpha=1.0, beta=0.5, k_neighbors=100),
    }[name]()


def run_one(dataset: str, model_name: str) -> dict:
    """Load, split, fit, evaluate one model (meant to run in its own process)."""
    from reclm_dagster.evaluation import evaluate, split_interactions
    from reclm_dagster.models import InteractionMatrix

    df = load(dataset)
    split, counts = split_interactions(df, valid_fraction=0.0, test_fraction=TEST_FRACTION, seed=SEED)
    train = split[split["split"] == "train"]
    test = split[split["split"] == "test"]
    # index over all users/items so test-only items exist (as cold) in the matrix
    im = InteractionMatrix(train, users=np.sort(df["user_id"].unique()), items=np.sort(df["item_id"].unique()))
    test_X, dropped = im.align(test)
    model = make_model(model_name)
    t0 = time.perf_counter()
    model.fit(im.X)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = evaluate(lambda rows: model.score(rows, im.X), im.X, test_X, im.X, ks=(10, 20))
    eval_s = time.perf_counter() - t0
    return {
        "dataset": dataset, "model": model_name,
        "n_users": int(im.shape[0]), "n_items": int(im.shape[1]),
        "n_train": counts.n_train, "n_test": counts.n_test, "n_test_dropped": dropped,
        "n_eval_users": res["n_users"],
        "ndcg@10": res["ndcg@10"], "recall@20": res["recall@20"],
        "precision@10": res["precision@10"], "map@10": res["map@10"],
        "coverage@10": res["coverage@10"], "novelty@10": res["novelty@10"],
        "fit_s": fit_s, "eval_s": eval_s,
        # ru_maxrss is KiB on Linux
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="lastfm-2k,ml-latest-small")
    ap.add_argument("--models", default="pop,itemknn,ease,rp3beta")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    rows = []
    for ds in args.datasets.split(","):
        for m in args.models.split(","):
            with ctx.Pool(1) as pool:
                r = pool.apply(run_one, (ds, m))
            ref = REFERENCE.get(ds, {}).get(m)
            r["reference_ndcg@10"] = ref
            rows.append(r)
            print(
                f"{ds:16s} {m:8s} NDCG@10 {r['ndcg@10']:.4f} (ref {ref if ref is not None else '-'})"
                f"  Recall@20 {r['recall@20']:.4f}  fit {r['fit_s']:7.1f}s  eval {r['eval_s']:6.1f}s"
                f"  peak RSS {r['peak_rss_mib']:7.0f} MiB",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "protocol": {
            "split": f"per-user random, test_fraction={TEST_FRACTION} (round half up), seed={SEED}, "
                     "users with <3 interactions train-only",
            "ranking": "full ranking over all items, train items excluded, binarized interactions",
            "data_dir": str(DATA_DIR),
        },
        "reference": REFERENCE,
        "results": rows,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
