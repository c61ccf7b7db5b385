"""Which words an explanation may cite: informative *and* credible evidence.

"Because you liked The Killers: also tagged 'fucking good'" is a true path in the graph and a
useless reason. The rule (issue 11, item 5):

- a catalogue fact (director, artist, genre, brand, a catalogue's own tags) is credible and
  preferred where one exists;
- a user's tag (a ``tagged_as`` edge that :func:`reclm_dagster.kg.build.user_tag_facts` derived
  from descriptions) is credible when at least ``MIN_TAG_USERS`` distinct users gave that tag
  across the catalogue (one fan's 'g-e-n-i-o-s' is not evidence);
- the user's own words (an entity they mentioned) are credible: they are quoted;
- whatever its source, a free word (tag, keyword, feature, mood, style) is never cited when it
  is profanity (``assets/explain/profanity.txt``), a dislike word (``assets/sentiment/negative.txt``:
  'overrated' is no reason to listen), about the tagger rather than the music ('albums i own',
  ``assets/explain/uninformative.txt``) or noise: mostly non-letters, spelled out letter by
  letter, one letter held four times ('hotttt'), or too long to be a tag;
- nor is a shared tag that only names one of the two items ("Because you liked Katy Perry:
  also tagged 'katy perry'").

An explanation cites at most ``MAX_EVIDENCE`` pieces; a piece is a run of path edges
(:func:`split_pieces`), so every cited edge is still checked against the triples.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from reclm_dagster.kg.build import CO_CONSUMED, FRIEND_OF, item_node, node_type, node_value, normalize_name
from reclm_dagster.settings import ASSETS_DIR

Edge = tuple[str, str, str]

MIN_TAG_USERS = 5  # distinct users who gave a tag before it is cited as a reason
MAX_EVIDENCE = 2  # pieces of evidence per explanation
MAX_WORD_CHARS = 30  # 'songs that make me want to dance in the rain' is a sentence, not a tag
MAX_WORD_WORDS = 5
MAX_WIDE_CHARS = 12  # the same for Chinese/Japanese/Korean, which has no spaces
MIN_ALNUM_SHARE = 0.6  # '<3', ':-)', '!!!11' are not words; '80s' and 'r&b' are
# Free words are filtered; names of people, brands, genres and places are facts, shown as written.
WORD_TYPES = frozenset({"tag", "keyword", "feature", "mood", "style"})
# build.user_tag_facts writes this provenance on every edge it derives from users' tags.
USER_WORDS_PROVENANCE = "descriptions:"
PROFANITY_FILE = ASSETS_DIR / "explain" / "profanity.txt"
UNINFORMATIVE_FILE = ASSETS_DIR / "explain" / "uninformative.txt"

_SPELLED = re.compile(r"^(?:[^\W_][\W_]+){3,}[^\W_][\W_]*$")  # g-e-n-i-o-s: 4+ lone letters
_HELD = re.compile(r"([^\W\d_])\1{3}")  # hotttt, 哈哈哈哈
_MORE = re.compile(r"\s*\(\+\d+ more\)$")  # merge_triples' provenance suffix


@dataclass(frozen=True)
class EvidenceRule:
    """What an explanation may cite. ``OLD_RULE`` reproduces the explanations before issue 11."""

    min_tag_users: int = MIN_TAG_USERS
    filter_noise: bool = True  # drop profanity, dislike words and noise
    max_evidence: int = MAX_EVIDENCE
    prefer_catalogue: bool = True  # catalogue facts (any rank) before users' tags
    quote_user: bool = True  # add the user's own matching words as evidence


NEW_RULE = EvidenceRule()
OLD_RULE = EvidenceRule(min_tag_users=0, filter_noise=False, max_evidence=1, prefer_catalogue=False, quote_user=False)


def _wide(text: str) -> bool:
    return any(unicodedata.east_asian_width(c) in "WF" for c in text)


@dataclass(frozen=True)
class WordList:
    """Entries of a word list file: whole words/phrases, word prefixes ('fuck*'), infixes."""

    words: frozenset[str]
    prefixes: tuple[str, ...] = ()
    infixes: tuple[str, ...] = ()
    phrases: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "phrases", tuple(f" {w} " for w in self.words if " " in w))

    @classmethod
    def parse(cls, lines: Iterable[str], wide_infix: bool = True) -> "WordList":
        words, prefixes, infixes = set(), [], []
        for line in lines:
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if entry.startswith("*") and entry.endswith("*") and len(entry) > 2:
                infixes.append(normalize_name(entry[1:-1]))
            elif entry.endswith("*") and len(entry) > 1:
                prefixes.append(normalize_name(entry[:-1]))
            elif wide_infix and _wide(entry):  # no word breaks in Chinese: match anywhere
                infixes.append(normalize_name(entry))
            else:
                words.add(normalize_name(entry))
        return cls(frozenset(words), tuple(prefixes), tuple(infixes))

    def names(self, key: str) -> bool:
        """Whether a whole ``normalize_name`` key is an entry (or starts with a prefix entry)."""
        return key in self.words or any(key.startswith(p) for p in self.prefixes)

    def matches(self, key: str) -> bool:
        """Whether a ``normalize_name`` key holds an entry."""
        tokens = key.split()
        if key in self.words or any(t in self.words for t in tokens):
            return True
        padded = f" {key} "
        return (any(p in padded for p in self.phrases)
                or any(t.startswith(p) for t in tokens for p in self.prefixes)
                or any(i in key for i in self.infixes))


@lru_cache(maxsize=1)
def profanity() -> WordList:
    return WordList.parse(PROFANITY_FILE.read_text(encoding="utf-8").splitlines())


@lru_cache(maxsize=1)
def uninformative() -> WordList:
    return WordList.parse(UNINFORMATIVE_FILE.read_text(encoding="utf-8").splitlines(), wide_infix=False)


@lru_cache(maxsize=1)
def dislike_words() -> WordList:
    from reclm_dagster.text.sentiment import negative_words

    # Whole words only: '垃圾' (rubbish) is a dislike, '垃圾摇滚' (grunge) a genre.
    return WordList.parse(sorted(negative_words()), wide_infix=False)


def is_noise(text: str) -> bool:
    """Mostly non-letters, spelled out ('g-e-n-i-o-s'), a held letter ('hotttt') or too long."""
    s = unicodedata.normalize("NFKC", str(text)).strip()
    chars = [c for c in s if not c.isspace()]
    if not chars or not any(c.isalpha() for c in chars):
        return True
    if sum(c.isalnum() for c in chars) / len(chars) < MIN_ALNUM_SHARE:
        return True
    if _SPELLED.match(s) or _HELD.search(s.casefold()):
        return True
    wide = sum(unicodedata.east_asian_width(c) in "WF" for c in chars)
    return len(s) > MAX_WORD_CHARS or len(s.split()) > MAX_WORD_WORDS or wide > MAX_WIDE_CHARS


def is_profane(text: str) -> bool:
    return profanity().matches(normalize_name(text))


def clean_word(text: str) -> bool:
    """A word fit to show as a reason: not noise, profanity, a dislike or about the tagger."""
    if is_noise(text):
        return False
    key = normalize_name(text)
    return not (profanity().matches(key) or dislike_words().matches(key) or uninformative().names(key))


def from_user_words(provenance: object) -> bool:
    """True when every source of an edge is a user's description (no catalogue row backs it)."""
    if not isinstance(provenance, str) or not provenance.strip():
        return False
    parts = [_MORE.sub("", p).strip() for p in provenance.split(";")]
    return all(p.startswith(USER_WORDS_PROVENANCE) for p in parts if p)


def tag_user_counts(descriptions: pd.DataFrame | None = None, mentions: pd.DataFrame | None = None) -> dict[str, int]:
    """Entity id -> distinct users who used the word across the catalogue.

    Exact from tag descriptions (same ``tag:<normalised text>`` ids as the graph's tag entities);
    entities they do not cover fall back to the mentions table (users whose words link to the
    entity). A ``tagged_as`` weight counts assignments, not users, so it cannot serve.
    """
    counts: dict[str, int] = {}
    if mentions is not None and len(mentions):
        users = mentions["user_id"].astype(str)
        counts.update(users.groupby(mentions["entity_id"].astype(str)).nunique().to_dict())
    if descriptions is not None and len(descriptions) and {"kind", "text", "user_id"} <= set(descriptions.columns):
        tags = descriptions[descriptions["kind"] == "tag"]
        text = tags["text"].fillna("").astype(str).str.strip()
        keys = {t: normalize_name(t) for t in pd.unique(text)}
        ids = ("tag:" + text.map(keys))[text != ""]
        users = tags["user_id"].astype(str)[text != ""]
        counts.update(users.groupby(ids).nunique().to_dict())
    return {str(k): int(v) for k, v in counts.items()}


class Credibility:
    """For one graph, one rule and the users' tag counts: which cited entities are credible."""

    def __init__(self, names: Mapping[str, str], etypes: Mapping[str, str], user_edges: Set[Edge],
                 tag_users: Mapping[str, int] | None, rule: EvidenceRule = NEW_RULE):
        self.names, self.etypes, self.user_edges = names, etypes, user_edges
        self.tag_users = tag_users or {}
        self.rule = rule
        self._clean: dict[str, bool] = {}
        self._keys: dict[str, str] = {}

    def clean(self, eid: str) -> bool:
        """The entity's name may be shown (facts always; free words when clean)."""
        if not self.rule.filter_noise:
            return True
        ok = self._clean.get(eid)
        if ok is None:
            free = self.etypes.get(eid, node_type(eid)) in WORD_TYPES
            ok = self._clean[eid] = not free or clean_word(self.names.get(eid, node_value(eid)))
        return ok

    def clean_text(self, text: str) -> bool:
        return not self.rule.filter_noise or clean_word(text)

    def catalogue(self, edges: Iterable[Edge]) -> bool:
        return not any(e in self.user_edges for e in edges)

    def key(self, eid: str) -> str:
        """The entity's name as the graph normalises it ('Frank Darabont' == 'frank darabont')."""
        key = self._keys.get(eid)
        if key is None:
            key = self._keys[eid] = normalize_name(self.names.get(eid, node_value(eid)))
        return key

    def usable(self, eid: str, edges: Sequence[Edge]) -> bool:
        """Clean, and not just the name of an item the edges start from."""
        if not self.clean(eid):
            return False
        return not self.rule.filter_noise or all(self.key(h) != self.key(eid) for h, _, _ in edges)

    def source(self, eid: str, edges: Sequence[Edge], said: bool = False) -> str:
        """Why citing the entity is credible: 'catalogue' | 'own_words' | 'users_tag', else ''."""
        if not self.usable(eid, edges):
            return ""
        if self.catalogue(edges):
            return "catalogue"
        if said:
            return "own_words"
        return "users_tag" if self.tag_users.get(eid, 0) >= self.rule.min_tag_users else ""

    def credible(self, eid: str, edges: Sequence[Edge], said: bool = False) -> bool:
        """Clean, and a catalogue fact, the user's own word or a tag enough users gave."""
        return bool(self.source(eid, edges, said))


def split_pieces(path: Sequence[Sequence[str]], candidate: str) -> list[tuple[str, list[Edge]]] | None:
    """The pieces of evidence of a path about ``candidate`` (an item id), or None if it does not parse.

    'shared': liked item -> entity, candidate -> same entity; 'mention': candidate -> entity;
    'co': one co-consumption edge; 'friend': one friend_of edge.
    """
    cand, edges = item_node(candidate), [tuple(e) for e in path]
    out: list[tuple[str, list[Edge]]] = []
    i = 0
    while i < len(edges):
        head, rel, tail = edges[i]
        if rel in (CO_CONSUMED, FRIEND_OF):
            out.append(("co" if rel == CO_CONSUMED else "friend", [edges[i]]))
            i += 1
        elif head == cand:
            out.append(("mention", [edges[i]]))
            i += 1
        elif i + 1 < len(edges) and edges[i + 1][0] == cand and edges[i + 1][2] == tail:
            out.append(("shared", edges[i:i + 2]))
            i += 2
        else:
            return None
    return out
