"""CF for catalogues past a dense n_items² EASE: candidates against dense EASE, then at scale (issue 13.3).

Part 1 (quality). On ml-latest-small and hetrec2011-lastfm-2k, with the project's default
protocol (per-user random 80/10/10 split, seed 0, as ``evaluation/baselines.py``): each
candidate's grid is fitted on train and ranked on validation only; the best setting (fitted
on train) is scored on test with train+valid excluded. Printed: test NDCG@10 / Recall@20,
the ratio to dense EASE, the chosen setting's fit seconds and the process's peak RSS. Each
(dataset, candidate) runs in its own process, so peak RSS is that candidate's.

Part 2 (scale). Synthetic catalogues from ``reclm_dagster.datasets.synth`` (written under
/tmp): the chosen model's fit seconds, peak RSS, fitted bytes and the seconds to produce
every user's top-100 (seen items excluded) with ``SparseItemCF.recommend``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/large_catalogue.py [--parts quality,scale]
        [--scales 100k,1m] [--datasets ml-latest-small,hetrec2011-lastfm-2k]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

DATA_DIR = Path(os.environ.get("RECLM_DATA_DIR", "/work/shared/data"))
OUT = Path(__file__).resolve().parent / "results" / "large_catalogue.json"
DATASETS = ("ml-latest-small", "hetrec2011-lastfm-2k")
CANDIDATES = ("ease", "ease_sparse", "rp3beta_sparse", "cosine_sparse", "als", "bpr")
SCALES = {  # name -> (items, users, interactions)
    "100k": (100_000, 200_000, 10_000_000),
    "1m": (1_000_000, 1_000_000, 50_000_000),
}
SYNTH_DIR = Path("/tmp/reclm-synth")


class ImplicitMF:
    """``implicit``'s ALS or BPR behind the fit(X) / score(rows, X) interface (CPU, one thread)."""

    def __init__(self, kind: str, **params) -> None:
        self.kind, self.params = kind, params

    def fit(self, X):
        import numpy as np
        import scipy.sparse as sp

        from reclm_dagster.models.matrix import binarize

        if self.kind == "als":
            from implicit.cpu.als import AlternatingLeastSquares as M
        else:
            from implicit.cpu.bpr import BayesianPersonalizedRanking as M
        self.model_ = M(**self.params, num_threads=1, random_state=0)
        self.model_.fit(sp.csr_matrix(binarize(X)), show_progress=False)
        self.user_, self.item_ = (np.asarray(a, np.float32) for a in (self.model_.user_factors, self.model_.item_factors))
        return self

    def score(self, user_rows, X):
        return self.user_[user_rows] @ self.item_.T


def _registry():
    """Candidate name -> Baseline(make, grid, defaults), as in evaluation/baselines.py."""
    from reclm_dagster.evaluation.baselines import REGISTRY, Baseline
    from reclm_dagster.models.large_catalogue import SparseCFConfig, SparseItemCF

    return {
        "ease": REGISTRY["ease"],
        "ease_sparse": Baseline(
            lambda l2, k_neighbors: SparseItemCF(SparseCFConfig("ease", int(k_neighbors), l2=float(l2))),
            {"l2": (50.0, 100.0, 200.0, 500.0), "k_neighbors": (50, 100)}, {"l2": 200.0, "k_neighbors": 100}),
        "rp3beta_sparse": Baseline(
            lambda alpha, beta, k_neighbors: SparseItemCF(SparseCFConfig("rp3beta", int(k_neighbors), alpha, beta)),
            {"alpha": (0.6, 1.0), "beta": (0.2, 0.35, 0.5), "k_neighbors": (100, 200)},
            {"alpha": 1.0, "beta": 0.35, "k_neighbors": 200}),
        "cosine_sparse": Baseline(
            lambda k_neighbors: SparseItemCF(SparseCFConfig("cosine", int(k_neighbors))),
            {"k_neighbors": (50, 100, 200, 400)}, {"k_neighbors": 100}),
        "als": Baseline(
            lambda factors, regularization, alpha: ImplicitMF("als", factors=int(factors), regularization=regularization,
                                                              alpha=alpha, iterations=15),
            {"factors": (64, 128, 256), "regularization": (0.05,), "alpha": (1.0, 10.0)},
            {"factors": 128, "regularization": 0.05, "alpha": 1.0}),
        "bpr": Baseline(
            lambda factors, learning_rate: ImplicitMF("bpr", factors=int(factors), learning_rate=learning_rate,
                                                      regularization=0.01, iterations=100),
            {"factors": (64, 128), "learning_rate": (0.01, 0.05)}, {"factors": 128, "learning_rate": 0.05}),
    }


def quality_one(dataset: str, candidate: str) -> dict:
    """One candidate on one dataset (run in a child process: the peak RSS is its own)."""
    import numpy as np

    from reclm_dagster.datasets import load_dataset
    from reclm_dagster.evaluation import baselines
    from reclm_dagster.evaluation.holdout import EvaluationProtocol, split_for
    from reclm_dagster.models.matrix import InteractionMatrix
    from reclm_dagster.profiling import peak_rss_mb, rss_mb

    protocol = EvaluationProtocol()  # the default: random 80/10/10, seed 0
    interactions = load_dataset(dataset, DATA_DIR).interactions
    split, _ = split_for(interactions, protocol)
    users = np.sort(interactions["user_id"].astype(str).unique())
    items = np.sort(interactions["item_id"].astype(str).unique())
    matrix = InteractionMatrix(split[split["split"] == "train"], users=users, items=items)
    X_valid, _ = matrix.align(split[split["split"] == "valid"])
    X_test, _ = matrix.align(split[split["split"] == "test"])
    popularity = np.asarray((matrix.X > 0).sum(axis=0)).ravel()
    baselines.REGISTRY[candidate] = _registry()[candidate]
    rss_before = rss_mb()
    start = time.perf_counter()
    res = baselines.run_baseline(candidate, matrix.X, X_valid, X_test, ks=protocol.ks, item_popularity=popularity,
                                 cold_items=popularity <= protocol.cold_item_max_train, ease_max_items=10**9)
    total = time.perf_counter() - start
    table = res.tuning
    chosen = table[table["chosen"]].iloc[0] if len(table) else None
    return {
        "dataset": dataset, "candidate": candidate, "n_users": int(matrix.X.shape[0]), "n_items": int(matrix.X.shape[1]),
        "params": {k: (v.item() if hasattr(v, "item") else v) for k, v in res.params.items()},
        "ndcg@10": res.metrics["ndcg@10"], "recall@20": res.metrics["recall@20"],
        "valid_ndcg@10": float(chosen["ndcg@10"]) if chosen is not None else None,
        "fit_s": float(chosen["fit_s"]) if chosen is not None else None,
        "tuning_s": round(total, 1), "rss_before_mb": round(rss_before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "grid": table.drop(columns=["chosen"]).to_dict(orient="records"),
    }


def _synth_matrix(scale: str):
    """CSR of a synthetic catalogue (written once under /tmp, then read back)."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    from reclm_dagster.datasets.synth import SynthSpec

    n_items, n_users, n_x = SCALES[scale]
    spec = SynthSpec(items=n_items, users=n_users, interactions=n_x)
    folder = SYNTH_DIR / spec.name()
    t = pq.read_table(folder / "interactions.parquet", columns=["user_id", "item_id"])
    u = pc.cast(pc.utf8_slice_codeunits(t["user_id"], 1), "int64").to_numpy()
    i = pc.cast(pc.utf8_slice_codeunits(t["item_id"], 1), "int64").to_numpy()
    del t
    X = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(n_users, n_items))
    X.sum_duplicates()
    return X


def synth_write(scale: str) -> dict:
    from reclm_dagster.datasets.synth import SynthSpec, write

    n_items, n_users, n_x = SCALES[scale]
    spec = SynthSpec(items=n_items, users=n_users, interactions=n_x)
    folder = SYNTH_DIR / spec.name()
    if (folder / "SOURCE.md").exists():
        return {"folder": str(folder), "seconds": 0.0, "cached": True}
    start = time.perf_counter()
    counts = write(spec, folder)
    return {"folder": str(folder), "seconds": round(time.perf_counter() - start, 1), "rows": counts}


def scale_one(scale: str, overrides: str = "{}", k: int = 100, batch: int = 4096) -> dict:
    """The chosen model (``overrides``: JSON of SparseCFConfig fields) on a synthetic catalogue:
    fit, then every user's top-``k``."""
    import numpy as np

    from reclm_dagster.models.large_catalogue import SparseItemCF, dense_ease_bytes, dense_ease_fits
    from reclm_dagster.profiling import peak_rss_mb, rss_mb

    start = time.perf_counter()
    X = _synth_matrix(scale)
    load_s = time.perf_counter() - start
    rss_data = rss_mb()
    start = time.perf_counter()
    model = SparseItemCF(**json.loads(overrides)).fit(X)
    fit_s = time.perf_counter() - start
    peak_fit = peak_rss_mb()
    start = time.perf_counter()
    n_lists, short = 0, 0
    for s in range(0, X.shape[0], batch):
        rows = np.arange(s, min(X.shape[0], s + batch))
        idx, _ = model.recommend(rows, X, k=k)
        n_lists += len(rows)
        short += int((idx < 0).any(axis=1).sum())
    rec_s = time.perf_counter() - start
    return {
        "scale": scale, "n_users": int(X.shape[0]), "n_items": int(X.shape[1]), "nnz": int(X.nnz),
        "config": model.config.__dict__, "load_s": round(load_s, 1), "rss_after_load_mb": round(rss_data, 1),
        "fit_s": round(fit_s, 1), "peak_rss_fit_mb": round(peak_fit, 1), "model_mb": round(model.nbytes / 2**20, 1),
        "similarity_nnz": int(model.similarity_.nnz), f"top{k}_all_users_s": round(rec_s, 1), "lists": n_lists,
        "short_lists": short, "peak_rss_mb": round(peak_rss_mb(), 1),
        "dense_ease_peak_gb": round(dense_ease_bytes(X.shape[1]) / 1e9, 1),
        "dense_ease_fits_here": bool(dense_ease_fits(X.shape[1])),
    }


def _child(kind: str, *args: str, timeout: float | None = None) -> dict:
    """Run one measurement in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, __file__, "--child", kind, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:], "args": [kind, *args]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_quality(rows: list[dict]) -> None:
    print(f"\n{'dataset':22s} {'model':15s} {'NDCG@10':>8s} {'/EASE':>6s} {'R@20':>7s} {'/EASE':>6s} "
          f"{'fit s':>7s} {'tune s':>7s} {'peak MB':>8s}  setting")
    for ds in dict.fromkeys(r.get("dataset") for r in rows):
        ease = next((r for r in rows if r.get("dataset") == ds and r.get("candidate") == "ease"), None)
        for r in (r for r in rows if r.get("dataset") == ds):
            ratio = r["ndcg@10"] / ease["ndcg@10"] if ease else float("nan")
            ratio_r = r["recall@20"] / ease["recall@20"] if ease else float("nan")
            r["ndcg_ratio_to_ease"], r["recall_ratio_to_ease"] = round(ratio, 4), round(ratio_r, 4)
            print(f"{ds:22s} {r['candidate']:15s} {r['ndcg@10']:8.4f} {ratio:6.3f} {r['recall@20']:7.4f} {ratio_r:6.3f} "
                  f"{r['fit_s']:7.2f} {r['tuning_s']:7.1f} {r['peak_rss_mb']:8.0f}  {r['params']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--parts", default="quality,scale")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--scales", default="100k,1m")
    ap.add_argument("--config", default="{}", help="JSON overrides of SparseCFConfig for the scale part")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        fn = {"quality": quality_one, "synth": synth_write, "scale": scale_one}[kind]
        print(json.dumps(fn(*rest)))
        return
    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    commands = payload.get("commands", [])
    commands.append(" ".join(["OMP_NUM_THREADS=1", "python", "benchmarks/large_catalogue.py", *sys.argv[1:]]))
    payload.pop("command", None)
    payload.update({"commands": commands,
                    "threads": os.environ.get("OMP_NUM_THREADS"), "protocol": "random 80/10/10 per user, seed 0; "
                    "grid tuned on validation (NDCG@10), chosen setting fitted on train, test excludes train+valid"})
    parts = args.parts.split(",")
    if "quality" in parts:
        rows = []
        for ds in args.datasets.split(","):
            for cand in args.candidates.split(","):
                r = _child("quality", ds, cand)
                print(json.dumps({k: r.get(k) for k in ("dataset", "candidate", "ndcg@10", "fit_s", "peak_rss_mb", "error")}),
                      flush=True)
                rows.append(r)
        # keep earlier rows of candidates not re-run this time
        fresh = {(r.get("dataset"), r.get("candidate")) for r in rows}
        rows = [r for r in payload.get("quality", []) if (r.get("dataset"), r.get("candidate")) not in fresh] + rows
        order = {c: i for i, c in enumerate(CANDIDATES)}
        rows.sort(key=lambda r: (DATASETS.index(r["dataset"]) if r.get("dataset") in DATASETS else 9,
                                 order.get(r.get("candidate"), 99)))
        ok = [r for r in rows if "error" not in r]
        _print_quality(ok)
        payload["quality"] = rows
    if "scale" in parts:
        results = payload.get("scale", {})
        for scale in args.scales.split(","):
            gen = _child("synth", scale)
            print(f"synth {scale}: {gen}", flush=True)
            r = _child("scale", scale, args.config)
            r["synth"] = gen
            print(json.dumps(r), flush=True)
            results[scale if args.config == "{}" else f"{scale} {args.config}"] = r
        payload["scale"] = results
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
