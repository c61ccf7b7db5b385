"""Loads one dataset's stored tables and fits the hybrid recommender on a chosen slice.

Shared by the similarity/recommendation assets (fit on everything), the evaluation
asset (fit on the train split only) and the CLI's free-text requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from reclm_dagster import store
from reclm_dagster.models.hybrid import HybridConfig, HybridRecommender, UserText
from reclm_dagster.models.matrix import InteractionMatrix


@dataclass
class DatasetTables:
    items: pd.DataFrame
    interactions: pd.DataFrame
    descriptions: pd.DataFrame
    item_vectors: np.ndarray  # aligned to items
    item_tokens: list[list[str]]  # aligned to items
    description_vectors: np.ndarray  # aligned to descriptions
    description_tokens: list[list[str]]  # aligned to descriptions
    encoder_version: str

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, schema: str) -> "DatasetTables":
        items = store.read_df(con, schema, "items")
        interactions = store.read_df(con, schema, "interactions")
        descriptions = store.read_df(con, schema, "descriptions")
        item_ids, item_vecs = store.read_embeddings(con, schema, "item")
        desc_ids, desc_vecs = store.read_embeddings(con, schema, "description")
        version = con.execute(f'SELECT any_value(encoder_version) FROM "{schema}".text_embeddings').fetchone()[0]
        tokens = store.read_df(con, schema, "text_tokens", "source, id, tokens")
        item_tok = tokens[tokens["source"] == "item"].set_index("id")["tokens"]
        desc_tok = tokens[tokens["source"] == "description"].set_index("id")["tokens"]
        item_pos = pd.Index(item_ids).get_indexer(items["item_id"].astype(str))
        desc_pos = pd.Index(desc_ids).get_indexer(descriptions["description_id"].astype(str))
        if (item_pos < 0).any() or (desc_pos < 0).any():
            raise RuntimeError(f"embeddings in {schema} are stale: re-materialize text_tokens and text_embeddings")
        dim = item_vecs.shape[1] if item_vecs.size else (desc_vecs.shape[1] if desc_vecs.size else 0)
        return cls(
            items=items,
            interactions=interactions,
            descriptions=descriptions,
            item_vectors=item_vecs[item_pos] if len(item_pos) else np.zeros((0, dim), np.float32),
            item_tokens=[list(t) for t in item_tok.reindex(items["item_id"].astype(str)).to_numpy()],
            description_vectors=desc_vecs[desc_pos] if len(desc_pos) else np.zeros((0, dim), np.float32),
            description_tokens=[list(t) for t in desc_tok.reindex(descriptions["description_id"].astype(str)).to_numpy()],
            encoder_version=version or "",
        )

    def all_users(self) -> np.ndarray:
        """Users with behaviour or with words: text alone is enough to be recommended to."""
        ids = pd.concat([self.interactions["user_id"], self.descriptions["user_id"]]).astype(str).unique()
        return np.sort(ids)


def fit_hybrid(
    tables: DatasetTables,
    train: pd.DataFrame,
    description_mask: np.ndarray | None = None,
    config: HybridConfig | None = None,
) -> tuple[HybridRecommender, InteractionMatrix]:
    """Fit on ``train`` interactions and the descriptions selected by ``description_mask``.

    The matrix index covers every user and every catalogue item, so items nobody
    interacted with (cold items) can still be scored by text.
    """
    matrix = InteractionMatrix(train, users=tables.all_users(), items=tables.items["item_id"].astype(str).to_numpy())
    mask = np.ones(len(tables.descriptions), bool) if description_mask is None else np.asarray(description_mask, bool)
    idx = np.flatnonzero(mask)
    user_text = UserText.build(
        matrix.users,
        tables.descriptions.iloc[idx],
        tables.description_vectors[idx],
        [tables.description_tokens[i] for i in idx],
    )
    model = HybridRecommender(config).fit(matrix.X, tables.item_vectors, tables.item_tokens, user_text)
    return model, matrix


def hybrid_config(cfg: dict) -> HybridConfig:
    h = cfg.get("hybrid", {})
    return HybridConfig(
        cf_model=h.get("cf_model", "itemknn"),
        k_neighbors=int(h.get("k_neighbors", 100)),
        ease_l2=float(h.get("ease_l2", 200.0)),
        weights={k: float(v) for k, v in h.get("weights", {"cf": 1.0, "text": 0.5, "lexical": 0.5}).items()},
        description_share=float(h.get("description_share", 0.5)),
    )


def chosen_hybrid_config(con: duckdb.DuckDBPyConnection, schema: str, cfg: dict) -> HybridConfig:
    """The configured hybrid with the fusion weights the evaluation chose on validation, if stored."""
    from dataclasses import replace

    config = hybrid_config(cfg)
    if store.table_exists(con, schema, "fusion_weights"):
        chosen = store.read_df(con, schema, "fusion_weights")
        config = replace(config, weights=dict(zip(chosen["signal"], chosen["weight"].astype(float))))
    return config
