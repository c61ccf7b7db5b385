"""The texts that get tokenised and encoded: one document per item and per description."""

from __future__ import annotations

import pandas as pd

# Facts that come from users' own words (tags) are left out of the catalogue text so that
# a held-out user's tag never leaks into the item side; they reach ranking through
# the descriptions table and the knowledge graph instead.
USER_DERIVED_RELATIONS = frozenset({"tagged_as"})

# An item's document reads like a short synopsis: a film filmed in 40 places is described by
# its first few, which keeps texts under the encoder's window and encoding fast.
MAX_ENTITIES_PER_RELATION = 6

RELATION_LABELS = {
    "has_genre": "Genres",
    "directed_by": "Director",
    "starring": "Starring",
    "by_artist": "Artist",
    "brand": "Brand",
    "category": "Category",
    "feature": "Features",
    "produced_in": "Country",
    "from_region": "Region",
    "filmed_in": "Filmed in",
}


def item_documents(items: pd.DataFrame, facts: pd.DataFrame) -> pd.Series:
    """Title, description and catalogue facts as one text per item, indexed by item_id."""
    catalogue = facts[~facts["relation"].isin(USER_DERIVED_RELATIONS)] if len(facts) else facts
    fact_text: dict[str, str] = {}
    if len(catalogue):
        grouped = catalogue.groupby(["item_id", "relation"], sort=False)["entity"].agg(
            lambda s: ", ".join(list(dict.fromkeys(map(str, s)))[:MAX_ENTITIES_PER_RELATION])
        )
        parts: dict[str, list[str]] = {}
        for (item_id, relation), names in grouped.items():
            label = RELATION_LABELS.get(relation, relation.replace("_", " ").capitalize())
            parts.setdefault(item_id, []).append(f"{label}: {names}.")
        fact_text = {k: " ".join(v) for k, v in parts.items()}
    docs = []
    # title and synopsis are optional outside the schema (frames built by hand): the id stands in
    titles = items["title"] if "title" in items else items["item_id"]
    synopses = items["description"] if "description" in items else [""] * len(items)
    for item_id, title, description in zip(items["item_id"], titles, synopses):
        pieces = [str(title or "").strip()]
        if description and str(description).strip() and str(description).strip() != pieces[0]:
            pieces.append(str(description).strip())
        if item_id in fact_text:
            pieces.append(fact_text[item_id])
        docs.append(". ".join(p.rstrip(".") for p in pieces if p) + ("." if len(pieces) > 1 else ""))
    return pd.Series(docs, index=items["item_id"].astype(str).to_numpy(), name="text")


def text_corpus(items: pd.DataFrame, facts: pd.DataFrame, descriptions: pd.DataFrame) -> pd.DataFrame:
    """Every text that gets tokenised and encoded: ``(source, id, text)`` with source 'item' or 'description'."""
    item_docs = item_documents(items, facts)
    return pd.concat(
        [
            pd.DataFrame({"source": "item", "id": item_docs.index, "text": item_docs.to_numpy()}),
            pd.DataFrame({"source": "description", "id": descriptions["description_id"].astype(str),
                          "text": descriptions["text"].astype(str)}),
        ],
        ignore_index=True,
    )
