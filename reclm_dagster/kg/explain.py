"""Explanations for recommendations, built only from links that exist in the knowledge graph.

Order of preference for the leading reason (every reason with a path is checked against the
triples by ``verify_path``; what counts as credible is :mod:`reclm_dagster.kg.evidence`):

1. a shared catalogue fact with a liked item (person/brand, then tag/feature, then genre;
   rarer first);
2. a shared users' tag that enough users gave (or the user said), with a liked item;
3. an entity of that kind the user mentioned in their own words ("Matches 'space opera' in
   your tags": the path is the candidate's edge to the entity, the mention is in kg_mentions);
4. a shared genre/category with a liked item from users' words;
5. co-consumption with a liked item by at least two users ("Listeners of A also play it");
6. a friend (friend_of edge in the graph) who consumed it in training;
7. a mentioned genre/category/place;
8. co-consumption by a single user ("A listener of A also plays it");
9. a shared place (country/location);
10. a clean tag only a few users gave;
11. the caller's matched text terms (no path), else "popular" (no path).

Profanity and noise are never cited. A second piece of evidence follows the first when there is
one: the user's own matching words ("; you said 'space opera'"), else another credible entity
shared with the same liked item. ``rule=OLD_RULE`` gives the explanations before issue 11.
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
from reclm_dagster.kg.evidence import NEW_RULE, Credibility, EvidenceRule, from_user_words, tag_user_counts
from reclm_dagster.kg.wording import CO_ONE_PHRASE, CO_PHRASE, FRIEND_PHRASE, WHERE, Piece, render

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
        self.user_edges: set[Edge] = set()  # content edges only users' tags back (no catalogue row)
        t = kg.triples
        self.edges = set(zip(t["head"], t["relation"], t["tail"]))
        head_item, head_user = t["head"].str.startswith("item:"), t["head"].str.startswith("user:")
        tail_item, tail_user = t["tail"].str.startswith("item:"), t["tail"].str.startswith("user:")
        content = t[head_item & ~tail_item & ~tail_user]
        prov = content["provenance"] if "provenance" in content else pd.Series("", index=content.index)
        for head, rel, tail, source in zip(content["head"], content["relation"], content["tail"], prov):
            item = head[5:]  # strip "item:"
            self.item_entities.setdefault(item, {}).setdefault(tail, rel)
            self.entity_items.setdefault(tail, set()).add(item)
            if from_user_words(source):
                self.user_edges.add((head, rel, tail))
        self.has_catalogue = len(self.user_edges) < len(content)
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


def credibility(kg: KnowledgeGraph, tag_users: Mapping[str, int] | None = None,
                rule: EvidenceRule = NEW_RULE) -> Credibility:
    """What the graph's explanations may cite, given distinct users per tag (:func:`tag_user_counts`)."""
    idx = _index(kg)
    return Credibility(idx.name, idx.etype, idx.user_edges, tag_users, rule)


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


_KIND = {"shared": "shared_entity", "mention": "mention", "co": "co_consumed", "friend": "friend"}
_ALL_RANKS = (0, 1, _DEFAULT_RANK, _PLACE_RANK)
Accept = Callable[[str, list[Edge]], bool]


def _liked_holder(idx, history, positions, candidate, eid) -> str | None:
    """Earliest (strongest) liked item that has the entity."""
    holders = idx.entity_items.get(eid, ())
    if len(holders) < len(history):
        hits = [positions[h] for h in holders if h in positions and h != candidate]
        return history[min(hits)] if hits else None
    return next((h for h in history if h in holders and h != candidate), None)


def _shared_entity(idx, history, positions, candidate, ranks, accept: Accept,
                   liked: str | None = None) -> Piece | None:
    """An entity of the candidate (best reason first) that a liked item (or ``liked``) shares."""
    for rank, _, eid, rel_c in idx.ranked_entities(candidate):
        if rank not in ranks:
            continue
        cand_edge = (item_node(candidate), rel_c, eid)
        if not accept(eid, [cand_edge]):  # necessary for the whole path: skip the history search
            continue
        holder = _liked_holder(idx, history, positions, candidate, eid) if liked is None else liked
        rel_h = idx.item_entities.get(holder, {}).get(eid) if holder else None
        if rel_h is None:
            continue
        path = [(item_node(holder), rel_h, eid), cand_edge]
        if accept(eid, path):
            return Piece("shared", path, liked=holder, entity=eid)
    return None


def _mentioned(idx, candidate, mentioned, ranks, ok: Callable[[str, str], bool]) -> Piece | None:
    """The candidate has an entity the user named in their own words."""
    if not mentioned:
        return None
    for rank, _, eid, rel_c in idx.ranked_entities(candidate):
        if rank in ranks and eid in mentioned:
            surface, kind = mentioned[eid]
            if ok(eid, surface):
                return Piece("mention", [(item_node(candidate), rel_c, eid)], entity=eid, surface=surface,
                              where=WHERE.get(kind, "words"))
    return None


def _co_consumed(idx, history, candidate, titles, strong: bool) -> Piece | None:
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
            phrase = CO_PHRASE.get(domain, "People who liked {title} also liked it")
        else:
            phrase = CO_ONE_PHRASE.get(domain, "Someone who liked {title} also liked it")
        return Piece("co", [edge], text=phrase.format(title=titles(h)))
    return None


def _friend(idx, candidate, friends_items, user_id) -> Piece | None:
    if not friends_items or user_id is None:
        return None
    linked = idx.friends.get(str(user_id), {})
    for friend in sorted(friends_items, key=str):
        # Only friendships recorded in the graph count, so the path stays verifiable.
        if str(friend) in linked and candidate in friends_items[friend]:
            phrase = FRIEND_PHRASE.get(str(idx.domain.get(candidate)), "Your friend {friend} likes it")
            return Piece("friend", [linked[str(friend)]], text=phrase.format(friend=friend))
    return None


def _explain(
    idx: _Index,
    cred: Credibility,
    history: list[str],
    positions: dict[str, int],
    candidate: str,
    matched_terms: Sequence[str] | None,
    friends_items: Mapping[str, Iterable[str]] | None,
    user_id: str | None,
    titles: Callable[[str], str],
    mentioned: Mapping[str, tuple[str, str]] | None = None,
) -> Explanation:
    rule, said = cred.rule, mentioned or {}

    def credible(eid: str, path: list[Edge]) -> bool:
        return cred.credible(eid, path, said=eid in said)

    def catalogue(eid: str, path: list[Edge]) -> bool:
        return cred.catalogue(path) and cred.credible(eid, path)

    def own_words(eid: str, surface: str) -> bool:
        return cred.clean(eid) and cred.clean_text(surface)

    def shared(ranks, accept: Accept, **kw) -> Piece | None:
        return _shared_entity(idx, history, positions, candidate, ranks, accept, **kw)

    steps = (
        # (Last.fm has no catalogue facts: skip a pass over every tag of the candidate.)
        *((lambda: shared((0, 1, _DEFAULT_RANK), catalogue),) if rule.prefer_catalogue and idx.has_catalogue else ()),
        lambda: shared((0, 1), credible),
        lambda: _mentioned(idx, candidate, mentioned, (0, 1), own_words),
        lambda: shared((_DEFAULT_RANK,), credible),
        lambda: _co_consumed(idx, history, candidate, titles, strong=True),
        lambda: _friend(idx, candidate, friends_items, user_id),
        lambda: _mentioned(idx, candidate, mentioned, (_DEFAULT_RANK, _PLACE_RANK), own_words),
        lambda: _co_consumed(idx, history, candidate, titles, strong=False),
        lambda: shared((_PLACE_RANK,), credible),
        # A word few users gave is still true: said only when nothing better is known.
        lambda: shared((0, 1, _DEFAULT_RANK), cred.usable),
    )
    first = next((p for p in (step() for step in steps) if p), None)
    if first is not None:
        pieces, quoted = [first], ""
        if rule.max_evidence > 1 and first.kind != "mention":
            if rule.quote_user and first.entity in said and own_words(first.entity, said[first.entity][0]):
                quoted = said[first.entity][0]  # the user's word for the same entity: said inline
            # A second piece must add something: not the first entity under another type or spelling.
            adds = (lambda eid: not first.entity or cred.key(eid) != cred.key(first.entity))
            extra = None
            if rule.quote_user and not quoted:
                extra = _mentioned(idx, candidate, mentioned, _ALL_RANKS,
                                   lambda e, surface: adds(e) and own_words(e, surface))
            if extra is None and first.kind == "shared":
                for accept in ((catalogue,) if rule.prefer_catalogue and idx.has_catalogue else ()) + (credible,):
                    extra = extra or shared((0, 1, _DEFAULT_RANK), lambda e, p, a=accept: adds(e) and a(e, p),
                                            liked=first.liked)
            pieces += [extra] if extra is not None else []
        path = [e for p in pieces for e in p.path]
        text = render(pieces, quoted, lambda eid: idx.name.get(eid, node_value(eid)), titles)
        return Explanation(text, _KIND[first.kind], path)

    terms = [t for t in dict.fromkeys(matched_terms or []) if t]
    if terms:
        quoted_terms = ", ".join(f"'{t}'" for t in terms[:3])
        return Explanation(f"Matches {quoted_terms} in your description", "text_match", [])
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
    tag_users: Mapping[str, int] | None = None,
    rule: EvidenceRule = NEW_RULE,
) -> Explanation:
    """Explain one candidate from the user's training history (strongest first).

    A friend explanation needs ``user_id`` so the friend_of edge can be checked in the graph.
    ``mentioned`` maps entity ids the user named in their own words to (surface, kind), as
    :func:`reclm_dagster.kg.linking.user_mentions` returns per user. ``tag_users``: distinct
    users per tag entity (:func:`reclm_dagster.kg.evidence.tag_user_counts`); without it a
    users' tag is cited only as a last resort.
    """
    idx = _index(kg)
    history = list(dict.fromkeys(str(i) for i, _ in user_history))
    positions = {h: p for p, h in enumerate(history)}
    return _explain(idx, credibility(kg, tag_users, rule), history, positions, str(candidate_item),
                    matched_terms, friends_items, user_id, _title_fn(idx, titles), mentioned)


def explain_many(
    recs: pd.DataFrame,
    train_interactions: pd.DataFrame,
    kg: KnowledgeGraph,
    matched_terms_fn: Callable[[str, str], list[str]] | None = None,
    titles: Mapping[str, str] | None = None,
    max_history: int | None = 200,
    mentions: pd.DataFrame | None = None,
    descriptions: pd.DataFrame | None = None,
    rule: EvidenceRule = NEW_RULE,
) -> pd.DataFrame:
    """Add explanation, explanation_kind, explanation_path (JSON) to a recs table.

    Histories are training interactions, strongest weight first (capped at ``max_history``);
    friends come from the graph's friend_of edges, their likes from the same interactions.
    ``mentions`` is the kg_mentions table (user_id, entity_id, surface, kind): entities the
    user named in descriptions kept for training. ``descriptions`` (user_id, kind, text): the
    users' words the graph was built from, to count distinct users per tag exactly; without
    them the mentions give the counts.
    """
    from reclm_dagster.kg.linking import user_mentions

    said = user_mentions(mentions) if mentions is not None else {}
    cred = credibility(kg, tag_user_counts(descriptions, mentions), rule)
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
        exp = _explain(idx, cred, hist, positions, item, terms, friends, user, title, said.get(user))
        texts.append(exp.text)
        kinds.append(exp.kind)
        paths.append(exp.path_json())
    out = recs.copy()
    out["explanation"] = texts
    out["explanation_kind"] = kinds
    out["explanation_path"] = paths
    return out
