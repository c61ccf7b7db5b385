"""Explanation coverage and faithfulness of stored recommendation lists.

*Coverage* is the share of the top-k recommended items whose explanation has a non-empty
path that verifies. *Faithful* means more than "every edge is a triple": the path must also
say what the text claims about this user and this item —

- ``shared_entity``: two edges to the same entity, the first from an item the user consumed
  (in the given interactions), the second from the recommended item;
- ``co_consumed``: one co-consumption edge between the recommended item and a consumed item;
- ``friend``: a friend_of edge touching the user, whose other end consumed the item;
- ``mention``: an edge from the recommended item to an entity the user mentioned (kg_mentions).

A path may carry a second piece of evidence after the one its kind names (the user's own words,
another shared entity); each piece is checked the same way. Without ``interactions`` /
``mentions`` the user-side evidence is not checked (edges still are).

:func:`credible_evidence` measures what the explanations cite: the share whose evidence is
credible (a catalogue fact, a tag enough users gave, the user's own words; never profanity or
noise — :mod:`reclm_dagster.kg.evidence`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from reclm_dagster.kg.build import KnowledgeGraph, item_node, user_node
from reclm_dagster.kg.evidence import NEW_RULE, EvidenceRule, split_pieces
from reclm_dagster.kg.explain import credibility, verify_path


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


# The leading piece each kind must start with, and what to say when it does not.
_LEAD = {
    "shared_entity": ("shared", "shared_entity path is not liked item -> entity <- candidate"),
    "co_consumed": ("co", "co_consumed path is not one co-consumption edge of the candidate"),
    "friend": ("friend", "friend path is not a friend_of edge of the user"),
    "mention": ("mention", "mention path is not candidate -> entity"),
}


def _check_piece(user: str, item: str, piece: str, edges: list[tuple[str, str, str]],
                 consumed: Mapping[str, set[str]] | None, mentioned: Mapping[str, set[str]] | None) -> str:
    cand, me = item_node(item), user_node(user)
    history = consumed.get(user, set()) if consumed is not None else None
    (h, _, t) = edges[0]
    if piece == "shared":
        if history is not None and h[5:] not in history:
            return "shared_entity starts from an item the user did not consume"
    elif piece == "co":
        if cand not in (h, t):
            return _LEAD["co_consumed"][1]
        if history is not None and (t if h == cand else h)[5:] not in history:
            return "co_consumed partner was not consumed by the user"
    elif piece == "friend":
        if me not in (h, t):
            return _LEAD["friend"][1]
        if consumed is not None and item not in consumed.get((t if h == me else h)[5:], set()):
            return "the friend did not consume the item"
    elif mentioned is not None and t not in mentioned.get(user, set()):
        return "the user never mentioned the entity"
    return ""


def check_explanation(
    user: str,
    item: str,
    kind: str,
    path: list[tuple[str, str, str]],
    kg: KnowledgeGraph,
    consumed: Mapping[str, set[str]] | None = None,
    mentioned: Mapping[str, set[str]] | None = None,
) -> str:
    """'' when the explanation is faithful, else the reason it is not.

    The path is its pieces of evidence in order (:func:`reclm_dagster.kg.evidence.split_pieces`):
    the one the kind names first, then e.g. the user's own words; each piece is checked.
    """
    if not path:
        return "no path"
    if not verify_path(kg, path):
        return "edge not in the triples"
    if kind not in _LEAD:
        return ""
    lead, shape = _LEAD[kind]
    pieces = split_pieces(path, item)
    if not pieces or pieces[0][0] != lead:
        return shape
    for piece, edges in pieces:
        problem = _check_piece(str(user), str(item), piece, edges, consumed, mentioned)
        if problem:
            return problem
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


def credible_evidence(
    recs: pd.DataFrame,
    kg: KnowledgeGraph,
    k: int = 10,
    tag_users: Mapping[str, int] | None = None,
    mentions: pd.DataFrame | None = None,
    rule: EvidenceRule = NEW_RULE,
) -> dict[str, object]:
    """Share of top-k explanations citing credible evidence, judged by ``rule`` whatever rule made them.

    A row is credible when a piece of its verified path is a clean catalogue fact, a clean tag
    that ``rule.min_tag_users`` users gave (``tag_users``), or an entity the user mentioned
    (``mentions``; without it, mention pieces are taken at their word). Co-consumption and
    friends are evidence but not words. ``cites_anything``: rows that are not 'popular'.
    """
    rows = recs[recs["rank"] <= k] if "rank" in recs else recs
    cred, said = credibility(kg, tag_users, rule), _mentioned(mentions)
    sources, n_pieces = [], []
    for user, item, p in zip(rows["user_id"].astype(str), rows["item_id"].astype(str), rows["explanation_path"]):
        path = _path(p)
        pieces = (split_pieces(path, item) or []) if verify_path(kg, path) else []
        n_pieces.append(len(pieces))
        found = ""
        for piece, edges in pieces:
            eid = edges[0][2]
            own = said is None or eid in said.get(user, set())
            if piece == "shared":
                found = cred.source(eid, edges, said=said is not None and own)
            elif piece == "mention" and own and cred.clean(eid):
                found = "own_words"
            if found:
                break
        sources.append(found)
    n = len(rows)
    by = pd.Series(sources, dtype=object).value_counts()
    return {
        "k": int(k),
        "n_rows": int(n),
        "credible": round(sum(1 for s in sources if s) / n, 4) if n else 0.0,
        "cites_anything": round(float((rows["explanation_kind"] != "popular").mean()), 4) if n else 0.0,
        "credible_by": {str(s): round(int(c) / n, 4) for s, c in by.items() if s},
        "mean_pieces": round(sum(n_pieces) / n, 3) if n else 0.0,
        "max_pieces": int(max(n_pieces, default=0)),
    }
