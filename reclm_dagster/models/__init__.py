"""Collaborative-filtering scorers, interaction matrices, top-k and score fusion."""

from reclm_dagster.models.ease import EASE
from reclm_dagster.models.fusion import linear_fusion, minmax_rows, reciprocal_rank_fusion, zscore_rows
from reclm_dagster.models.matrix import InteractionMatrix, binarize, to_matrix
from reclm_dagster.models.neighbors import ItemKNN, Popularity, RP3beta
from reclm_dagster.models.ranking import Scorer, recommend_batches, topk

__all__ = [
    "EASE", "InteractionMatrix", "ItemKNN", "Popularity", "RP3beta", "Scorer",
    "binarize", "linear_fusion", "minmax_rows", "reciprocal_rank_fusion",
    "recommend_batches", "to_matrix", "topk", "zscore_rows",
]
