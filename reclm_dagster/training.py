"""Loads one dataset's stored tables and fits the hybrid recommender on a chosen slice.

Shared by the similarity/recommendation assets (fit on everything), the evaluation
asset (fit on the train split only) and the CLI's free-text requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from reclm_dagster import store
from reclm_dagster.datasets import INGEST_INFO_TABLE, LOADER_VERSION
from reclm_dagster.models.hybrid import HybridConfig, HybridRecommender, UserText
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.models.reranker import LearnedReranker
from reclm_dagster.models.side_information import item_feature_matrix, item_text_tokens, item_text_vectors
from reclm_dagster.text.documents import text_corpus
from reclm_dagster.text.normalize import segment


class _UniqueVectors:
    """Vectors of ``texts``, every distinct text encoded once; ``rows(positions)`` gives the vectors of
    those texts without first expanding all of them (a 1024-d words-as-ids corpus is 0.8 GB per copy)."""

    def __init__(self, texts: pd.Series, encoder):
        unique = pd.unique(texts)
        self.vectors = np.asarray(encoder.encode(list(unique)), np.float32)
        self.of_text = pd.Index(unique).get_indexer(texts)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        return self.vectors[self.of_text[positions]].reshape(len(positions), self.vectors.shape[1])


def stored_loader_version(con: duckdb.DuckDBPyConnection, schema: str) -> int | None:
    """The ``LOADER_VERSION`` that stored the raw tables of ``schema`` (None: older than versioning)."""
    if not store.table_exists(con, schema, INGEST_INFO_TABLE):
        return None
    return int(store.read_df(con, schema, INGEST_INFO_TABLE)["loader_version"].iloc[0])


def check_loader_version(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    if stored_loader_version(con, schema) != LOADER_VERSION:
        raise RuntimeError(f"the raw tables in {schema} were stored by an older reclm (users' tags as facts, "
                           f"which no evaluation could mask): rebuild them with `reclm run`")


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
    # catalogue facts (item_id, relation, entity, ...): the items' side information
    facts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["item_id", "relation", "entity"]))

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, schema: str) -> "DatasetTables":
        check_loader_version(con, schema)
        embeddings = con.sql(f'SELECT * FROM "{schema}".text_embeddings').to_arrow_table()
        return cls.from_frames(
            items=store.read_df(con, schema, "items"), interactions=store.read_df(con, schema, "interactions"),
            descriptions=store.read_df(con, schema, "descriptions"), facts=store.read_df(con, schema, "catalogue_facts"),
            tokens=store.read_df(con, schema, "text_tokens", "source, id, tokens"), embeddings=embeddings, where=schema)

    @classmethod
    def from_frames(cls, items: pd.DataFrame, interactions: pd.DataFrame, descriptions: pd.DataFrame, facts: pd.DataFrame,
                    tokens: pd.DataFrame, embeddings: pa.Table, where: str = "the tables") -> "DatasetTables":
        """The tables as the assets receive them from the IO manager (``tokens``: source, id, tokens;
        ``embeddings``: the text_embeddings table), aligned to items and descriptions."""
        item_ids, item_vecs = store.embedding_matrix(embeddings, "item")
        desc_ids, desc_vecs = store.embedding_matrix(embeddings, "description")
        versions = embeddings.column("encoder_version")
        version = next((v for v in versions.to_pylist() if v), None) if len(versions) else None
        item_tok = tokens[tokens["source"] == "item"].set_index("id")["tokens"]
        desc_tok = tokens[tokens["source"] == "description"].set_index("id")["tokens"]
        item_pos = pd.Index(item_ids).get_indexer(items["item_id"].astype(str))
        desc_pos = pd.Index(desc_ids).get_indexer(descriptions["description_id"].astype(str))
        if (item_pos < 0).any() or (desc_pos < 0).any():
            raise RuntimeError(f"embeddings in {where} are stale: re-materialize text_tokens and text_embeddings")
        dim = item_vecs.shape[1] if item_vecs.size else (desc_vecs.shape[1] if desc_vecs.size else 0)
        return cls(
            items=items,
            interactions=interactions,
            descriptions=descriptions,
            facts=facts,
            item_vectors=item_vecs[item_pos] if len(item_pos) else np.zeros((0, dim), np.float32),
            item_tokens=[list(t) for t in item_tok.reindex(items["item_id"].astype(str)).to_numpy()],
            description_vectors=desc_vecs[desc_pos] if len(desc_pos) else np.zeros((0, dim), np.float32),
            description_tokens=[list(t) for t in desc_tok.reindex(descriptions["description_id"].astype(str)).to_numpy()],
            encoder_version=version or "",
        )

    def with_encoder(self, encoder) -> "DatasetTables":
        """The same tables with every text re-encoded by ``encoder`` (tokens unchanged)."""
        corpus = text_corpus(self.items, self.facts, self.descriptions)
        vectors = _UniqueVectors(corpus["text"], encoder)
        is_item = (corpus["source"] == "item").to_numpy()
        item_pos = pd.Index(corpus["id"][is_item]).get_indexer(self.items["item_id"].astype(str))
        return replace(self, item_vectors=vectors.rows(np.flatnonzero(is_item)[item_pos]),
                       description_vectors=vectors.rows(np.flatnonzero(~is_item)), encoder_version=encoder.version)

    @classmethod
    def from_dataset(cls, dataset, encoder) -> "DatasetTables":
        """The same tables from a loaded ``Dataset`` in memory (no DuckDB): the text assets'
        documents, segmented and encoded by ``encoder`` (anything with ``encode`` and ``version``)."""
        corpus = text_corpus(dataset.items, dataset.facts, dataset.descriptions)
        vectors = _UniqueVectors(corpus["text"], encoder)
        unique = pd.unique(corpus["text"])
        words = [segment(t) for t in unique]
        tokens = [list(words[i]) for i in pd.Index(unique).get_indexer(corpus["text"])]
        is_item = (corpus["source"] == "item").to_numpy()
        item_pos = pd.Index(corpus["id"][is_item]).get_indexer(dataset.items["item_id"].astype(str))
        items_idx, desc_idx = np.flatnonzero(is_item)[item_pos], np.flatnonzero(~is_item)
        return cls(
            items=dataset.items, interactions=dataset.interactions, descriptions=dataset.descriptions.reset_index(drop=True),
            facts=dataset.facts, item_vectors=vectors.rows(items_idx), item_tokens=[tokens[i] for i in items_idx],
            description_vectors=vectors.rows(desc_idx),
            description_tokens=[tokens[i] for i in desc_idx], encoder_version=encoder.version,
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
    descriptions = tables.descriptions.iloc[idx]
    description_vectors = tables.description_vectors[idx]
    description_tokens = [tables.description_tokens[i] for i in idx]
    config = config or HybridConfig()
    user_text = UserText.build(matrix.users, descriptions, description_vectors, description_tokens, config.negative_weight)
    items = matrix.items
    item_vectors, item_tokens = item_text_index(tables, items, config, idx)
    # Item features (catalogue facts + what allowed users said): EASE's side information and the KG signal's entities.
    side, side_names = item_feature_matrix(items, tables.facts, descriptions, description_tokens, weighting=config.side_weighting,
                                           description_vectors=description_vectors, merge_threshold=config.tag_merge_threshold)
    model = HybridRecommender(config).fit(matrix.X, item_vectors, item_tokens, user_text, side=side, side_names=side_names)
    model.side_feature_names_ = side_names  # kept for inspection (and the leakage tests)
    model.description_mask_ = mask  # what the fit was allowed to read (with_text_from reads the same)
    return model, matrix


def with_text_from(model: HybridRecommender, tables: DatasetTables, users: np.ndarray, items: np.ndarray) -> HybridRecommender:
    """A copy of a fitted hybrid whose ``text`` signal reads ``tables``' vectors (another encoder).

    CF, BM25 and the KG signal are shared, not refitted: none of them depends on the encoder.
    The copy reads exactly the descriptions the original fit was allowed to.
    """
    import copy

    idx = np.flatnonzero(model.description_mask_)
    clone = copy.copy(model)
    clone.item_vectors_, _ = item_text_index(tables, items, model.config, idx)
    built = UserText.build(users, tables.descriptions.iloc[idx], tables.description_vectors,
                           [tables.description_tokens[i] for i in idx], model.config.negative_weight, positions=idx)
    clone.user_text_ = replace(model.user_text_, vectors=built.vectors)
    clone.reranker_ = None
    return clone


def item_text_index(tables: DatasetTables, items: np.ndarray, config: HybridConfig, keep: np.ndarray | None = None):
    """Item vectors and tokens: the catalogue entry plus what the kept descriptions say about each item."""
    keep = np.arange(len(tables.descriptions)) if keep is None else keep
    descriptions = tables.descriptions.iloc[keep]
    vectors = item_text_vectors(items, tables.item_vectors, descriptions, tables.description_vectors, config.said_share,
                                positions=keep)
    tokens = item_text_tokens(items, tables.item_tokens, descriptions, [tables.description_tokens[i] for i in keep])
    return vectors, tokens


def hybrid_config(cfg: dict) -> HybridConfig:
    """The ``hybrid:`` section of the pipeline config; unset keys keep HybridConfig's defaults."""
    h = cfg.get("hybrid", {})
    default = HybridConfig()
    casts = {"cf_model": str, "k_neighbors": int, "ease_l2": float, "side_weight": float, "side_weighting": str,
             "dense_weight": float, "dense_dims": int,
             "description_share": float, "said_share": float, "short_history_popularity": float,
             "short_history_half_life": float, "negative_weight": float, "tag_merge_threshold": float}
    values = {k: cast(h[k]) for k, cast in casts.items() if k in h}
    weights = {k: float(v) for k, v in h.get("weights", default.weights).items()}
    return replace(default, weights=weights, **values)


# The chosen setting (JSON of HybridConfig fields) and the re-ranker the hybrid_selection asset stores.
CHOSEN_TABLE = "hybrid_chosen"
RERANKER_TABLE = "hybrid_reranker"


def chosen_hybrid_config(con: duckdb.DuckDBPyConnection, schema: str, cfg: dict) -> HybridConfig:
    """The configured hybrid with what hybrid_selection chose on validation (g, λ, weights…), if stored."""
    stored = {t: store.read_df(con, schema, t) for t in (CHOSEN_TABLE, "fusion_weights") if store.table_exists(con, schema, t)}
    return chosen_config_from(stored, cfg)


def chosen_config_from(tables: dict[str, pd.DataFrame], cfg: dict) -> HybridConfig:
    """``chosen_hybrid_config`` from hybrid_selection's tables as loaded (``{table name: frame}``)."""
    config = hybrid_config(cfg)
    if len(tables.get(CHOSEN_TABLE, ())):
        chosen = json.loads(tables[CHOSEN_TABLE]["json"].iloc[0])
        known = {f.name for f in fields(HybridConfig)}
        config = replace(config, **{k: v for k, v in chosen.items() if k in known})
    elif "fusion_weights" in tables:
        chosen = tables["fusion_weights"]
        config = replace(config, weights=dict(zip(chosen["signal"], chosen["weight"].astype(float))))
    return config


def stored_reranker(con: duckdb.DuckDBPyConnection, schema: str) -> str | None:
    """The re-ranker validation kept (LightGBM model text), or None."""
    if not store.table_exists(con, schema, RERANKER_TABLE):
        return None
    return reranker_from({RERANKER_TABLE: store.read_df(con, schema, RERANKER_TABLE)})


def reranker_from(tables: dict[str, pd.DataFrame]) -> str | None:
    stored = tables.get(RERANKER_TABLE, pd.DataFrame())
    return str(stored["model"].iloc[0]) if len(stored) else None


def attach_reranker(model: HybridRecommender, model_text: str | None, X) -> bool:
    """Give ``model`` the stored re-ranker, its features computed from the popularity in ``X``."""
    if not model_text:
        return False
    popularity = np.asarray((X > 0).sum(axis=0)).ravel()
    model.reranker_ = LearnedReranker.from_model_string(model_text, popularity)
    return True
