"""What is known about an item besides who consumed it, as matrices the models can use.

Two views of the same legitimate text, both rebuilt for every fit from the
descriptions a protocol allows (a user's words about one of their held-out pairs
are never among them):

- ``item_feature_matrix``: items × features, one column per catalogue fact
  (``has_genre=comedy``, ``directed_by=christopher nolan``) and per thing users said
  about the item (a short tag as a whole, ``said=hip hop``; a long review as its
  tokens, ``word=续航``). It feeds side-information EASE.
- ``item_text_vectors`` / ``item_text_tokens``: the catalogue document's embedding
  and tokens enriched with what other users said about the item, so an artist whose
  catalogue entry is only its name is described by its tags.

Loaders never store facts aggregated from their own users' words (the graph derives
``tagged_as`` from the descriptions it is given, ``kg.build.user_tag_facts``), so every
fact here is catalogue data. A catalogue fact that restates an allowed description of
the same item (the demo's editorial tags) is dropped so it is not counted twice: the
description adds it back with its number of users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.kg.build import normalize_name
from reclm_dagster.text.normalize import SHORT_TEXT_TOKENS



def l2_rows(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    return M / np.where(norms > 0, norms, 1.0)


def catalogue_facts_without_user_tags(facts: pd.DataFrame, descriptions: pd.DataFrame) -> pd.DataFrame:
    """Facts minus those that restate a user's description of the same item."""
    if not len(facts) or not len(descriptions):
        return facts
    said = set(descriptions["item_id"].astype(str) + "\x1f" + descriptions["text"].map(normalize_name))
    key = facts["item_id"].astype(str) + "\x1f" + facts["entity"].map(normalize_name)
    return facts[~key.isin(said).to_numpy()]


def text_features(text: object, tokens: list[str]) -> list[str]:
    """The side-information features one description names: a short text whole, a long one by word."""
    if len(tokens) <= SHORT_TEXT_TOKENS:
        return ["said=" + normalize_name(text)]
    return ["word=" + t for t in dict.fromkeys(tokens)]


def description_features(descriptions: pd.DataFrame, tokens: list[list[str]]) -> pd.DataFrame:
    """(item_id, feature, n_users) from descriptions: short texts whole, long texts as tokens.

    ``n_users`` counts the distinct users who said it about the item.
    """
    rows_item, rows_feature, rows_user = [], [], []
    for user_id, item_id, text, toks in zip(descriptions["user_id"], descriptions["item_id"], descriptions["text"], tokens):
        if item_id is None or (isinstance(item_id, float) and np.isnan(item_id)):
            continue  # a request not about an item
        features = text_features(text, toks)
        rows_item += [str(item_id)] * len(features)
        rows_user += [str(user_id)] * len(features)
        rows_feature += features
    pairs = pd.DataFrame({"item_id": rows_item, "feature": rows_feature, "user_id": rows_user})
    return pairs.groupby(["item_id", "feature"], sort=False)["user_id"].nunique().rename("n_users").reset_index()


def merge_similar(names: np.ndarray, vectors: np.ndarray, counts: np.ndarray, threshold: float,
                  block: int = 2048) -> dict[str, str]:
    """``{name: its cluster's name}`` where unit ``vectors`` have cosine ≥ ``threshold``.

    Each name points to the most frequent name among its neighbours (itself included) and the
    pointers are followed to the end, so 'female vocalists', 'female vocalist' and 'female
    vocals' become whichever of them most users said. Blocked: a block × n similarity at a time.
    """
    order = np.lexsort((names, -counts))  # most said first, ties by name (deterministic)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    V = np.asarray(vectors, np.float32)
    leader = np.arange(len(names))
    for start in range(0, len(names), block):
        sims = V[start : start + block] @ V.T
        # the best-ranked neighbour: rank where similar, +inf elsewhere
        leader[start : start + block] = np.argmin(np.where(sims >= threshold, rank[None, :], len(names)), axis=1)
    for _ in range(64):  # leaders always rank no worse: a few passes reach the roots
        nxt = leader[leader]
        if np.array_equal(nxt, leader):
            break
        leader = nxt
    return {str(a): str(names[b]) for a, b in zip(names, leader) if a != names[b]}


def said_vectors(descriptions: pd.DataFrame, tokens: list[list[str]], vectors: np.ndarray):
    """``(feature names, unit vectors, users)`` of the short texts said about items ('said=…' features)."""
    short = [i for i, (item, toks) in enumerate(zip(descriptions["item_id"], tokens))
             if item is not None and not (isinstance(item, float) and np.isnan(item)) and len(toks) <= SHORT_TEXT_TOKENS]
    if not short:
        return np.array([], dtype=object), np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32), np.array([])
    frame = pd.DataFrame({"feature": ["said=" + normalize_name(t) for t in descriptions["text"].iloc[short]],
                          "row": short, "user": descriptions["user_id"].iloc[short].astype(str).to_numpy()})
    first = frame.drop_duplicates("feature")
    users = frame.groupby("feature", sort=False)["user"].nunique().reindex(first["feature"]).to_numpy()
    V = np.asarray(vectors, np.float32)[first["row"].to_numpy()]
    V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    return first["feature"].to_numpy(dtype=object), V, users


def item_feature_matrix(
    items: np.ndarray,
    facts: pd.DataFrame,
    descriptions: pd.DataFrame,
    description_tokens: list[list[str]],
    min_items: int = 2,
    weighting: str = "binary",
    description_vectors: np.ndarray | None = None,
    merge_threshold: float = 0.0,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Items × features (rows aligned with ``items``) and the feature names.

    ``weighting``: 'binary' (1 where the item has the feature) or 'log_users'
    (1 + log of how many users said it; catalogue facts count 1). A feature on fewer
    than ``min_items`` items links nothing to anything and is dropped.
    ``merge_threshold`` > 0 (with ``description_vectors``): short texts whose embeddings are
    that close become one feature (``merge_similar``: plurals, misspellings, synonyms).
    """
    if weighting not in ("binary", "log_users"):
        raise ValueError(f"weighting must be 'binary' or 'log_users', got {weighting!r}")
    said = description_features(descriptions, description_tokens)
    if merge_threshold > 0 and description_vectors is not None and len(said):
        names, V, users = said_vectors(descriptions, description_tokens, description_vectors)
        said["feature"] = said["feature"].replace(merge_similar(names, V, users, merge_threshold))
    parts = [said]
    if len(facts):
        clean = catalogue_facts_without_user_tags(facts, descriptions)
        parts.append(pd.DataFrame({
            "item_id": clean["item_id"].astype(str).to_numpy(),
            "feature": (clean["relation"].astype(str) + "=" + clean["entity"].map(normalize_name)).to_numpy(),
            "n_users": 1,
        }))
    pairs = pd.concat(parts, ignore_index=True).groupby(["item_id", "feature"], sort=False)["n_users"].sum().reset_index()
    rows = pd.Index(items).get_indexer(pairs["item_id"])
    pairs = pairs[rows >= 0].assign(row=rows[rows >= 0])
    counts = pairs["feature"].value_counts()
    pairs = pairs[pairs["feature"].map(counts) >= min_items]
    names, cols = np.unique(pairs["feature"].to_numpy(), return_inverse=True)
    values = np.ones(len(pairs)) if weighting == "binary" else 1.0 + np.log(pairs["n_users"].to_numpy(np.float64))
    F = sp.csr_matrix(
        (values.astype(np.float32), (pairs["row"].to_numpy(), cols)), shape=(len(items), len(names))
    )
    return F, names


def _item_description_matrix(items: np.ndarray, descriptions: pd.DataFrame) -> sp.csr_matrix:
    """items × descriptions incidence (1 where the description is about the item)."""
    rows = pd.Index(items).get_indexer(descriptions["item_id"].astype(str))
    keep = np.flatnonzero(rows >= 0)
    return sp.csr_matrix(
        (np.ones(len(keep), np.float32), (rows[keep], keep)), shape=(len(items), len(descriptions))
    )


def product_with_rows(M: sp.spmatrix, V: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """``M @ V[positions]`` without copying those rows: M's columns are re-pointed at them instead
    (``positions`` ascending, so every row sums in the same order as over the copy)."""
    if positions is None:
        return np.asarray(M @ V)
    M = sp.csr_matrix(M)
    return np.asarray(sp.csr_matrix((M.data, np.asarray(positions)[M.indices], M.indptr), shape=(M.shape[0], len(V))) @ V)


def item_text_vectors(
    items: np.ndarray,
    catalogue_vectors: np.ndarray,
    descriptions: pd.DataFrame,
    description_vectors: np.ndarray,
    said_share: float = 0.5,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """Unit vectors: the catalogue embedding mixed with the mean of what users said about the item.

    ``said_share`` is the weight of the users' words where there are any. ``positions``: the rows of
    ``description_vectors`` the ``descriptions`` are (ascending; None: row for row).
    """
    cat = l2_rows(np.asarray(catalogue_vectors, np.float32))
    if not len(descriptions):
        return cat
    said = l2_rows(product_with_rows(_item_description_matrix(items, descriptions), description_vectors, positions))
    has_said = np.linalg.norm(said, axis=1, keepdims=True) > 0
    mix = np.where(has_said, (1 - said_share) * cat + said_share * said, cat)
    return l2_rows(mix).astype(np.float32)


def item_text_tokens(
    items: np.ndarray,
    catalogue_tokens: list[list[str]],
    descriptions: pd.DataFrame,
    description_tokens: list[list[str]],
) -> list[list[str]]:
    """Each item's catalogue tokens followed by the tokens of what users said about it."""
    out = [list(t) for t in catalogue_tokens]
    rows = pd.Index(items).get_indexer(descriptions["item_id"].astype(str))
    for r, toks in zip(rows, description_tokens):
        if r >= 0:
            out[r].extend(toks)
    return out
