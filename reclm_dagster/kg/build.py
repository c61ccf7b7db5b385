"""Build the knowledge graph: items, entities and users as nodes, facts as weighted triples.

Entity ids are ``<entity_type>:<normalised name>`` so spellings that differ only by
case, accents, width or punctuation become one node; items are ``item:<item_id>``
and users (present only through ``friend_of`` links) ``user:<user_id>``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.kg._sparse import blockwise_top_k

ENTITY_COLUMNS = ["entity_id", "entity_type", "name", "key", "aliases", "domain"]
TRIPLE_COLUMNS = ["head", "relation", "tail", "weight", "provenance"]
ALIAS_SEP = " | "
CO_CONSUMED = "co_consumed_with"
FRIEND_OF = "friend_of"
# Keep provenance readable: a fact seen in 40 files lists the first few and a count.
_MAX_PROVENANCE = 3

# East Asian scripts (CJK, kana, Hangul): their names are kept as written after NFKC,
# because stripping "combining marks" would turn が into か.
_EAST_ASIAN = re.compile(
    "[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ebef]"
)
_WHITESPACE = re.compile(r"\s+")


def normalize_name(name: object) -> str:
    """Merge key for a display name: NFKC, casefold, accents and punctuation dropped.

    'Science-Fiction', 'science fiction', 'SCIENCE  FICTION' -> 'science fiction';
    'Beyoncé' -> 'beyonce'; 'ＡＢＣ' -> 'abc'. Chinese/Japanese/Korean names only get
    NFKC, casefold (which leaves ideographs alone), punctuation -> space and whitespace
    collapsing ('【剧本】' -> '剧本'); their marks are kept.
    """
    s = unicodedata.normalize("NFKC", str(name))
    if _EAST_ASIAN.search(s):
        # Punctuation still folds to a space: '#电影', '【电影】' and '电影' are one tag.
        spaced = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in s.casefold())
        key = _WHITESPACE.sub(" ", spaced).strip()
        return key or _WHITESPACE.sub(" ", s.casefold()).strip()
    decomposed = unicodedata.normalize("NFKD", s.casefold())
    chars = []
    for ch in decomposed:
        cat = unicodedata.category(ch)
        if cat == "Mn":  # accent marks
            continue
        chars.append(" " if cat.startswith("P") or ch.isspace() else ch)
    key = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", "".join(chars))).strip()
    # A name made only of punctuation ("!!!") still needs a non-empty key.
    return key or _WHITESPACE.sub(" ", s.casefold()).strip()


def item_node(item_id: object) -> str:
    return f"item:{item_id}"


def user_node(user_id: object) -> str:
    return f"user:{user_id}"


def node_type(entity_id: str) -> str:
    return entity_id.split(":", 1)[0]


def node_value(entity_id: str) -> str:
    return entity_id.split(":", 1)[1] if ":" in entity_id else entity_id


def _join_provenance(values: pd.Series) -> str:
    seen = list(dict.fromkeys(v for v in values if isinstance(v, str) and v))
    text = "; ".join(seen[:_MAX_PROVENANCE])
    if len(seen) > _MAX_PROVENANCE:
        text += f" (+{len(seen) - _MAX_PROVENANCE} more)"
    return text


def merge_triples(triples: pd.DataFrame) -> pd.DataFrame:
    """One row per (head, relation, tail): weights summed, provenance joined in first-seen order."""
    if triples.empty:
        return pd.DataFrame(columns=TRIPLE_COLUMNS).astype({"weight": float})
    df = triples[TRIPLE_COLUMNS].copy()
    df["weight"] = pd.to_numeric(df["weight"], errors="coerce").fillna(1.0).astype(float)
    df["provenance"] = df["provenance"].fillna("").astype(str)
    keys = ["head", "relation", "tail"]
    grouped = df.groupby(keys, sort=False)
    weight = grouped["weight"].sum()
    sizes = grouped.size()
    first_prov = grouped["provenance"].first()
    # Joining strings is slow per group, so only groups with several rows pay for it.
    multi = sizes[sizes > 1].index
    if len(multi):
        dup = df.set_index(keys).loc[multi]
        joined = dup.groupby(level=keys, sort=False)["provenance"].agg(_join_provenance)
        first_prov.loc[joined.index] = joined
    out = pd.DataFrame({"weight": weight, "provenance": first_prov}).reset_index()
    return out[TRIPLE_COLUMNS].reset_index(drop=True)


@dataclass
class KnowledgeGraph:
    """Entities and triples; rebuildable from the two tables alone (e.g. read back from DuckDB)."""

    entities: pd.DataFrame
    triples: pd.DataFrame
    _index: object = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # The explanation index is a cache: rebuild it after unpickling rather than storing it.
        return {"entities": self.entities, "triples": self.triples, "_index": None}

    @property
    def item_ids(self) -> list[str]:
        items = self.entities[self.entities["entity_type"] == "item"]["entity_id"]
        return [node_value(e) for e in items]

    def summary(self) -> dict:
        """Counts per entity type and per relation, plus totals (JSON-friendly)."""
        per_type = self.entities["entity_type"].value_counts().sort_index()
        per_rel = self.triples["relation"].value_counts().sort_index()
        return {
            "n_entities": int(len(self.entities)),
            "n_triples": int(len(self.triples)),
            "entities_per_type": {str(k): int(v) for k, v in per_type.items()},
            "triples_per_relation": {str(k): int(v) for k, v in per_rel.items()},
        }

    def relations(self) -> pd.DataFrame:
        """The relations of the graph with their counts (see :func:`relations_table`)."""
        return relations_table(self)

    def with_triples(self, extra: pd.DataFrame) -> "KnowledgeGraph":
        """New graph with extra triples (e.g. co-consumption) merged in; unseen nodes get entity rows."""
        triples = merge_triples(pd.concat([self.triples, extra[TRIPLE_COLUMNS]], ignore_index=True))
        known = set(self.entities["entity_id"])
        new_ids = [
            e for e in pd.unique(pd.concat([extra["head"], extra["tail"]])) if e not in known
        ]
        new_rows = pd.DataFrame(
            {
                "entity_id": new_ids,
                "entity_type": [node_type(e) for e in new_ids],
                "name": [node_value(e) for e in new_ids],
                "key": [node_value(e) for e in new_ids],
                "aliases": "",
                "domain": None,
            },
            columns=ENTITY_COLUMNS,
        )
        entities = pd.concat([self.entities, new_rows], ignore_index=True) if new_ids else self.entities
        return KnowledgeGraph(entities=entities.reset_index(drop=True), triples=triples)


RELATION_COLUMNS = [
    "relation", "label", "head_type", "tail_type", "n_triples", "n_heads", "n_tails",
    "total_weight", "weight_meaning", "description",
]
# relation -> (what its weight counts, what it says). Unknown relations get generic text.
_RELATION_INFO = {
    "tagged_as": ("users (or tag weight) that gave the tag", "item was tagged with the tag"),
    "has_genre": ("1 per source row", "item belongs to the genre"),
    "directed_by": ("1 per source row", "item was directed by the person"),
    "starring": ("1 per source row", "item stars the person"),
    "by_artist": ("1 per source row", "item is by the artist"),
    "hosted_by": ("1 per source row", "live stream is hosted by the person"),
    "produced_in": ("1 per source row", "item was produced in the country"),
    "filmed_in": ("1 per source row", "item was filmed at the location"),
    "from_region": ("1 per source row", "item comes from the region"),
    "brand": ("1 per source row", "product is made by the brand"),
    "category": ("1 per source row", "product is in the category"),
    "feature": ("1 per source row", "product has the feature"),
    "priced_at": ("1 per source row", "product is in the price band"),
    FRIEND_OF: ("1", "user is a friend of user (as listed by the dataset)"),
    CO_CONSUMED: ("distinct training users who consumed both",
                  "users who consumed the head item also consumed the tail item (training interactions only)"),
}
# co_consumed_with is stored under one name (mixed catalogues link films to products);
# the label says what it means when all its items are of one domain.
_CO_LABEL = {"audio": "co_listened_with", "video": "co_watched_with", "product": "co_bought_with"}


def relations_table(kg: "KnowledgeGraph") -> pd.DataFrame:
    """One row per (relation, head type, tail type): counts, weight meaning and a readable label."""
    t = kg.triples
    if t.empty:
        return pd.DataFrame(columns=RELATION_COLUMNS)
    etype = dict(zip(kg.entities["entity_id"], kg.entities["entity_type"]))
    items = kg.entities[kg.entities["entity_type"] == "item"]
    domain = dict(zip(items["entity_id"], items["domain"]))
    frame = t.assign(
        head_type=t["head"].map(etype).fillna(t["head"].map(node_type)),
        tail_type=t["tail"].map(etype).fillna(t["tail"].map(node_type)),
    )
    rows = []
    for (rel, ht, tt), g in frame.groupby(["relation", "head_type", "tail_type"], sort=True):
        label = rel
        if rel == CO_CONSUMED:
            domains = set(pd.concat([g["head"], g["tail"]]).map(domain).dropna().astype(str))
            if len(domains) == 1:
                label = _CO_LABEL.get(domains.pop(), rel)
        meaning, description = _RELATION_INFO.get(rel, ("1 per source row", f"{ht} {rel.replace('_', ' ')} {tt}"))
        rows.append({
            "relation": rel, "label": label, "head_type": ht, "tail_type": tt,
            "n_triples": int(len(g)), "n_heads": int(g["head"].nunique()), "n_tails": int(g["tail"].nunique()),
            "total_weight": float(g["weight"].sum()), "weight_meaning": meaning, "description": description,
        })
    return pd.DataFrame(rows, columns=RELATION_COLUMNS)


def _fact_entities(facts: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Entity table for the facts' tails, plus each fact row's entity id."""
    etype = facts["entity_type"].astype(str).str.strip().str.lower()
    raw = facts["entity"].astype(str).str.strip()
    key_of = {name: normalize_name(name) for name in pd.unique(raw)}
    key = raw.map(key_of)
    # Items and users named as entities keep their ids verbatim.
    verbatim = etype.isin(["item", "user"])
    key = key.where(~verbatim, raw)
    entity_id = etype + ":" + key
    frame = pd.DataFrame({"entity_id": entity_id, "entity_type": etype, "key": key, "name": raw})
    spellings = frame.drop_duplicates(["entity_id", "name"])  # first-seen order kept
    first = spellings.drop_duplicates("entity_id")
    others = spellings[spellings.duplicated("entity_id")]
    aliases = others.groupby("entity_id", sort=False)["name"].agg(ALIAS_SEP.join)
    table = first.assign(aliases=first["entity_id"].map(aliases).fillna(""), domain=None)
    return table[ENTITY_COLUMNS].reset_index(drop=True), entity_id


def user_tag_facts(descriptions: pd.DataFrame | None) -> pd.DataFrame:
    """Item → tag facts (``tagged_as``) aggregated from users' tags (descriptions of kind 'tag').

    These are users' words, so they are derived here from whichever descriptions the caller
    passes — all of them for the production graph, only the protocol's allowed ones in an
    evaluation — and never stored by a loader. Case and surrounding spaces are ignored when
    grouping; the name is the first spelling seen; weight = number of assignments;
    provenance = the first description row.
    """
    columns = ["item_id", "relation", "entity_type", "entity", "weight", "source"]
    if descriptions is None or not len(descriptions) or "kind" not in descriptions:
        return pd.DataFrame(columns=columns)
    t = descriptions[(descriptions["kind"] == "tag") & descriptions["item_id"].notna()]
    text = t["text"].astype(str).str.strip()
    t = t.assign(item_id=t["item_id"].astype(str), text=text, key=text.str.casefold())[text != ""]
    g = t.groupby(["item_id", "key"], sort=False)
    out = g.agg(entity=("text", "first"), weight=("text", "size"), first=("description_id", "first")).reset_index()
    return pd.DataFrame({
        "item_id": out["item_id"], "relation": "tagged_as", "entity_type": "tag", "entity": out["entity"],
        "weight": out["weight"].astype("float64"), "source": "descriptions:" + out["first"].astype(str),
    }, columns=columns)


def build_knowledge_graph(
    items: pd.DataFrame,
    facts: pd.DataFrame,
    user_links: pd.DataFrame | None = None,
    extra_triples: pd.DataFrame | None = None,
    *,
    descriptions: pd.DataFrame | None = None,
) -> KnowledgeGraph:
    """Items + facts (+ friend links, + e.g. co-consumption triples) -> KnowledgeGraph.

    ``descriptions``: users' words the graph may use; their tags become ``tagged_as``
    triples (:func:`user_tag_facts`). Facts about item ids missing from ``items`` are
    dropped: an explanation must never point at an item the catalogue does not have.
    """
    tags = user_tag_facts(descriptions)
    if len(tags):
        facts = pd.concat([facts, tags], ignore_index=True) if len(facts) else tags
    items = items.drop_duplicates("item_id")
    ids = items["item_id"].astype(str)
    titles = items["title"].fillna("").astype(str).str.strip() if "title" in items else ids
    item_rows = pd.DataFrame(
        {
            "entity_id": ids.map(item_node),
            "entity_type": "item",
            "name": titles.where(titles != "", ids),  # untitled items show their id
            "key": ids,
            "aliases": "",
            "domain": items["domain"].astype(str) if "domain" in items else None,
        },
        columns=ENTITY_COLUMNS,
    )
    known_items = set(items["item_id"].astype(str))
    facts = facts.copy()
    facts["item_id"] = facts["item_id"].astype(str)
    usable = facts["entity"].notna() & (facts["entity"].astype(str).str.strip() != "")
    facts = facts[usable & facts["item_id"].isin(known_items)].reset_index(drop=True)

    parts: list[pd.DataFrame] = []
    entity_tables = [item_rows]
    if not facts.empty:
        fact_entities, tail = _fact_entities(facts)
        entity_tables.append(fact_entities[~fact_entities["entity_id"].isin(item_rows["entity_id"])])
        parts.append(
            pd.DataFrame(
                {
                    "head": facts["item_id"].map(item_node),
                    "relation": facts["relation"].astype(str).str.strip().str.lower(),
                    "tail": tail,
                    "weight": facts["weight"] if "weight" in facts else 1.0,
                    "provenance": facts["source"] if "source" in facts else "",
                }
            )
        )

    if user_links is not None and not user_links.empty:
        links = user_links[user_links["user_id"].astype(str) != user_links["other_user_id"].astype(str)]
        heads = links["user_id"].astype(str).map(user_node)
        tails = links["other_user_id"].astype(str).map(user_node)
        rel = links["relation"].astype(str) if "relation" in links else FRIEND_OF
        # The common schema keeps no file/line for user links: the row's key in the stored
        # user_links table is what asserted the edge.
        prov = (links["source"] if "source" in links else
                "user_links:" + links["user_id"].astype(str) + "," + links["other_user_id"].astype(str))
        parts.append(
            pd.DataFrame(
                {"head": heads, "relation": rel, "tail": tails, "weight": 1.0, "provenance": prov}
            )
        )
        users = pd.unique(pd.concat([heads, tails]))
        entity_tables.append(
            pd.DataFrame(
                {"entity_id": users, "entity_type": "user",
                 "name": [node_value(u) for u in users], "key": [node_value(u) for u in users],
                 "aliases": "", "domain": None},
                columns=ENTITY_COLUMNS,
            )
        )

    entities = pd.concat(entity_tables, ignore_index=True).drop_duplicates("entity_id")
    triples = merge_triples(pd.concat(parts, ignore_index=True)) if parts else merge_triples(
        pd.DataFrame(columns=TRIPLE_COLUMNS)
    )
    kg = KnowledgeGraph(entities=entities.reset_index(drop=True), triples=triples)
    if extra_triples is not None and not extra_triples.empty:
        kg = kg.with_triples(extra_triples)
    return kg


def co_consumption_triples(
    train_interactions: pd.DataFrame,
    min_common: int = 2,
    top_k: int = 10,
    block_size: int = 4096,
) -> pd.DataFrame:
    """item --co_consumed_with--> item from training interactions only.

    The weight is the number of distinct users who consumed both; each item keeps its
    ``top_k`` strongest partners with at least ``min_common`` shared users. Among partners
    with the same count the more popular one is kept (a long-tail item with a single
    listener otherwise keeps an arbitrary 10 of that listener's artists; the popular ones
    are the ones other users share, so they explain more lists). Computed as sparse
    X.T @ X one block of items at a time.
    """
    df = train_interactions
    if "weight" in df:
        df = df[pd.to_numeric(df["weight"], errors="coerce").fillna(0) > 0]
    if df.empty:
        return pd.DataFrame(columns=TRIPLE_COLUMNS).astype({"weight": float})
    user_codes, _ = pd.factorize(df["user_id"].astype(str))
    item_codes, item_labels = pd.factorize(df["item_id"].astype(str))
    x = sp.csr_matrix(
        (np.ones(len(df), dtype=np.float64), (user_codes, item_codes)),
        shape=(user_codes.max() + 1, len(item_labels)),
    )
    x.sum_duplicates()
    x.data[:] = 1.0  # repeated (user, item) rows were summed; a user counts once
    popularity = np.asarray(x.sum(axis=0)).ravel()
    # Rank of popularity (ties: lower column first) scaled into [0, 0.5): breaks count ties only.
    order_pop = np.lexsort((-np.arange(len(popularity)), popularity))
    bonus = np.empty(len(popularity))
    bonus[order_pop] = np.arange(len(popularity)) / (2.0 * len(popularity) + 1.0)
    common = blockwise_top_k(
        x.T.tocsr(), x, k=top_k, min_value=min_common - 0.5, block_size=block_size,
        column_bonus=bonus,
    ).tocoo()
    common.data = np.floor(common.data)
    order = np.lexsort((common.col, -common.data, common.row))
    heads = np.asarray(item_labels)[common.row[order]]
    tails = np.asarray(item_labels)[common.col[order]]
    counts = common.data[order]
    return pd.DataFrame(
        {
            "head": [item_node(h) for h in heads],
            "relation": CO_CONSUMED,
            "tail": [item_node(t) for t in tails],
            "weight": counts.astype(float),
            "provenance": [f"train_interactions ({int(c)} common user{'s' if c != 1 else ''})" for c in counts],
        },
        columns=TRIPLE_COLUMNS,
    )
