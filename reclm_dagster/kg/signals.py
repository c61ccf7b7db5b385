"""A knowledge-graph signal for the hybrid: how well an item's entities match a user's.

A user's entity profile is the idf-weighted share of their consumed items that carry each
entity (plus, optionally, the entities they named in their own words — kg_mentions), L2
normalised. An item's score is the cosine between that profile and the item's idf-weighted
entity row. Everything is sparse until :func:`kg_scores`, which returns one dense block of
``len(user_rows) x n_items`` like every other scorer in reclm.

Only content entities count (``item_entity_matrix`` skips item-item and user edges), so a
graph whose co-consumption edges came from all interactions leaks nothing into this signal;
mentions must come from the training descriptions when evaluating.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp


def _l2_rows(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    out = sp.csr_matrix(sp.diags(inv) @ m)
    out.eliminate_zeros()
    return out


def _l1_rows(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64)
    sums = np.asarray(abs(m).sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def user_entity_affinity(
    X_user_items: sp.spmatrix,
    item_entity: sp.spmatrix,
    idf: np.ndarray,
    mentions_user_entity: sp.spmatrix | None = None,
    mention_weight: float = 1.0,
    binary: bool = True,
) -> sp.csr_matrix:
    """users x entities, each row L2-normalised (all-zero for users with nothing to go on).

    ``profile_u = idf * (share of u's items with the entity + mention_weight * share of u's
    mentions naming it)``. ``binary`` counts each consumed item once whatever its weight
    (play counts would let one artist fill the profile).
    """
    X = sp.csr_matrix(X_user_items, dtype=np.float64)
    if binary:
        X = X.copy()
        X.data[:] = (X.data > 0).astype(np.float64)
    E = sp.csr_matrix(item_entity, dtype=np.float64)
    if X.shape[1] != E.shape[0]:
        raise ValueError(f"X has {X.shape[1]} items, item_entity has {E.shape[0]}")
    idf = np.asarray(idf, dtype=np.float64).ravel()
    if idf.shape[0] != E.shape[1]:
        raise ValueError(f"idf has {idf.shape[0]} entities, item_entity has {E.shape[1]}")
    profile = _l1_rows(X) @ E
    if mentions_user_entity is not None:
        M = sp.csr_matrix(mentions_user_entity, dtype=np.float64)
        if M.shape != profile.shape:
            raise ValueError(f"mentions matrix {M.shape} != users x entities {profile.shape}")
        profile = profile + mention_weight * _l1_rows(M)
    return _l2_rows(sp.csr_matrix(profile) @ sp.diags(idf))


def item_entity_profiles(item_entity: sp.spmatrix, idf: np.ndarray) -> sp.csr_matrix:
    """items x entities: idf-weighted, L2-normalised rows (the item side of the cosine)."""
    return _l2_rows(sp.csr_matrix(item_entity, dtype=np.float64) @ sp.diags(np.asarray(idf, dtype=np.float64)))


def kg_scores(
    user_rows: Sequence[int] | np.ndarray,
    X_user_items: sp.spmatrix,
    item_entity: sp.spmatrix,
    idf: np.ndarray,
    mentions_user_entity: sp.spmatrix | None = None,
    mention_weight: float = 1.0,
    affinity: sp.spmatrix | None = None,
    item_profiles: sp.spmatrix | None = None,
) -> np.ndarray:
    """Dense float32 ``len(user_rows) x n_items``: cosine of user and item entity profiles.

    Pass ``affinity`` / ``item_profiles`` precomputed (see :class:`KGScorer`) when scoring in
    batches; otherwise they are computed for the requested users only.
    """
    rows = np.asarray(user_rows, dtype=np.int64)
    if affinity is None:
        X = sp.csr_matrix(X_user_items)[rows]
        M = sp.csr_matrix(mentions_user_entity)[rows] if mentions_user_entity is not None else None
        affinity = user_entity_affinity(X, item_entity, idf, M, mention_weight)
    else:
        affinity = sp.csr_matrix(affinity)[rows]
    if item_profiles is None:
        item_profiles = item_entity_profiles(item_entity, idf)
    return np.asarray((affinity @ sp.csr_matrix(item_profiles).T).toarray(), dtype=np.float32)


class KGScorer:
    """The KG signal as a reclm scorer: ``fit(X)`` then ``score(user_rows, X)`` (dense block).

    ``item_entity`` rows must follow X's item columns (``item_entity_matrix(kg, items)``);
    ``mentions_user_entity`` rows follow X's users (``mentions_matrix``), or None.
    """

    def __init__(self, item_entity: sp.spmatrix, idf: np.ndarray | None = None,
                 mentions_user_entity: sp.spmatrix | None = None, mention_weight: float = 1.0):
        from reclm_dagster.kg.similarity import entity_idf

        self.item_entity = sp.csr_matrix(item_entity)
        self.idf = entity_idf(self.item_entity) if idf is None else np.asarray(idf)
        self.mentions = mentions_user_entity
        self.mention_weight = mention_weight

    def fit(self, X: sp.spmatrix) -> "KGScorer":
        self.affinity_ = user_entity_affinity(X, self.item_entity, self.idf, self.mentions, self.mention_weight)
        self.item_profiles_ = item_entity_profiles(self.item_entity, self.idf)
        return self

    def score(self, user_rows: np.ndarray, X: sp.spmatrix | None = None) -> np.ndarray:
        return kg_scores(user_rows, X, self.item_entity, self.idf,
                         affinity=self.affinity_, item_profiles=self.item_profiles_)


def mentions_matrix(mentions: pd.DataFrame, users: Sequence[str], entity_ids: Sequence[str]) -> sp.csr_matrix:
    """users x entities counts of kg_mentions rows (user_id, entity_id), aligned to the given ids.

    Mentions of entities outside ``entity_ids`` (e.g. items, or entities no item has) are dropped.
    """
    u = pd.Index([str(x) for x in users]).get_indexer(mentions["user_id"].astype(str))
    e = pd.Index([str(x) for x in entity_ids]).get_indexer(mentions["entity_id"].astype(str))
    keep = (u >= 0) & (e >= 0)
    m = sp.csr_matrix((np.ones(int(keep.sum())), (u[keep], e[keep])), shape=(len(users), len(entity_ids)))
    m.sum_duplicates()
    return m
