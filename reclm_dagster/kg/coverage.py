"""Explanation coverage and faithfulness of stored recommendation lists.

*Coverage* is the share of the top-k recommended items whose explanation has a non-empty
path that verifies. *Faithful* means more than "every edge is a triple": the path must also
say what the text claims about this user and this item —

- ``shared_entity``: two edges to the same entity, the first from an item the user consumed
  (in the given interactions), the second from the recommended item;
- ``co_consumed``: one co-consumption edge between the recommended item and a consumed item;
- ``friend``: a friend_of edge touching the user, whose other end consumed the item;
- ``mention``: an edge from the recommended item to an entity the user mentioned (kg_mentions).

Without ``interactions`` / ``mentions`` the user-side evidence is not checked (edges still are).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from reclm_dagster.kg.build import CO_CONSUMED, FRIEND_OF, KnowledgeGraph, item_node, user_node
from reclm_dagster.kg.explain import verify_path


def _path(value) -> list[tuple[str, str, str]]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return [tuple(e) for e in (value or [])]


def _consumed(interactions: pd.DataFrame | None) -> dict[str, set[str]] | None:
    if interactions is None:
        return None
    out: dict[str, set[str]] = {}
    for u, i in zip(interactions["user_id"].astype(str), interactions["item_id"].astype(str)):
        out.setdefault(u, set()).add(i)
    return out


def _mentioned(mentions: pd.DataFrame | None) -> dict[str, set[str]] | None:
    if mentions is None:
        return None
    out: dict[str, set[str]] = {}
    for u, e in zip(mentions["user_id"].astype(str), mentions["entity_id"].astype(str)):
        out.setdefault(u, set()).add(e)
    return out


def check_explanation(
    user: str,
    item: str,
    kind: str,
    path: list[tuple[str, str, str]],
    kg: KnowledgeGraph,
    consumed: Mapping[str, set[str]] | None = None,
    mentioned: Mapping[str, set[str]] | None = None,
) -> str:
    """'' when the explanation is faithful, else the reason it is not."""
    if not path:
        return "no path"
    if not verify_path(kg, path):
        return "edge not in the triples"
    cand, me = item_node(item), user_node(user)
    history = consumed.get(user, set()) if consumed is not None else None
    if kind == "shared_entity":
        if len(path) != 2 or path[0][2] != path[1][2] or path[1][0] != cand:
            return "shared_entity path is not liked item -> entity <- candidate"
        if history is not None and path[0][0][5:] not in history:
            return "shared_entity starts from an item the user did not consume"
    elif kind == "co_consumed":
        (h, rel, t), = path if len(path) == 1 else [(None, None, None)]
        if rel != CO_CONSUMED or cand not in (h, t):
            return "co_consumed path is not one co-consumption edge of the candidate"
        other = t if h == cand else h
        if history is not None and other[5:] not in history:
            return "co_consumed partner was not consumed by the user"
    elif kind == "friend":
        (h, rel, t), = path if len(path) == 1 else [(None, None, None)]
        if rel != FRIEND_OF or me not in (h, t):
            return "friend path is not a friend_of edge of the user"
        friend = (t if h == me else h)[5:]
        if consumed is not None and item not in consumed.get(friend, set()):
            return "the friend did not consume the item"
    elif kind == "mention":
        if len(path) != 1 or path[0][0] != cand:
            return "mention path is not candidate -> entity"
        if mentioned is not None and path[0][2] not in mentioned.get(user, set()):
            return "the user never mentioned the entity"
    return ""


def explanation_report(
    recs: pd.DataFrame,
    kg: KnowledgeGraph,
    k: int = 10,
    interactions: pd.DataFrame | None = None,
    mentions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The top-k rows of ``recs`` with ``verified`` (bool) and ``problem`` ('' when verified).

    ``recs`` needs user_id, item_id, explanation_kind, explanation_path and, to cut at k,
    ``rank`` (without it every row counts).
    """
    rows = recs[recs["rank"] <= k] if "rank" in recs else recs
    consumed, mentioned = _consumed(interactions), _mentioned(mentions)
    problems = [
        check_explanation(str(u), str(i), str(kind), _path(p), kg, consumed, mentioned)
        for u, i, kind, p in zip(rows["user_id"], rows["item_id"], rows["explanation_kind"], rows["explanation_path"])
    ]
    out = rows.copy()
    out["problem"] = problems
    out["verified"] = out["problem"] == ""
    return out


def explanation_coverage(
    recs: pd.DataFrame,
    kg: KnowledgeGraph,
    k: int = 10,
    interactions: pd.DataFrame | None = None,
    mentions: pd.DataFrame | None = None,
) -> dict[str, object]:
    """Share of top-k items with >= 1 verified explanation path, plus the per-kind breakdown.

    ``unfaithful`` counts rows that state a path which does not hold (must be 0); rows
    without a path (text_match, popular) are uncovered, not unfaithful.
    """
    report = explanation_report(recs, kg, k, interactions, mentions)
    n = len(report)
    stated = report["problem"] != "no path"
    kinds = report["explanation_kind"].value_counts(normalize=True).round(4).to_dict() if n else {}
    return {
        "k": int(k),
        "n_rows": int(n),
        "n_users": int(report["user_id"].nunique()) if n else 0,
        "coverage": round(float(report["verified"].mean()), 4) if n else 0.0,
        "unfaithful": int((stated & ~report["verified"]).sum()),
        "kinds": {str(a): float(b) for a, b in kinds.items()},
    }


def coverage_from_store(con, schema: str, k: int = 10) -> dict[str, object]:
    """Coverage and faithfulness of the stored ``recommendations`` of one dataset schema."""
    from reclm_dagster import store

    recs = store.read_df(con, schema, "recommendations",
                         "user_id, item_id, rank, explanation_kind, explanation_path", where=f"rank <= {int(k)}")
    kg = store.read_knowledge_graph(con, schema)
    interactions = store.read_df(con, schema, "interactions", "user_id, item_id")
    mentions = (store.read_df(con, schema, "kg_mentions", "user_id, entity_id")
                if store.table_exists(con, schema, "kg_mentions") else None)
    return explanation_coverage(recs, kg, k, interactions, mentions)
