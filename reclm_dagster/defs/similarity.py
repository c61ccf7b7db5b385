"""Step 4 — similarity: item→item neighbours and user→item candidate scores, sparse top-K tables."""



import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from reclm_dagster import settings
from reclm_dagster.defs.common import dataset_partitions, table_meta, profiled
from reclm_dagster.defs.evaluation import evaluation
from reclm_dagster.defs.selection import SELECTION_IN, TABLE_INS, dataset_tables
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.models.neighbors import ItemKNN
from reclm_dagster.models.ranking import topk
from reclm_dagster.models.similar_items import fused_neighbours
from reclm_dagster.training import attach_reranker, chosen_config_from, fit_hybrid, reranker_from

BATCH = 512


@dg.asset(
    group_name="similarity",
    partitions_def=dataset_partitions,
    ins=TABLE_INS,
    description="Top-K neighbours of every item by text embedding, by co-consumption (item-item cosine) and fused.",
)
@profiled
def item_similarity(context: dg.AssetExecutionContext, items: pd.DataFrame, interactions: pd.DataFrame,
                    descriptions: pd.DataFrame, catalogue_facts: pd.DataFrame, text_tokens: pd.DataFrame,
                    text_embeddings: pa.Table) -> dg.Output:
    cfg = settings.load_config()
    k = int(cfg.get("similar_items_k", 20))
    tables = dataset_tables(items, interactions, descriptions, catalogue_facts, text_tokens, text_embeddings)
    items = tables.items["item_id"].astype(str).to_numpy()
    matrix = InteractionMatrix(tables.interactions, users=tables.all_users(), items=items)
    # Item-item cosine on behaviour; items nobody consumed have only text neighbours.
    cf_sim = ItemKNN(k_neighbors=int(cfg["hybrid"].get("k_neighbors", 100))).fit(matrix.X).similar_items()
    E = tables.item_vectors
    n = len(items)
    frames = []
    for start in tqdm(range(0, n, BATCH), desc="item neighbours", disable=n <= BATCH):
        rows = np.arange(start, min(start + BATCH, n))
        # z(text) + z(cf) over every other item, scored on candidates only (models/similar_items.py)
        idx, vals, text, cf = fused_neighbours(E, cf_sim, rows, k)
        keep = idx.ravel() >= 0
        frames.append(
            pd.DataFrame(
                {
                    "item_id": matrix.items[np.repeat(rows, idx.shape[1])[keep]],
                    "neighbor_id": matrix.items[idx.ravel()[keep]],
                    "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(rows))[keep],
                    "score": vals.ravel()[keep],
                    "score_text": text.ravel()[keep],
                    "score_cf": cf.ravel()[keep],
                }
            )
        )
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return dg.Output(table, metadata=table_meta(table, neighbours_per_item=k, n_items=n))


@dg.asset(
    group_name="similarity",
    partitions_def=dataset_partitions,
    ins={**TABLE_INS, "hybrid_selection": SELECTION_IN},
    # evaluation: not read, but its NDCG check is blocking, so a hybrid that regressed on held-out
    # data never replaces the stored lists (an ordering dependency, hence deps rather than an argument).
    deps=[evaluation],
    description="Per user, the top candidates by the fused hybrid score with each signal's score (cf, text, lexical, kg), "
    "with the setting and re-ranker hybrid_selection chose on validation. Already-consumed items are excluded.",
)
@profiled
def user_item_scores(context: dg.AssetExecutionContext, items: pd.DataFrame, interactions: pd.DataFrame,
                     descriptions: pd.DataFrame, catalogue_facts: pd.DataFrame, text_tokens: pd.DataFrame,
                     text_embeddings: pa.Table, hybrid_selection: dict[str, pd.DataFrame]) -> dg.Output:
    cfg = settings.load_config()
    k = int(cfg.get("top_k", 50))
    tables = dataset_tables(items, interactions, descriptions, catalogue_facts, text_tokens, text_embeddings)
    config = chosen_config_from(hybrid_selection, cfg)
    reranker_text = reranker_from(hybrid_selection)
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
    cold = np.asarray((X > 0).sum(axis=0)).ravel() <= int(cfg["evaluation"].get("cold_item_max_train", 2))
    cold_share = float(np.isin(table["item_id"], matrix.items[cold]).mean()) if len(table) else 0.0
    return dg.Output(
        table,
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
