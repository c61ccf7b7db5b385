"""Entity linking: mentions of knowledge-graph entities in user descriptions and free-text requests.

Two passes over each text:

1. **Dictionary** — every entity name and alias is normalised like the graph's merge keys
   (NFKC, case, accents, full/half width, punctuation -> space; spaces between CJK characters
   dropped) and looked up on the normalised text, leftmost-longest first, in units of whole
   Latin words or single CJK characters. So 'Science-Fiction' finds ``genre:science fiction``,
   'space opera' is one mention rather than 'space' + 'opera', and '电池续航' is found inside
   '这款手机电池续航能力强' without any word segmentation. Spans point into the original text.
2. **Embeddings** (optional) — the pieces of text left unmatched (split at punctuation and at
   the dictionary matches, at most ``max_chunk_units`` long) are encoded and linked to the most
   similar concept entity (tag, genre, feature, category, ...) when the cosine reaches
   ``threshold``. The encoder is anything with ``.encode(list[str]) -> unit-norm np.ndarray``.

Texts are linked once per distinct text (Last.fm has ~186k tag assignments but ~10k tag texts).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from reclm_dagster.kg.build import ALIAS_SEP, node_type

MENTION_COLUMNS = [
    "description_id", "user_id", "item_id", "kind", "start", "end", "surface",
    "entity_id", "entity_type", "entity_name", "method", "score",
]
# Entities whose names are concepts a free text can paraphrase: the embedding pass links only these.
CONCEPT_TYPES = frozenset({"tag", "genre", "feature", "category", "keyword", "mood", "style"})
# Ambiguous surfaces ('Drama' the genre and the tag) list every entity, most specific type first.
_TYPE_ORDER = {t: n for n, t in enumerate(
    ["item", "person", "artist", "director", "actor", "brand", "genre", "feature", "category",
     "tag", "country", "region", "location"])}

_EAST_ASIAN_CHARS = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ebef"
_EAST_ASIAN = re.compile(f"[{_EAST_ASIAN_CHARS}]")
_YEAR_SUFFIX = re.compile(r"\s*\(\d{4}\)\s*$")  # MovieLens titles: 'Toy Story (1995)'
# Unrelated Chinese words: an English-only encoder (all-MiniLM-L6-v2) maps such short CJK texts
# to near-identical [UNK]-dominated vectors (cosine 0.5-1.0); one that reads Chinese keeps them apart.
_CJK_PROBE = (("甜宠", "降噪"), ("续航", "古装"), ("空气炸锅", "悬疑电影"), ("电池续航时间很长", "古装悬疑电视剧"))
_CJK_PROBE_MAX = 0.45
_CHUNK_SPLIT = re.compile(r"[,.;:!?()\[\]{}\"“”‘’'`/\\|\n\r\t，。；：！？、（）【】《》「」…~～]+")


@dataclass(frozen=True)
class Mention:
    start: int  # character offsets into the original text, end exclusive
    end: int
    surface: str
    entity_id: str
    method: str  # 'exact' | 'alias' | 'embedding'
    score: float


def _is_east_asian(ch: str) -> bool:
    return bool(_EAST_ASIAN.match(ch))


def normalize_with_offsets(text: str) -> tuple[str, list[int]]:
    """Normalised text plus, for each of its characters, the index of the original character.

    Same folding as :func:`reclm_dagster.kg.build.normalize_name` (done per character so spans
    map back), and spaces between two CJK characters are dropped: '科幻 电影' == '科幻电影'.
    """
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(str(text)):
        folded = unicodedata.normalize("NFKC", ch).casefold()
        for c in folded:
            if not _is_east_asian(c):
                parts = [d for d in unicodedata.normalize("NFKD", c) if unicodedata.category(d) != "Mn"]
            else:
                parts = [c]
            for d in parts:
                if d.isspace() or unicodedata.category(d).startswith("P"):
                    d = " "
                if d == " " and (not chars or chars[-1] == " "):
                    continue
                chars.append(d)
                origin.append(i)
    while chars and chars[-1] == " ":
        chars.pop()
        origin.pop()
    # Drop a space that sits between two East Asian characters.
    keep = [
        not (c == " " and 0 < k < len(chars) - 1 and _is_east_asian(chars[k - 1]) and _is_east_asian(chars[k + 1]))
        for k, c in enumerate(chars)
    ]
    return "".join(c for c, kp in zip(chars, keep) if kp), [o for o, kp in zip(origin, keep) if kp]


_ASCII_PUNCT = {c: " " for c in range(128) if unicodedata.category(chr(c)).startswith("P")}
_SPACES = re.compile(r"\s+")


def normalize_surface(text: str) -> str:
    """The normalised text alone (same result as :func:`normalize_with_offsets`, faster on ASCII)."""
    text = str(text)
    if text.isascii():
        return _SPACES.sub(" ", text.lower().translate(_ASCII_PUNCT)).strip()
    return normalize_with_offsets(text)[0]


# a unit: one CJK character, or a run of other non-space characters
_UNIT = re.compile(f"[{_EAST_ASIAN_CHARS}]|[^ {_EAST_ASIAN_CHARS}]+")


def _units(norm: str) -> list[tuple[int, int]]:
    """(start, end) of each unit: a run of non-space, non-CJK characters, or one CJK character."""
    return [m.span() for m in _UNIT.finditer(norm)]


def _stopwords() -> frozenset[str]:
    try:
        from reclm_dagster.text.normalize import chinese_stopwords, english_stopwords

        return frozenset(english_stopwords()) | frozenset(chinese_stopwords())
    except Exception:  # pragma: no cover - the text package is always there in reclm
        return frozenset()


def _linkable_key(key: str, stop: frozenset[str]) -> bool:
    if len(key) < 2 or key.isdigit() or key in stop:
        return False
    return True


class EntityLinker:
    """Links entity mentions in texts; build once per graph, reuse for every text.

    ``entities`` is a ``kg_entities`` table (entity_id, entity_type, name, aliases).
    Users are never linked; items only by titles of two or more words (or two or more CJK
    characters), without MovieLens' '(1995)' suffix, so 'Up' or 'Her' do not fire everywhere.
    """

    def __init__(
        self,
        entities: pd.DataFrame,
        encoder=None,
        threshold: float = 0.65,
        exclude_types: Iterable[str] = ("user",),
        embedding_types: Iterable[str] = CONCEPT_TYPES,
        max_chunk_units: int = 6,
        max_key_units: int = 10,
    ):
        self.encoder = encoder
        self.threshold = float(threshold)
        self.max_chunk_units = int(max_chunk_units)
        exclude = set(exclude_types)
        stop = self._stop = _stopwords()
        self.name: dict[str, str] = {}
        self.etype: dict[str, str] = {}
        lookup: dict[str, dict[str, str]] = {}  # key -> {entity_id: 'exact' | 'alias'}
        key_units: dict[str, int] = {}  # key -> its number of units
        ents = entities[~entities["entity_type"].astype(str).isin(exclude)]
        aliases = ents["aliases"] if "aliases" in ents else pd.Series("", index=ents.index)
        for eid, etype, name, alias in zip(ents["entity_id"], ents["entity_type"].astype(str), ents["name"], aliases):
            eid = str(eid)
            self.name[eid] = str(name)
            self.etype[eid] = etype
            spellings = [(str(name), "exact")]
            if isinstance(alias, str) and alias:
                spellings += [(a, "alias") for a in alias.split(ALIAS_SEP) if a.strip()]
            for spelling, method in spellings:
                if etype == "item":
                    spelling = _YEAR_SUFFIX.sub("", spelling)
                key = normalize_surface(spelling)
                if not _linkable_key(key, stop):
                    continue
                n_units = key_units.get(key)
                if n_units is None:
                    n_units = key_units[key] = len(_units(key))
                if n_units > max_key_units or (etype == "item" and n_units < 2):
                    continue
                slot = lookup.setdefault(key, {})
                if slot.get(eid) != "exact":
                    slot[eid] = method
        self._lookup = {
            key: sorted(ids.items(), key=lambda kv: (_TYPE_ORDER.get(self.etype[kv[0]], 99), kv[0]))
            for key, ids in lookup.items()
        }
        self._max_units = max((key_units[k] for k in self._lookup), default=0)
        self._concept_ids: list[str] = [e for e in self.name if self.etype[e] in set(embedding_types)]
        self._concept_vectors: np.ndarray | None = None
        self._reads_cjk: bool | None = None

    # ------------------------------------------------------------------ stored dictionary
    def key_table(self) -> pd.DataFrame:
        """The dictionary as rows (key, units, entity_id, method, entity_type, name), in match order:
        ``from_key_table`` rebuilds the dictionary pass without normalising every entity again."""
        rows = [(key, eid, method) for key, hits in self._lookup.items() for eid, method in hits]
        keys = pd.DataFrame(rows, columns=["key", "entity_id", "method"])
        keys.insert(1, "units", np.array([len(_units(k)) for k in keys["key"]], np.int32))
        keys["entity_type"] = keys["entity_id"].map(self.etype)
        keys["name"] = keys["entity_id"].map(self.name)
        keys["position"] = np.arange(len(keys), dtype=np.int64)  # match order survives any storage
        return keys

    @classmethod
    def from_key_table(cls, keys: pd.DataFrame, threshold: float = 0.65, max_chunk_units: int = 6) -> "EntityLinker":
        """A dictionary-only linker (no encoder: no embedding pass) from ``key_table``'s rows —
        what a request needs, in tens of milliseconds instead of rebuilding the index."""
        self = cls.__new__(cls)
        self.encoder, self.threshold, self.max_chunk_units = None, float(threshold), int(max_chunk_units)
        self._stop = frozenset()  # read by the embedding pass only, which needs an encoder
        keys = keys.sort_values("position", kind="stable") if "position" in keys else keys
        ids = keys["entity_id"].astype(str).to_numpy()
        self.name = dict(zip(ids, keys["name"].astype(str)))
        self.etype = dict(zip(ids, keys["entity_type"].astype(str)))
        lookup: dict[str, list[tuple[str, str]]] = {}
        for key, eid, method in zip(keys["key"].astype(str), ids, keys["method"].astype(str)):
            lookup.setdefault(key, []).append((eid, method))
        self._lookup = lookup
        self._max_units = int(keys["units"].max()) if len(keys) else 0
        self._concept_ids, self._concept_vectors, self._reads_cjk = [], None, None
        return self

    # ------------------------------------------------------------------ dictionary pass
    def _dictionary(self, text: str) -> list[Mention]:
        norm, origin = normalize_with_offsets(text)
        units = _units(norm)
        out: list[Mention] = []
        i = 0
        while i < len(units):
            matched = False
            for j in range(min(len(units), i + self._max_units), i, -1):
                key = norm[units[i][0]:units[j - 1][1]]
                hits = self._lookup.get(key)
                if hits:
                    start, end = origin[units[i][0]], origin[units[j - 1][1] - 1] + 1
                    surface = text[start:end]
                    out.extend(Mention(start, end, surface, eid, method, 1.0) for eid, method in hits)
                    i, matched = j, True
                    break
            if not matched:
                i += 1
        return out

    # ------------------------------------------------------------------ embedding pass
    def _chunks(self, text: str, taken: Sequence[tuple[int, int]]) -> list[tuple[int, int, str]]:
        """Unmatched pieces of ``text`` between punctuation and dictionary matches."""
        mask = list(text)
        for s, e in taken:
            mask[s:e] = ["\n"] * (e - s)
        masked = "".join(mask)
        out = []
        pos = 0
        for piece in _CHUNK_SPLIT.split(masked):
            start = masked.find(piece, pos) if piece else pos
            pos = start + len(piece)
            stripped = piece.strip()
            if not stripped:
                continue
            s = start + (len(piece) - len(piece.lstrip()))
            key = normalize_surface(stripped)
            n_units = len(_units(key))
            if n_units == 0 or n_units > self.max_chunk_units or not _linkable_key(key, self._stop):
                continue
            if all(w in self._stop for w in key.split()):
                continue
            out.append((s, s + len(stripped), stripped))
        return out

    def _concepts(self) -> np.ndarray:
        if self._concept_vectors is None:
            if self._concept_ids and any(_EAST_ASIAN.search(self.name[e]) for e in self._concept_ids) \
                    and not self.reads_east_asian():
                self._concept_ids = [e for e in self._concept_ids if not _EAST_ASIAN.search(self.name[e])]
            names = [self.name[e] for e in self._concept_ids]
            vecs = np.asarray(self.encoder.encode(names), dtype=np.float32) if names else np.zeros((0, 1), np.float32)
            self._concept_vectors = vecs
        return self._concept_vectors

    def reads_east_asian(self) -> bool:
        """Whether the encoder tells CJK texts apart (English-only models map them all to [UNK])."""
        if self._reads_cjk is None:
            texts = [t for pair in _CJK_PROBE for t in pair]
            probe = np.asarray(self.encoder.encode(texts), dtype=np.float32)
            sims = [float(probe[2 * n] @ probe[2 * n + 1]) for n in range(len(_CJK_PROBE))]
            self._reads_cjk = max(sims) < _CJK_PROBE_MAX
        return self._reads_cjk

    def _embedding_pass(self, texts: Sequence[str], found: list[list[Mention]]) -> None:
        if self.encoder is None or not self._concept_ids:
            return
        chunks = [self._chunks(t, [(m.start, m.end) for m in f]) for t, f in zip(texts, found)]
        if any(_EAST_ASIAN.search(c[2]) for cs in chunks for c in cs) and not self.reads_east_asian():
            chunks = [[c for c in cs if not _EAST_ASIAN.search(c[2])] for cs in chunks]
        distinct = list(dict.fromkeys(c[2] for cs in chunks for c in cs))
        if not distinct:
            return
        concepts = self._concepts()
        if not len(self._concept_ids):
            return
        vecs = np.asarray(self.encoder.encode(distinct), dtype=np.float32)
        best: dict[str, tuple[str, float]] = {}
        for start in range(0, len(distinct), 1024):
            sims = vecs[start:start + 1024] @ concepts.T
            arg = sims.argmax(axis=1)
            for r, a in enumerate(arg):
                score = float(sims[r, a])
                if score >= self.threshold:
                    best[distinct[start + r]] = (self._concept_ids[a], score)
        for f, cs in zip(found, chunks):
            for s, e, surface in cs:
                if surface in best:
                    eid, score = best[surface]
                    f.append(Mention(s, e, surface, eid, "embedding", round(score, 4)))
            f.sort(key=lambda m: (m.start, m.end))

    # ------------------------------------------------------------------ public
    def link(self, text: str) -> list[Mention]:
        return self.link_texts([text])[0]

    def link_texts(self, texts: Sequence[str]) -> list[list[Mention]]:
        """Mentions of each text (each distinct text is linked once)."""
        texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
        distinct = list(dict.fromkeys(texts))
        found = [self._dictionary(t) for t in distinct]
        self._embedding_pass(distinct, found)
        by_text = dict(zip(distinct, found))
        return [by_text[t] for t in texts]

    def mention_rows(self, mentions: Iterable[Mention]) -> list[dict]:
        return [
            {**asdict(m), "entity_type": self.etype.get(m.entity_id, node_type(m.entity_id)),
             "entity_name": self.name.get(m.entity_id, m.entity_id)}
            for m in mentions
        ]


def link_descriptions(descriptions: pd.DataFrame, linker: EntityLinker) -> pd.DataFrame:
    """One row per mention in ``descriptions`` (description_id, user_id, item_id, kind, text)."""
    if descriptions.empty:
        return pd.DataFrame(columns=MENTION_COLUMNS)
    texts = descriptions["text"].fillna("").astype(str)
    distinct = pd.unique(texts)
    linked = linker.link_texts(list(distinct))
    rows = []
    for text, mentions in zip(distinct, linked):
        for row in linker.mention_rows(mentions):
            rows.append({"text": text, **row})
    per_text = pd.DataFrame(rows, columns=["text", "start", "end", "surface", "entity_id", "method", "score",
                                           "entity_type", "entity_name"])
    base = descriptions[["description_id", "user_id", "item_id", "kind"]].assign(text=texts.to_numpy())
    out = base.merge(per_text, on="text", how="inner").drop(columns="text")
    out["start"] = out["start"].astype("int64")
    out["end"] = out["end"].astype("int64")
    out["score"] = out["score"].astype(float)
    return out[MENTION_COLUMNS].reset_index(drop=True)


def link_request(
    text: str,
    entities: pd.DataFrame | EntityLinker,
    encoder=None,
    threshold: float = 0.65,
) -> list[dict]:
    """Mentions in one free-text request: [{start, end, surface, entity_id, entity_type, entity_name, method, score}].

    ``entities`` is the stored ``kg_entities`` table or a linker already built from it
    (``reclm recommend --query`` builds it once per call; a server should keep the linker).
    """
    linker = entities if isinstance(entities, EntityLinker) else EntityLinker(entities, encoder=encoder, threshold=threshold)
    return linker.mention_rows(linker.link(text))


def user_mentions(mentions: pd.DataFrame) -> dict[str, dict[str, tuple[str, str]]]:
    """user -> {entity_id: (surface as first written, description kind)} from a mentions table."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    if mentions is None or mentions.empty:
        return out
    kinds = mentions["kind"] if "kind" in mentions else pd.Series("", index=mentions.index)
    for user, eid, surface, kind in zip(mentions["user_id"].astype(str), mentions["entity_id"], mentions["surface"], kinds):
        out.setdefault(user, {}).setdefault(str(eid), (str(surface), str(kind)))
    return out


def mention_summary(mentions: pd.DataFrame, descriptions: pd.DataFrame) -> dict[str, object]:
    """Counts for an asset's metadata: mentions per method, share of descriptions with >= 1 link."""
    n_desc = int(len(descriptions))
    linked = int(mentions["description_id"].nunique()) if len(mentions) else 0
    per_method = mentions["method"].value_counts().to_dict() if len(mentions) else {}
    per_type = mentions["entity_type"].value_counts().to_dict() if len(mentions) else {}
    return {
        "n_mentions": int(len(mentions)),
        "n_linked_entities": int(mentions["entity_id"].nunique()) if len(mentions) else 0,
        "n_descriptions": n_desc,
        "share_descriptions_linked": round(linked / n_desc, 4) if n_desc else 0.0,
        **{f"mentions/method/{k}": int(v) for k, v in per_method.items()},
        **{f"mentions/type/{k}": int(v) for k, v in per_type.items()},
    }


__all__ = [
    "CONCEPT_TYPES", "EntityLinker", "MENTION_COLUMNS", "Mention", "link_descriptions",
    "link_request", "mention_summary", "normalize_surface", "normalize_with_offsets", "user_mentions",
]
