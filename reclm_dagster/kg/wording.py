"""How an explanation says its evidence: one sentence from up to two pieces of a verified path.

"Because you liked Inception: same director Christopher Nolan; also Science-Fiction",
"Because you liked The Killers: also tagged 'indie rock', as you said",
"Listeners of Depeche Mode also play it; you said 'synthpop'".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reclm_dagster.kg.build import normalize_name

Edge = tuple[str, str, str]

SAME_REL_PHRASE = {
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
CANDIDATE_PHRASE = {
    "directed_by": "also directed by {name}",
    "by_artist": "also by {name}",
    "starring": "also starring {name}",
}
CO_PHRASE = {
    "audio": "Listeners of {title} also play it",
    "product": "People who bought {title} also bought it",
    "video": "Viewers of {title} also watched it",
}
# Co-consumption by one user only: still true, said as such.
CO_ONE_PHRASE = {
    "audio": "A listener of {title} also plays it",
    "product": "Someone who bought {title} also bought it",
    "video": "A viewer of {title} also watched it",
}
FRIEND_PHRASE = {
    "audio": "Your friend {friend} listens to it",
    "product": "Your friend {friend} bought it",
    "video": "Your friend {friend} watched it",
}
WHERE = {"tag": "tags", "review": "reviews", "request": "requests", "profile": "profile"}
LISTED = {"tagged_as", "feature"}  # two of these read as "also tagged 'a' and 'b'"


@dataclass
class Piece:
    """One piece of evidence: its path edges and what the sentence needs to say it."""

    kind: str  # 'shared' | 'mention' | 'co' | 'friend'
    path: list[Edge]
    text: str = ""  # the whole sentence, for co-consumption and friends
    liked: str = ""
    entity: str = ""
    surface: str = ""  # the user's words, for a mention
    where: str = ""

    @property
    def relations(self) -> tuple[str, str]:  # (liked item's, candidate's) for a shared entity
        return (self.path[0][1], self.path[-1][1])


def phrase(rel_liked: str, rel_cand: str, name: str) -> str:
    if rel_liked == rel_cand and rel_cand in SAME_REL_PHRASE:
        return SAME_REL_PHRASE[rel_cand].format(name=name)
    if rel_cand in CANDIDATE_PHRASE:
        return CANDIDATE_PHRASE[rel_cand].format(name=name)
    if rel_cand in SAME_REL_PHRASE:
        return SAME_REL_PHRASE[rel_cand].format(name=name)
    return f"also {rel_cand.replace('_', ' ')} {name}"


def render(pieces: list[Piece], quoted: str, name: Callable[[str], str], title: Callable[[str], str]) -> str:
    """One sentence: the first piece leads, the others follow; ``quoted`` is the user's word for it."""
    first = pieces[0]
    if first.kind == "mention":
        return f"Matches '{first.surface}' in your {first.where}"
    if first.kind != "shared":
        text = first.text
    else:
        first_name = name(first.entity)
        text = f"Because you liked {title(first.liked)}: {phrase(*first.relations, first_name)}"
        if quoted:
            same = normalize_name(quoted) == normalize_name(first_name)
            text += ", as you said" if same else f" (you said '{quoted}')"
    for piece in pieces[1:]:
        if piece.kind == "mention":
            text += f"; you said '{piece.surface}'"
        elif not quoted and piece.relations == first.relations and first.relations[1] in LISTED:
            text += f" and '{name(piece.entity)}'"
        else:
            text += "; " + phrase(*piece.relations, name(piece.entity))
    return text
