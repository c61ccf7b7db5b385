"""Step 4 — similarity: item→item neighbours and user→item candidate scores, sparse top-K tables."""



import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from tqdm import tqdm

from reclm_dagster import settings, store
from reclm_dagster.defs.common import dataset_partitions, schema_of, table_meta, profiled
from reclm_dagster.defs.selection import TABLE_INPUTS
from reclm_dagster.models.fusion import linear_fusion
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.models.neighbors import ItemKNN
from reclm_dagster.models.ranking import topk
from reclm_dagster.training import DatasetTables, attach_reranker, chosen_hybrid_config, fit_hybrid, stored_reranker

BATCH = 512


@dg.asset(
    group_name="similarity",
    partitions_def=dataset_partitions,
    deps=TABLE_INPUTS,
    description="Top-K neighbours of every item by text embedding, by co-consumption (item-item cosine) and fused.",
)
@profiled
def item_similarity(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    cfg = settings.load_config()
    k = int(cfg.get("similar_items_k", 20))
    with duckdb.get_connection() as con:
        tables = DatasetTables.load(con, schema_of(context))
    items = tables.items["item_id"].astype(str).to_numpy()
    matrix = InteractionMatrix(tables.interactions, users=tables.all_users(), items=items)
    # Item-item cosine on behaviour; items nobody consumed have only text neighbours.
    cf_sim = ItemKNN(k_neighbors=int(cfg["hybrid"].get("k_neighbors", 100))).fit(matrix.X).similar_items()
    E = tables.item_vectors
    n = len(items)
    frames = []
    for start in tqdm(range(0, n, BATCH), desc="item neighbours", disable=n <= BATCH):
        rows = np.arange(start, min(start + BATCH, n))
        signals = {"text": E[rows] @ E.T, "cf": cf_sim[rows].toarray().astype(np.float32)}
        fused = linear_fusion(signals, {"text": 1.0, "cf": 1.0}, norm="zscore")
        fused[np.arange(len(rows)), rows] = -np.inf  # an item is not its own neighbour
        idx, vals = topk(fused, k, copy=False)
        r = np.repeat(rows, idx.shape[1])
        c = idx.ravel()
        keep = c >= 0
        frames.append(
            pd.DataFrame(
                {
                    "item_id": matrix.items[r[keep]],
                    "neighbor_id": matrix.items[c[keep]],
                    "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(rows))[keep],
                    "score": vals.ravel()[keep],
                    "score_text": signals["text"][r[keep] - start, c[keep]],
                    "score_cf": signals["cf"][r[keep] - start, c[keep]],
                }
            )
        )
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    with duckdb.get_connection() as con:
        store.replace_tables(con, schema_of(context), {"item_similarity": table})
    return dg.MaterializeResult(metadata=table_meta(table, neighbours_per_item=k, n_items=n))


@dg.asset(
    group_name="similarity",
    partitions_def=dataset_partitions,
    # hybrid_selection: the setting and re-ranker it reads. evaluation: not read, but its NDCG check is
    # blocking, so a hybrid that regressed on held-out data never replaces the stored lists.
    deps=["hybrid_selection", "evaluation", *TABLE_INPUTS],
    description="Per user, the top candidates by the fused hybrid score with each signal's score (cf, text, lexical, kg), "
    "with the setting and re-ranker hybrid_selection chose on validation. Already-consumed items are excluded.",
)
@profiled
def user_item_scores(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    cfg = settings.load_config()
    k = int(cfg.get("top_k", 50))
    with duckdb.get_connection() as con:
        tables = DatasetTables.load(con, schema_of(context))
        config = chosen_hybrid_config(con, schema_of(context), cfg)
        reranker_text = stored_reranker(con, schema_of(context))
    model, matrix = fit_hybrid(tables, tables.interactions, config=config)
    reranked = attach_reranker(model, reranker_text, matrix.X)
    X = matrix.X
    users = np.arange(len(matrix.users))
    frames = []
    for start in tqdm(range(0, len(users), BATCH), desc="scoring users", disable=len(users) <= BATCH):
        rows = users[start : start + BATCH]
        fused, signals = model.score_with_signals(rows, X)
        idx, vals = topk(fused, k, exclude=X[rows], copy=False)
        keep = idx.ravel() >= 0
        r_local = np.repeat(np.arange(len(rows)), idx.shape[1])[keep]
        c = idx.ravel()[keep]
        frame = {
            "user_id": matrix.users[rows[r_local]],
            "item_id": matrix.items[c],
            "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(rows))[keep],
            "score": vals.ravel()[keep],
        }
        for name, S in signals.items():
            frame[f"score_{name}"] = S[r_local, c]
        frames.append(pd.DataFrame(frame))
    table = pd.concat(frames, ignore_index=True)
    with duckdb.get_connection() as con:
        store.replace_tables(con, schema_of(context), {"user_item_scores": table})
    cold = np.asarray((X > 0).sum(axis=0)).ravel() <= int(cfg["evaluation"].get("cold_item_max_train", 2))
    cold_share = float(np.isin(table["item_id"], matrix.items[cold]).mean()) if len(table) else 0.0
    return dg.MaterializeResult(
        metadata=table_meta(
            table,
            n_users=len(matrix.users),
            candidates_per_user=k,
            share_cold_items=round(cold_share, 4),
            encoder_version=tables.encoder_version,
            reranker="lightgbm (kept on validation)" if reranked else "none (plain fusion)",
            **{f"param_{k_}": v for k_, v in config.as_params().items()},
        )
    )
