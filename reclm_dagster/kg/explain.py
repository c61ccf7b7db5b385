"""Explanations for recommendations, built only from links that exist in the knowledge graph.

Order of preference: a shared specific entity with a liked item (person/brand, then
tag/feature, then genre/category; rarer first), co-consumption, a friend who likes it,
a shared place (country/location), the caller's matched text terms, else "popular".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from reclm_dagster.kg.build import (
    CO_CONSUMED,
    FRIEND_OF,
    KnowledgeGraph,
    item_node,
    node_type,
    node_value,
)

Edge = tuple[str, str, str]

# Lower rank = more specific = better reason. Unknown types sit with genres.
_TYPE_RANK = {
    **dict.fromkeys(["person", "artist", "director", "actor", "brand", "label",
                     "organization", "company", "studio", "author"], 0),
    **dict.fromkeys(["tag", "feature", "keyword", "album", "series"], 1),
    **dict.fromkeys(["genre", "category", "style", "mood"], 2),
}
# Places are weak reasons ("also from USA"): tried only after co-consumption and friends.
_PLACE_TYPES = {"country", "location", "region", "place", "language", "city"}
_DEFAULT_RANK = 2
_PLACE_RANK = 3

_SAME_REL_PHRASE = {
    "directed_by": "same director {name}",
    "by_artist": "same artist {name}",
    "starring": "also starring {name}",
    "brand": "same brand {name}",
    "has_genre": "also {name}",
    "category": "also in {name}",
    "tagged_as": "also tagged '{name}'",
    "feature": "also tagged '{name}'",
    "produced_in": "also produced in {name}",
    "from_region": "also from {name}",
    "filmed_in": "also filmed in {name}",
}
# When the two items reach the entity through different relations, describe the candidate's.
_CANDIDATE_PHRASE = {
    "directed_by": "also directed by {name}",
    "by_artist": "also by {name}",
    "starring": "also starring {name}",
}

_CO_PHRASE = {
    "audio": "Listeners of {title} also play it",
    "product": "People who bought {title} also bought it",
    "video": "Viewers of {title} also watched it",
}


@dataclass
class Explanation:
    text: str
    kind: str  # 'shared_entity' | 'co_consumed' | 'friend' | 'text_match' | 'popular'
    path: list[Edge] = field(default_factory=list)

    def path_json(self) -> str:
        return json.dumps([list(e) for e in self.path], ensure_ascii=False)


class _Index:
    """Dict lookups over the triples so explaining a row never scans a DataFrame."""

    def __init__(self, kg: KnowledgeGraph):
        ent = kg.entities
        self.name = dict(zip(ent["entity_id"], ent["name"]))
        self.etype = dict(zip(ent["entity_id"], ent["entity_type"]))
        items = ent[ent["entity_type"] == "item"]
        self.domain = dict(zip(items["entity_id"].map(node_value), items["domain"]))
        self.item_entities: dict[str, dict[str, str]] = {}  # item -> {entity: relation}
        self.entity_items: dict[str, set[str]] = {}
        self.co: dict[str, dict[str, Edge]] = {}  # item -> {other item: stored edge}
        self.friends: dict[str, dict[str, Edge]] = {}  # user -> {friend: stored edge}
        t = kg.triples
        self.edges = set(zip(t["head"], t["relation"], t["tail"]))
        head_item, head_user = t["head"].str.startswith("item:"), t["head"].str.startswith("user:")
        tail_item, tail_user = t["tail"].str.startswith("item:"), t["tail"].str.startswith("user:")
        content = t[head_item & ~tail_item & ~tail_user]
        for item, rel, tail in zip(content["head"].str[5:], content["relation"], content["tail"]):
            self.item_entities.setdefault(item, {}).setdefault(tail, rel)
            self.entity_items.setdefault(tail, set()).add(item)
        # Co-consumption and friendship read both ways, but the path cites the stored edge.
        for lookup, mask in (
            (self.co, head_item & tail_item & (t["relation"] == CO_CONSUMED)),
            (self.friends, head_user & tail_user & (t["relation"] == FRIEND_OF)),
        ):
            sub = t[mask]
            for head, rel, tail in zip(sub["head"], sub["relation"], sub["tail"]):
                a, b = head[5:], tail[5:]  # strip "item:" / "user:"
                lookup.setdefault(a, {}).setdefault(b, (head, rel, tail))
                lookup.setdefault(b, {}).setdefault(a, (head, rel, tail))
        self._ranked: dict[str, list[tuple[int, int, str, str]]] = {}

    def ranked_entities(self, item: str) -> list[tuple[int, int, str, str]]:
        """(rank, item frequency, entity, relation) for the item's entities, best reason first."""
        cached = self._ranked.get(item)
        if cached is None:
            out = []
            for eid, rel in self.item_entities.get(item, {}).items():
                etype = self.etype.get(eid, node_type(eid))
                rank = _PLACE_RANK if etype in _PLACE_TYPES else _TYPE_RANK.get(etype, _DEFAULT_RANK)
                out.append((rank, len(self.entity_items[eid]), eid, rel))
            cached = self._ranked[item] = sorted(out)
        return cached


def _index(kg: KnowledgeGraph) -> _Index:
    if not isinstance(kg._index, _Index):
        kg._index = _Index(kg)
    return kg._index


def verify_path(kg: KnowledgeGraph, path: Iterable[Sequence[str]]) -> bool:
    """True when every (head, relation, tail) edge of the path is a triple of the graph."""
    edges = _index(kg).edges
    return all(tuple(e) in edges for e in path)


def item_facts(kg: KnowledgeGraph, item_id: str) -> dict[str, list[str]]:
    """relation -> entity display names for one item (content facts only, graph order)."""
    idx = _index(kg)
    out: dict[str, list[str]] = {}
    t = kg.triples
    for rel, tail in zip(*(t.loc[t["head"] == item_node(item_id), c] for c in ("relation", "tail"))):
        if node_type(tail) in ("item", "user"):
            continue
        out.setdefault(rel, []).append(idx.name.get(tail, node_value(tail)))
    return out


def _phrase(rel_liked: str, rel_cand: str, name: str) -> str:
    if rel_liked == rel_cand and rel_cand in _SAME_REL_PHRASE:
        return _SAME_REL_PHRASE[rel_cand].format(name=name)
    if rel_cand in _CANDIDATE_PHRASE:
        return _CANDIDATE_PHRASE[rel_cand].format(name=name)
    if rel_cand in _SAME_REL_PHRASE:
        return _SAME_REL_PHRASE[rel_cand].format(name=name)
    return f"also {rel_cand.replace('_', ' ')} {name}"


def _shared_entity(idx, history, positions, candidate, ranks, titles) -> Explanation | None:
    for rank, _, eid, rel_c in idx.ranked_entities(candidate):
        if rank not in ranks:
            continue
        holders = idx.entity_items.get(eid, ())
        # Earliest (strongest) liked item that has the entity.
        if len(holders) < len(history):
            hits = [positions[h] for h in holders if h in positions and h != candidate]
            liked = history[min(hits)] if hits else None
        else:
            liked = next((h for h in history if h in holders and h != candidate), None)
        if liked is None:
            continue
        rel_h = idx.item_entities[liked][eid]
        name = idx.name.get(eid, node_value(eid))
        return Explanation(
            text=f"Because you liked {titles(liked)}: {_phrase(rel_h, rel_c, name)}",
            kind="shared_entity",
            path=[(item_node(liked), rel_h, eid), (item_node(candidate), rel_c, eid)],
        )
    return None


def _explain(
    idx: _Index,
    history: list[str],
    positions: dict[str, int],
    candidate: str,
    matched_terms: Sequence[str] | None,
    friends_items: Mapping[str, Iterable[str]] | None,
    user_id: str | None,
    titles: Callable[[str], str],
) -> Explanation:
    found = _shared_entity(idx, history, positions, candidate, (0, 1, 2), titles)
    if found:
        return found

    partners = idx.co.get(candidate, {})
    if partners:
        liked = next((h for h in history if h in partners and h != candidate), None)
        if liked is not None:
            phrase = _CO_PHRASE.get(str(idx.domain.get(candidate)), "People who liked {title} also liked it")
            return Explanation(phrase.format(title=titles(liked)), "co_consumed", [partners[liked]])

    if friends_items and user_id is not None:
        linked = idx.friends.get(str(user_id), {})
        for friend in sorted(friends_items, key=str):
            # Only friendships recorded in the graph count, so the path stays verifiable.
            if str(friend) in linked and candidate in friends_items[friend]:
                return Explanation(f"Your friend {friend} likes it", "friend", [linked[str(friend)]])

    found = _shared_entity(idx, history, positions, candidate, (_PLACE_RANK,), titles)
    if found:
        return found

    terms = [t for t in dict.fromkeys(matched_terms or []) if t]
    if terms:
        quoted = ", ".join(f"'{t}'" for t in terms[:3])
        return Explanation(f"Matches {quoted} in your description", "text_match", [])
    return Explanation("Popular with users like you", "popular", [])


def _title_fn(idx: _Index, titles: Mapping[str, str] | None) -> Callable[[str], str]:
    def title(item: str) -> str:
        if titles and item in titles:
            return str(titles[item])
        return str(idx.name.get(item_node(item), item))

    return title


def explain(
    user_history: Sequence[tuple[str, float]],
    candidate_item: str,
    kg: KnowledgeGraph,
    matched_terms: list[str] | None = None,
    friends_items: Mapping[str, set[str]] | None = None,
    titles: Mapping[str, str] | None = None,
    user_id: str | None = None,
) -> Explanation:
    """Explain one candidate from the user's training history (strongest first).

    A friend explanation needs ``user_id`` so the friend_of edge can be checked in the graph.
    """
    idx = _index(kg)
    history = list(dict.fromkeys(str(i) for i, _ in user_history))
    positions = {h: p for p, h in enumerate(history)}
    return _explain(idx, history, positions, str(candidate_item), matched_terms,
                    friends_items, user_id, _title_fn(idx, titles))


def explain_many(
    recs: pd.DataFrame,
    train_interactions: pd.DataFrame,
    kg: KnowledgeGraph,
    matched_terms_fn: Callable[[str, str], list[str]] | None = None,
    titles: Mapping[str, str] | None = None,
    max_history: int | None = 200,
) -> pd.DataFrame:
    """Add explanation, explanation_kind, explanation_path (JSON) to a recs table.

    Histories are training interactions, strongest weight first (capped at ``max_history``);
    friends come from the graph's friend_of edges, their likes from the same interactions.
    """
    idx = _index(kg)
    title = _title_fn(idx, titles)
    train = train_interactions[["user_id", "item_id"]].astype(str)
    train["weight"] = (
        pd.to_numeric(train_interactions["weight"], errors="coerce").fillna(0.0).to_numpy()
        if "weight" in train_interactions else 1.0
    )
    train = train.sort_values(["user_id", "weight"], ascending=[True, False], kind="mergesort")
    histories = {u: list(dict.fromkeys(g)) for u, g in train.groupby("user_id", sort=False)["item_id"]}
    consumed = {u: set(h) for u, h in histories.items()}
    if max_history:
        histories = {u: h[:max_history] for u, h in histories.items()}

    texts, kinds, paths = [], [], []
    cache: dict[str, tuple[list[str], dict[str, int], dict[str, set[str]]]] = {}
    for user, item in zip(recs["user_id"].astype(str), recs["item_id"].astype(str)):
        if user not in cache:
            hist = histories.get(user, [])
            friends = {f: consumed.get(f, set()) for f in idx.friends.get(user, {})}
            cache[user] = (hist, {h: p for p, h in enumerate(hist)}, friends)
        hist, positions, friends = cache[user]
        terms = matched_terms_fn(user, item) if matched_terms_fn else None
        exp = _explain(idx, hist, positions, item, terms, friends, user, title)
        texts.append(exp.text)
        kinds.append(exp.kind)
        paths.append(exp.path_json())
    out = recs.copy()
    out["explanation"] = texts
    out["explanation_kind"] = kinds
    out["explanation_path"] = paths
    return out
