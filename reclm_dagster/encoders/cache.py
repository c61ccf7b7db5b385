"""A DuckDB cache of text embeddings shared by every dataset: encode each text once per encoder.

Table ``main.embedding_cache(encoder_version, text_hash, embedding)`` keyed by the
encoder version (name + weights hash, see ``identity.py``) and sha256 of the text, so a
new checkpoint never reuses vectors of an old one, and the same tag or title met in
several datasets (or in tomorrow's run after a few new reviews) is encoded once.

``embedding`` is a variable-length ``FLOAT[]`` rather than ``FLOAT[dim]``: one table
serves encoders of different widths (384 for MiniLM, 768 for a base model), which a
fixed-size array column could not hold. Each vector's length is checked on read.

Three steps, so callers can keep DuckDB unlocked while the model runs (``lookup`` →
encode ``CacheLookup.missing_texts`` → ``store``); ``cached_encode`` does all three on one
connection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from reclm_dagster.encoders.clean import clean_texts

TABLE = "main.embedding_cache"


def text_hash(text: str) -> str:
    """sha256 hex of the text's UTF-8 bytes (the cache key, with the encoder version)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parquet(con: duckdb.DuckDBPyConnection) -> bool:
    """True on the distributed deployment's Parquet storage, where the cache is an append-only
    Parquet table (one part file per store: workers never overwrite each other's vectors)."""
    from reclm_dagster import parquet_store

    return parquet_store.root_of(con) is not None


def _exists(con: duckdb.DuckDBPyConnection) -> bool:
    schema, name = TABLE.split(".")
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, name]).fetchall()
    return bool(rows[0][0])


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    if _parquet(con):
        return  # the view appears with the first part file (``store``)
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                encoder_version VARCHAR NOT NULL,
                text_hash VARCHAR NOT NULL,
                embedding FLOAT[] NOT NULL,
                PRIMARY KEY (encoder_version, text_hash))"""
    )


@dataclass
class CacheLookup:
    """Result of a lookup: the cached rows filled in, and which positions still need the model."""

    vectors: np.ndarray  # (n, dim) float32, zero rows where missing
    hashes: list[str]
    missing: np.ndarray  # positions (into the input) with no cached vector
    texts: list[str] = field(repr=False, default_factory=list)

    @property
    def hits(self) -> int:
        return len(self.hashes) - len(self.missing)

    @property
    def misses(self) -> int:
        return len(self.missing)

    @property
    def missing_texts(self) -> list[str]:
        return [self.texts[i] for i in self.missing]

    def fill(self, encoded: np.ndarray) -> np.ndarray:
        """Put freshly encoded rows (in ``missing_texts`` order) into place; returns all vectors."""
        if len(encoded) != len(self.missing):
            raise ValueError(f"expected {len(self.missing)} encoded rows, got {len(encoded)}")
        if len(self.missing):
            self.vectors[self.missing] = encoded
        return self.vectors




def lookup(con: duckdb.DuckDBPyConnection, encoder_version: str, dim: int, texts) -> CacheLookup:
    """Cached vectors for ``texts`` (any order, repeats allowed) under one encoder version."""
    texts = clean_texts(texts)
    hashes = [text_hash(t) for t in texts]
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return CacheLookup(vectors, hashes, np.zeros(0, dtype=np.int64), texts)
    ensure_table(con)
    if _parquet(con) and not _exists(con):
        return CacheLookup(vectors, hashes, np.arange(len(texts), dtype=np.int64), texts)
    query = pd.DataFrame({"pos": np.arange(len(texts), dtype=np.int64), "text_hash": hashes})
    con.register("_reclm_cache_query", query)
    try:
        found = con.sql(
            f"""SELECT q.pos, c.embedding FROM _reclm_cache_query q
                JOIN {TABLE} c ON c.text_hash = q.text_hash AND c.encoder_version = $version""",
            params={"version": encoder_version},
        ).to_arrow_table()
    finally:
        con.unregister("_reclm_cache_query")
    have = np.zeros(len(texts), dtype=bool)
    if found.num_rows:
        pos = found.column("pos").to_numpy()
        emb = found.column("embedding").combine_chunks()
        lengths = emb.value_lengths().to_numpy(zero_copy_only=False)
        if (lengths != dim).any():
            raise ValueError(f"embedding_cache holds vectors of length {set(lengths.tolist())} for {encoder_version}, expected {dim}")
        vectors[pos] = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(pos), dim)
        have[pos] = True
    return CacheLookup(vectors, hashes, np.flatnonzero(~have), texts)


def store(con: duckdb.DuckDBPyConnection, encoder_version: str, texts, vectors: np.ndarray) -> int:
    """Insert vectors for texts (first one wins on a repeated text); returns rows inserted."""
    texts = clean_texts(texts)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not texts:
        return 0
    ensure_table(con)
    hashes = pd.Series([text_hash(t) for t in texts])
    keep = ~hashes.duplicated().to_numpy()  # a PRIMARY KEY rejects repeats inside one INSERT
    n, dim = int(keep.sum()), vectors.shape[1]
    flat = pa.array(vectors[keep].reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    rows = pa.table({
        "encoder_version": pa.array([encoder_version] * n, type=pa.string()),
        "text_hash": pa.array(hashes[keep].tolist(), type=pa.string()),
        "embedding": pa.ListArray.from_arrays(offsets, flat),
    })
    if _parquet(con):
        return _append_parquet(con, rows)
    before = _count(con)
    con.register("_reclm_cache_rows", rows)
    try:
        # ON CONFLICT: another run may have cached the same text since our lookup.
        con.execute(f"INSERT INTO {TABLE} SELECT * FROM _reclm_cache_rows ON CONFLICT DO NOTHING")
    finally:
        con.unregister("_reclm_cache_rows")
    return _count(con) - before


def _append_parquet(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> int:
    """The rows not cached yet, as one new part file (another worker may have cached some since
    our lookup; a repeat across part files would be harmless: equal vectors)."""
    from reclm_dagster import parquet_store

    if _exists(con):
        con.register("_reclm_cache_rows", rows)
        try:
            rows = con.sql(f"""SELECT r.* FROM _reclm_cache_rows r ANTI JOIN {TABLE} c
                               ON c.encoder_version = r.encoder_version AND c.text_hash = r.text_hash""").to_arrow_table()
        finally:
            con.unregister("_reclm_cache_rows")
    if rows.num_rows:
        parquet_store.append(con, *TABLE.split("."), rows)
    return rows.num_rows


def _count(con: duckdb.DuckDBPyConnection) -> int:
    # fetchall, not fetchone: DuckDB 2 refuses further work while a result is unfinished.
    return int(con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0])


def cached_encode(con: duckdb.DuckDBPyConnection, encoder, texts, progress: bool = False,
                  desc: str = "encoding", stats: dict | None = None) -> np.ndarray:
    """Vectors for ``texts`` in input order; only texts not cached for ``encoder.version`` are encoded.

    ``encoder`` needs ``.version``, ``.dim`` and ``.encode(texts, progress=, desc=)``.
    ``stats``, when given, receives ``hits`` and ``misses`` (distinct texts).
    """
    texts = clean_texts(texts)
    if not texts:
        if stats is not None:
            stats.update(hits=0, misses=0)
        return np.zeros((0, encoder.dim), dtype=np.float32)
    # Each distinct text is looked up and encoded once, however often it repeats.
    unique, inverse = np.unique(np.asarray(texts, dtype=str), return_inverse=True)
    found = lookup(con, encoder.version, encoder.dim, unique.tolist())
    if found.misses:
        new = encoder.encode(found.missing_texts, progress=progress, desc=desc)
        found.fill(new)
        store(con, encoder.version, found.missing_texts, new)
    if stats is not None:
        stats.update(hits=found.hits, misses=found.misses)
    return found.vectors[inverse.reshape(-1)]


class CachedEncoder:
    """An encoder whose vectors go through ``main.embedding_cache`` on ``con`` (the one cache
    class: the query evaluation, the entity linker and the CLI all wrap their encoder with it).

    Satisfies ``protocol.Encoder``; a ``query_encoder`` of the wrapped encoder is wrapped too
    (it has its own version, so its vectors never mix with the documents').
    """

    def __init__(self, encoder, con: duckdb.DuckDBPyConnection):
        self.inner = encoder
        self.con = con
        qe = getattr(encoder, "query_encoder", None)
        self.query_encoder = CachedEncoder(qe, con) if qe is not None and qe is not encoder else None

    name = property(lambda self: self.inner.name)
    version = property(lambda self: self.inner.version)
    dim = property(lambda self: int(self.inner.dim))

    def encode(self, texts, progress: bool = False, desc: str = "encoding") -> np.ndarray:
        return cached_encode(self.con, self.inner, texts, progress=progress, desc=desc)

    def tokenize_stats(self, texts) -> pd.DataFrame:
        return self.inner.tokenize_stats(texts)
