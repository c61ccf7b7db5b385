"""Query-retrieval evaluation: does a held-out free-text description retrieve its item?

Plain functions, no Dagster. The task (issue: "evaluate free-text requests"):

* **Queries.** Descriptions that name an item (MovieLens tags, Douban comments, ...) are split,
  seeded, into *test* queries, *validation* queries and the *remaining* descriptions.
  The unit of the split is the **(item, normalised text) pair**: every description row
  with that item and that text (several users may put "time travel" on the same film) goes to
  the same side, so a held-out text never reaches its own item's document through another
  user's identical row. One held-out pair is one query with exactly **one relevant item**
  (the textbook "each (query text, item) pair is a query" reading of the issue: "does the tag
  'time travel' that a user put on a held-out movie retrieve that movie?").
* **Filtered ranking.** The same text often describes several items ("funny" on 50 films).
  Ranking one of those films first is not a mistake, so — as in the *filtered* setting of
  link-prediction evaluation (Bordes et al., 2013) — the *other* items known to carry the same
  normalised text (in any description, held out or not) are removed from that query's ranking.
  Everything else is a full ranking over the whole catalogue; no sampled negatives.
  Ties are broken by one seeded random permutation of the catalogue (a model that scores
  9,000 items 0 gets no credit for where the target happens to sit in the item list).
* **Item side, without leakage.** An item is its catalogue document
  (:func:`reclm_dagster.text.documents.item_documents`: title, synopsis, catalogue facts; no
  user tags) plus its *remaining* descriptions. Held-out rows never appear there.
* **Models.** ``bm25`` on :func:`reclm_dagster.text.normalize.segment` tokens (jieba for Chinese,
  the regex word tokenizer for English, stop words dropped) on both sides, the item's tokens
  being its catalogue document's plus its remaining descriptions'; ``encoder``: cosine between
  the query embedding and the item embedding, the item embedding being the normalised mean of
  the embeddings of its catalogue document and of each remaining description (each part is
  encoded on its own, so nothing is cut by the encoder window and every text is cacheable);
  ``hybrid``: per-query z-score fusion ``w·z(encoder) + (1-w)·z(bm25)`` (or reciprocal-rank
  fusion), ``w`` chosen by MRR on the **validation** queries only and then applied to test.
* **Metrics.** Recall@10 (= HitRate@10 with one relevant item) and MRR over the full ranking,
  computed with :mod:`reclm_dagster.evaluation.metrics`.

The encoder is any object with ``.encode(texts) -> (n, dim)`` unit rows and ``.version``; if it
also has ``.query_encoder`` (an encoder-like object, e.g. e5's ``"query: "`` prefix) queries go
through that. Wrap it with :class:`reclm_dagster.encoders.cache.CachedEncoder` to keep vectors in a DuckDB
embedding cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation import metrics as M
from reclm_dagster.models.query import QueryScorer, unique_encode
from reclm_dagster.models.query import fuse as fuse_signals
from reclm_dagster.text.documents import item_documents
from reclm_dagster.text.normalize import normalize, segment

DEFAULT_WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


# ----- split ----------------------------------------------------------------------------------
@dataclass
class QuerySplit:
    """Held-out queries (one row per (item, normalised text) pair) and the descriptions left."""

    test: pd.DataFrame  # query_id, text, norm, item_id, n_rows, description_ids
    valid: pd.DataFrame
    remaining: pd.DataFrame  # descriptions rows that may build item text
    known_items: dict[str, frozenset[str]] = field(repr=False)  # norm text -> every item it describes

    @property
    def held_out_ids(self) -> set[str]:
        ids: set[str] = set()
        for frame in (self.test, self.valid):
            for group in frame["description_ids"]:
                ids.update(group)
        return ids


def split_queries(
    descriptions: pd.DataFrame,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.1,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    max_test: int | None = None,
    max_valid: int | None = None,
) -> QuerySplit:
    """Seeded split of the descriptions that name an item into test / validation queries and the rest.

    Fractions are of the distinct (item, normalised text) pairs. ``kinds`` restricts the queries
    to some description kinds (e.g. ``["tag"]``); descriptions of other kinds stay on the item side.
    ``max_test`` / ``max_valid`` cap the number of queries (the held-out pairs beyond the cap are
    dropped, not returned to the item side, so the item side does not depend on the cap).
    """
    if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1 and test_fraction + valid_fraction < 1):
        raise ValueError("need 0 < test_fraction, 0 <= valid_fraction, test + valid < 1")
    d = descriptions.copy()
    d["description_id"] = d["description_id"].astype(str)
    d["norm"] = d["text"].map(normalize)
    named = d["item_id"].notna() & (d["norm"] != "")
    d = d[named].copy()
    d["item_id"] = d["item_id"].astype(str)
    known = d.groupby("norm")["item_id"].agg(lambda s: frozenset(s)).to_dict()

    eligible = d if kinds is None else d[d["kind"].isin(list(kinds))]
    pairs = (
        eligible.groupby(["item_id", "norm"], sort=True)
        .agg(text=("text", "first"), n_rows=("description_id", "size"),
             description_ids=("description_id", lambda s: tuple(sorted(s))))
        .reset_index()
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_test = int(round(test_fraction * len(pairs)))
    n_valid = int(round(valid_fraction * len(pairs)))
    test = pairs.iloc[order[:n_test]]
    valid = pairs.iloc[order[n_test : n_test + n_valid]]
    held = {i for ids in pd.concat([test, valid])["description_ids"] for i in ids}
    remaining = d[~d["description_id"].isin(held)].drop(columns="norm")
    # Caps keep the first queries of the (already random) order, so a capped split is a prefix.
    if max_test is not None:
        test = test.iloc[:max_test]
    if max_valid is not None:
        valid = valid.iloc[:max_valid]

    def tidy(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
        out = frame[["text", "norm", "item_id", "n_rows", "description_ids"]].reset_index(drop=True)
        out.insert(0, "query_id", [f"{prefix}{i}" for i in range(len(out))])
        return out

    return QuerySplit(tidy(test, "t"), tidy(valid, "v"), remaining.reset_index(drop=True), known)


# ----- item side ------------------------------------------------------------------------------
@dataclass
class ItemCorpus:
    """What each item is made of: its catalogue document plus its remaining descriptions."""

    item_ids: np.ndarray  # (n_items,) str, the ranking's item order
    catalogue: list[str]  # catalogue document per item
    part_texts: list[str]  # catalogue docs first (one per item), then each remaining description
    part_item: np.ndarray  # (n_parts,) item index of each part

    @property
    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    def documents(self) -> list[str]:
        """One text per item: catalogue document then its descriptions (what BM25 indexes)."""
        texts: list[list[str]] = [[] for _ in self.item_ids]
        for text, i in zip(self.part_texts, self.part_item):
            texts[i].append(text)
        return ["\n".join(t) for t in texts]


def item_corpus(items: pd.DataFrame, facts: pd.DataFrame, remaining: pd.DataFrame) -> ItemCorpus:
    docs = item_documents(items, facts)
    item_ids = docs.index.to_numpy().astype(str)
    pos = {item: i for i, item in enumerate(item_ids)}
    rem = remaining[remaining["item_id"].astype(str).isin(pos)]
    part_texts = list(docs.to_numpy().astype(str)) + rem["text"].astype(str).tolist()
    part_item = np.concatenate([np.arange(len(item_ids)), rem["item_id"].astype(str).map(pos).to_numpy()])
    return ItemCorpus(item_ids, list(docs.to_numpy().astype(str)), part_texts, part_item.astype(np.int64))


# ----- scorers (models/query.py: the same scorer serves `reclm recommend --query`) ----------------
# The evaluation fuses in float64 and counts a row as constant below this std (its numbers since
# the first version); serving keeps linear_fusion's float32 defaults.
EVAL_DTYPE, EVAL_MIN_STD = np.float64, 1e-12


def item_tokens(corpus: ItemCorpus) -> list[list[str]]:
    """An item's tokens: the ``segment`` tokens of all its parts."""
    doc_tokens: list[list[str]] = [[] for _ in corpus.item_ids]
    for tokens, i in zip((segment(t) for t in corpus.part_texts), corpus.part_item):
        doc_tokens[i].extend(tokens)
    return doc_tokens


def bm25_scores(corpus: ItemCorpus, queries: Sequence[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """(n_queries, n_items) BM25 on segment() tokens; an item's tokens are all its parts' tokens."""
    return QueryScorer.fit(None, item_tokens(corpus), k1=k1, b=b).lexical(queries)


def item_vectors(corpus: ItemCorpus, encoder) -> np.ndarray:
    """(n_items, dim) unit rows: the normalised mean of the item's part embeddings."""
    parts = unique_encode(encoder, corpus.part_texts)
    n_items, n_parts = len(corpus.item_ids), len(corpus.part_texts)
    A = sp.csr_matrix((np.ones(n_parts, dtype=np.float32), (corpus.part_item, np.arange(n_parts))), shape=(n_items, n_parts))
    vec = np.asarray(A @ parts, dtype=np.float32)
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    return vec / np.maximum(norms, 1e-12)


def fuse(enc: np.ndarray, lex: np.ndarray, w: float, method: str, mask: np.ndarray, tie_order: np.ndarray) -> np.ndarray:
    """``w``·encoder + (1 − ``w``)·BM25, by ``models.query.fuse`` (z-scores over unmasked items, or RRF)."""
    return fuse_signals({"text": enc, "lexical": lex}, {"text": w, "lexical": 1.0 - w}, method, mask=mask,
                        tie_order=tie_order, dtype=EVAL_DTYPE, min_std=EVAL_MIN_STD)


# ----- ranking and metrics --------------------------------------------------------------------
def filter_mask(queries: pd.DataFrame, corpus: ItemCorpus, known_items: dict[str, frozenset[str]]) -> np.ndarray:
    """(n_queries, n_items) True where an item is removed: another item known to carry the query's text."""
    index = corpus.index
    mask = np.zeros((len(queries), len(corpus.item_ids)), dtype=bool)
    for r, (norm, target) in enumerate(zip(queries["norm"], queries["item_id"])):
        for item in known_items.get(norm, ()):
            j = index.get(item)
            if j is not None and item != target:
                mask[r, j] = True
    return mask


def rank_items(scores: np.ndarray, mask: np.ndarray, tie_order: np.ndarray) -> np.ndarray:
    """Full ranking (n_queries, n_items) of item indices, best first; masked items sink to the
    end as -1 (never a hit)."""
    s = np.where(mask, -np.inf, np.asarray(scores, dtype=np.float64))
    permuted = s[:, tie_order]
    ranked = tie_order[np.argsort(-permuted, axis=1, kind="stable")]
    masked = np.take_along_axis(mask, ranked, axis=1)
    return np.where(masked, -1, ranked)


def retrieval_metrics(ranked: np.ndarray, targets: np.ndarray, k: int = 10) -> dict[str, float]:
    """Recall@k and MRR over the full ranking, via reclm's textbook metrics (one relevant item per query)."""
    n_queries, n_items = ranked.shape
    relevant = sp.csr_matrix(
        (np.ones(n_queries, dtype=np.int8), (np.arange(n_queries), targets)), shape=(n_queries, max(n_items, 1))
    )
    return {
        f"recall@{k}": M.recall_at_k(ranked, relevant, k),
        "mrr": M.mrr_at_k(ranked, relevant, n_items),
    }


def _targets(queries: pd.DataFrame, corpus: ItemCorpus) -> np.ndarray:
    index = corpus.index
    return queries["item_id"].map(index).to_numpy()


def _evaluate(scores, queries, corpus, known, tie_order, k) -> dict[str, float]:
    mask = filter_mask(queries, corpus, known)
    return retrieval_metrics(rank_items(scores, mask, tie_order), _targets(queries, corpus), k)


def tune_fusion_weight(enc_valid: np.ndarray, lex_valid: np.ndarray, valid: pd.DataFrame, corpus: ItemCorpus,
                       known: dict[str, frozenset[str]], tie_order: np.ndarray, weights: Sequence[float] = DEFAULT_WEIGHTS,
                       method: str = "zscore", k: int = 10) -> tuple[float, pd.DataFrame]:
    """Best encoder weight by validation MRR (ties: the smaller weight); returns (w, curve)."""
    mask = filter_mask(valid, corpus, known)
    targets = _targets(valid, corpus)
    rows = []
    for w in weights:
        fused = fuse(enc_valid, lex_valid, float(w), method, mask, tie_order)
        m = retrieval_metrics(rank_items(fused, mask, tie_order), targets, k)
        rows.append({"w_encoder": float(w), **m})
    curve = pd.DataFrame(rows)
    best = float(curve.loc[curve["mrr"].idxmax(), "w_encoder"]) if len(curve) else 0.5
    return best, curve


@dataclass
class QueryRetrievalResult:
    table: pd.DataFrame  # task, model, metric, value, n_queries, encoder, params
    fusion_weight: dict[str, float]  # fusion method -> encoder weight chosen on validation
    validation_curve: dict[str, pd.DataFrame | None]  # fusion method -> validation metrics per weight
    n_items: int
    n_valid: int
    seconds: dict[str, float]


def evaluate_query_retrieval(
    task: str,
    items: pd.DataFrame,
    facts: pd.DataFrame,
    descriptions: pd.DataFrame,
    encoder=None,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.1,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    max_test: int | None = None,
    max_valid: int | None = None,
    k: int = 10,
    fusion: str | Sequence[str] = "zscore",
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    split: QuerySplit | None = None,
) -> QueryRetrievalResult:
    """Run the whole task; ``encoder=None`` evaluates BM25 only.

    ``fusion``: 'zscore' (model ``hybrid``), 'rrf' (model ``hybrid_rrf``) or both, each with its
    own weight tuned on the validation queries.

    The table holds test metrics only: rows (task, model, metric, value, n_queries, encoder, params).
    """
    import time

    if split is None:
        split = split_queries(descriptions, test_fraction, valid_fraction, seed, kinds, max_test, max_valid)
    corpus = item_corpus(items, facts, split.remaining)
    n_items = len(corpus.item_ids)
    # Targets outside the catalogue cannot be ranked: drop them (validated datasets have none).
    index = corpus.index
    test = split.test[split.test["item_id"].isin(index)].reset_index(drop=True)
    valid = split.valid[split.valid["item_id"].isin(index)].reset_index(drop=True)
    tie_order = np.random.default_rng(seed + 1).permutation(n_items)
    seconds: dict[str, float] = {}

    texts = test["text"].tolist() + valid["text"].tolist()
    t0 = time.perf_counter()
    scorer = QueryScorer.fit(None, item_tokens(corpus))
    lex_all = scorer.lexical(texts)
    seconds["bm25"] = time.perf_counter() - t0
    lex_test, lex_valid = lex_all[: len(test)], lex_all[len(test):]

    rows = []
    enc_version = getattr(encoder, "version", "") if encoder is not None else ""

    def add(model: str, m: dict[str, float], params: str = "", version: str = "") -> None:
        for metric, value in m.items():
            rows.append({"task": task, "model": model, "metric": metric, "value": float(value),
                         "n_queries": len(test), "encoder": version, "params": params})

    add("bm25", _evaluate(lex_test, test, corpus, split.known_items, tie_order, k))
    methods = [fusion] if isinstance(fusion, str) else list(fusion)
    w_best: dict[str, float] = {}
    curve: dict[str, pd.DataFrame | None] = {}
    if encoder is not None:
        t0 = time.perf_counter()
        scorer.item_vectors = item_vectors(corpus, encoder)
        enc_all = scorer.text(encoder, texts)
        seconds["encoder"] = time.perf_counter() - t0
        enc_test, enc_valid = enc_all[: len(test)], enc_all[len(test):]
        add("encoder", _evaluate(enc_test, test, corpus, split.known_items, tie_order, k), version=enc_version)
        mask = filter_mask(test, corpus, split.known_items)
        targets = _targets(test, corpus)
        for method in methods:
            if len(valid):
                w, c = tune_fusion_weight(enc_valid, lex_valid, valid, corpus, split.known_items,
                                          tie_order, weights, method, k)
            else:
                w, c = 0.5, None
            w_best[method], curve[method] = w, c
            fused = fuse(enc_test, lex_test, w, method, mask, tie_order)
            add("hybrid" if method == "zscore" else f"hybrid_{method}",
                retrieval_metrics(rank_items(fused, mask, tie_order), targets, k),
                params=f"fusion={method} w_encoder={w:g} (tuned on {len(valid)} validation queries)", version=enc_version)
    table = pd.DataFrame(rows, columns=["task", "model", "metric", "value", "n_queries", "encoder", "params"])
    return QueryRetrievalResult(table, w_best, curve, n_items, len(valid), seconds)


def evaluate_dataset(dataset, encoder=None, task: str | None = None, **kwargs) -> QueryRetrievalResult:
    """Same as :func:`evaluate_query_retrieval` on a loaded ``Dataset``; task defaults to
    ``'<dataset>/<kinds>'`` (e.g. ``ml-latest-small/tag``)."""
    kinds = kwargs.get("kinds")
    if task is None:
        present = sorted(set(dataset.descriptions["kind"])) if kinds is None else list(kinds)
        task = f"{dataset.name}/{'+'.join(present)}"
    return evaluate_query_retrieval(task, dataset.items, dataset.facts, dataset.descriptions, encoder, **kwargs)
