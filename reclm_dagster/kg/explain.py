"""Explanations for recommendations, built only from links that exist in the knowledge graph.

Order of preference (every reason with a path is checked against the triples by
``verify_path``):

1. a shared specific entity with a liked item (person/brand, then tag/feature; rarer first);
2. an entity of that kind the user mentioned in their own words ("Matches 'space opera' in
   your tags": the path is the candidate's edge to the entity, the mention is in kg_mentions);
3. a shared genre/category with a liked item;
4. co-consumption with a liked item by at least two users ("Listeners of A also play it");
5. a friend (friend_of edge in the graph) who consumed it in training;
6. a mentioned genre/category/place;
7. co-consumption by a single user ("A listener of A also plays it");
8. a shared place (country/location);
9. the caller's matched text terms (no path), else "popular" (no path).
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
# Co-consumption by one user only: still true, said as such.
_CO_ONE_PHRASE = {
    "audio": "A listener of {title} also plays it",
    "product": "Someone who bought {title} also bought it",
    "video": "A viewer of {title} also watched it",
}
_FRIEND_PHRASE = {
    "audio": "Your friend {friend} listens to it",
    "product": "Your friend {friend} bought it",
    "video": "Your friend {friend} watched it",
}
_WHERE = {"tag": "tags", "review": "reviews", "request": "requests", "profile": "profile"}
# Co-consumption counts at or above this are "listeners of A also play it"; below, "a listener".
STRONG_CO = 2.0


@dataclass
class Explanation:
    text: str
    kind: str  # 'shared_entity' | 'mention' | 'co_consumed' | 'friend' | 'text_match' | 'popular'
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
        self.co_weight: dict[Edge, float] = {}
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
            for head, rel, tail, w in zip(sub["head"], sub["relation"], sub["tail"], sub["weight"]):
                a, b = head[5:], tail[5:]  # strip "item:" / "user:"
                lookup.setdefault(a, {}).setdefault(b, (head, rel, tail))
                lookup.setdefault(b, {}).setdefault(a, (head, rel, tail))
                if lookup is self.co:
                    self.co_weight[(head, rel, tail)] = float(w)
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


def _mentioned(idx, candidate, mentioned, ranks) -> Explanation | None:
    """The candidate has an entity the user named in their own words."""
    if not mentioned:
        return None
    for rank, _, eid, rel_c in idx.ranked_entities(candidate):
        if rank in ranks and eid in mentioned:
            surface, kind = mentioned[eid]
            where = _WHERE.get(kind, "words")
            return Explanation(f"Matches '{surface}' in your {where}", "mention",
                               [(item_node(candidate), rel_c, eid)])
    return None


def _co_consumed(idx, history, candidate, titles, strong: bool) -> Explanation | None:
    partners = idx.co.get(candidate, {})
    if not partners:
        return None
    for h in history:
        if h == candidate or h not in partners:
            continue
        edge = partners[h]
        weight = idx.co_weight.get(edge, STRONG_CO)
        if (weight >= STRONG_CO) != strong:
            continue
        domain = str(idx.domain.get(candidate))
        if strong:
            phrase = _CO_PHRASE.get(domain, "People who liked {title} also liked it")
        else:
            phrase = _CO_ONE_PHRASE.get(domain, "Someone who liked {title} also liked it")
        return Explanation(phrase.format(title=titles(h)), "co_consumed", [edge])
    return None


def _friend(idx, candidate, friends_items, user_id) -> Explanation | None:
    if not friends_items or user_id is None:
        return None
    linked = idx.friends.get(str(user_id), {})
    for friend in sorted(friends_items, key=str):
        # Only friendships recorded in the graph count, so the path stays verifiable.
        if str(friend) in linked and candidate in friends_items[friend]:
            phrase = _FRIEND_PHRASE.get(str(idx.domain.get(candidate)), "Your friend {friend} likes it")
            return Explanation(phrase.format(friend=friend), "friend", [linked[str(friend)]])
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
    mentioned: Mapping[str, tuple[str, str]] | None = None,
) -> Explanation:
    steps = (
        lambda: _shared_entity(idx, history, positions, candidate, (0, 1), titles),
        lambda: _mentioned(idx, candidate, mentioned, (0, 1)),
        lambda: _shared_entity(idx, history, positions, candidate, (2,), titles),
        lambda: _co_consumed(idx, history, candidate, titles, strong=True),
        lambda: _friend(idx, candidate, friends_items, user_id),
        lambda: _mentioned(idx, candidate, mentioned, (2, _PLACE_RANK)),
        lambda: _co_consumed(idx, history, candidate, titles, strong=False),
        lambda: _shared_entity(idx, history, positions, candidate, (_PLACE_RANK,), titles),
    )
    for step in steps:
        found = step()
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
    mentioned: Mapping[str, tuple[str, str]] | None = None,
) -> Explanation:
    """Explain one candidate from the user's training history (strongest first).

    A friend explanation needs ``user_id`` so the friend_of edge can be checked in the graph.
    ``mentioned`` maps entity ids the user named in their own words to (surface, kind), as
    :func:`reclm_dagster.kg.linking.user_mentions` returns per user.
    """
    idx = _index(kg)
    history = list(dict.fromkeys(str(i) for i, _ in user_history))
    positions = {h: p for p, h in enumerate(history)}
    return _explain(idx, history, positions, str(candidate_item), matched_terms,
                    friends_items, user_id, _title_fn(idx, titles), mentioned)


def explain_many(
    recs: pd.DataFrame,
    train_interactions: pd.DataFrame,
    kg: KnowledgeGraph,
    matched_terms_fn: Callable[[str, str], list[str]] | None = None,
    titles: Mapping[str, str] | None = None,
    max_history: int | None = 200,
    mentions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add explanation, explanation_kind, explanation_path (JSON) to a recs table.

    Histories are training interactions, strongest weight first (capped at ``max_history``);
    friends come from the graph's friend_of edges, their likes from the same interactions.
    ``mentions`` is the kg_mentions table (user_id, entity_id, surface, kind): entities the
    user named in descriptions kept for training.
    """
    from reclm_dagster.kg.linking import user_mentions

    said = user_mentions(mentions) if mentions is not None else {}
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
        exp = _explain(idx, hist, positions, item, terms, friends, user, title, said.get(user))
        texts.append(exp.text)
        kinds.append(exp.kind)
        paths.append(exp.path_json())
    out = recs.copy()
    out["explanation"] = texts
    out["explanation_kind"] = kinds
    out["explanation_path"] = paths
    return out
