"""Answers to `reclm recommend`: stored lists for a user, and free-text requests scored on the fly."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cached_property

import duckdb
import numpy as np
import pandas as pd

from reclm_dagster import settings, store
from reclm_dagster.encoders.clean import encoder_reads
from reclm_dagster.kg.build import item_node
from reclm_dagster.kg.linking import EntityLinker, link_request
from reclm_dagster.models.fusion import linear_fusion
from reclm_dagster.models.matrix import to_matrix
from reclm_dagster.models.query import QueryScorer
from reclm_dagster.models.query import fuse as fuse_query
from reclm_dagster.models.ranking import topk
from reclm_dagster.models.signals import QUERY_SIGNALS, SIGNALS
from reclm_dagster.text.normalize import segment
from reclm_dagster.training import DatasetTables, chosen_hybrid_config, item_text_index


class ReclmError(Exception):
    """A user-facing error: one line that says what to do."""


def open_store(dataset: str, read_only: bool = True) -> tuple[duckdb.DuckDBPyConnection, str]:
    path = settings.duckdb_path()
    schema = settings.schema_name(dataset)
    if not path.exists():
        raise ReclmError(f"no reclm store at {path}: run `reclm run --dataset {dataset}` first")
    con = duckdb.connect(str(path), read_only=read_only)
    if not store.table_exists(con, schema, "recommendations"):
        con.close()
        raise ReclmError(f"dataset '{dataset}' has not been materialized in {path}: run `reclm run --dataset {dataset}` first")
    return con, schema


def warn_if_stale(dataset: str, why: dict | None) -> None:
    """Old lists beat no answer (README, "Failed or killed runs"): answer, and say so in one
    line on stderr, so --json output stays clean."""
    if why is not None:
        print(stale_message(dataset, why), file=sys.stderr)


def stale_lists(con: duckdb.DuckDBPyConnection, schema: str) -> dict | None:
    """None when the stored lists were built from the raw tables now stored (or the store predates
    the markers); else the run that built the lists and the one that replaced the raw tables since."""
    from reclm_dagster.datasets import INGEST_INFO_TABLE

    if not store.table_exists(con, schema, INGEST_INFO_TABLE):
        return None
    raw = store.read_df(con, schema, INGEST_INFO_TABLE)
    if "fingerprint" not in raw.columns or raw.empty:
        return None  # ingested before reclm recorded fingerprints: nothing to compare with
    built = store.read_df(con, schema, store.LISTS_INFO_TABLE) if store.table_exists(con, schema, store.LISTS_INFO_TABLE) else None
    built_row = built.iloc[0] if built is not None and len(built) else None
    raw_fp = raw["fingerprint"].iloc[0]
    if built_row is not None and pd.notna(raw_fp) and pd.notna(built_row["fingerprint"]) and raw_fp == built_row["fingerprint"]:
        return None
    return {"lists_run": None if built_row is None else str(built_row["run_id"]), "raw_run": str(raw["run_id"].iloc[0])}


def stale_message(dataset: str, why: dict) -> str:
    built = f"built by run {why['lists_run'][:8]}" if why["lists_run"] else "built before reclm recorded their source"
    if why["raw_run"].startswith(store.INBOX_RUN_PREFIX):  # an inbox file was appended; its run has not rebuilt them yet
        return (f"reclm: warning: the stored lists of '{dataset}' are stale ({built}): inbox file "
                f"{why['raw_run'][len(store.INBOX_RUN_PREFIX):]!r} was appended since and no run has rebuilt them yet; answering "
                f"from the old lists — the inbox sensor's run (or `reclm run --dataset {dataset}`) rebuilds them")
    return (f"reclm: warning: the stored lists of '{dataset}' are stale ({built}): run {why['raw_run'][:8]} replaced the raw "
            f"tables {_run_outcome(why['raw_run'])}; answering from the old lists — `reclm run --dataset {dataset}` rebuilds them")


def _run_outcome(run_id: str) -> str:
    """What became of the run that replaced the raw tables, from the Dagster instance ('since' when unknown)."""
    home = settings.dagster_home()
    if not (home / "dagster.yaml").exists():
        return "since"
    try:
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:
            record = instance.get_run_record_by_id(run_id)
            if record is None:
                return "since"
            status = record.dagster_run.status
            if status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED):
                return "and is still running"
            if status != dg.DagsterRunStatus.FAILURE:
                return "but did not rebuild the lists"
            steps = [e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
                     if e.dagster_event is not None]
            return f"and failed at step {', '.join(dict.fromkeys(steps))}" if steps else "and failed before finishing"
    except Exception:  # a warning must never break an answer
        return "since"


# The per-signal scores an answer shows: every registry signal stored with the list (cf, text,
# lexical, kg), and for a request its fused query score and the user's own profile score.
SCORES = (*SIGNALS, "query", "user")


def _rows(df: pd.DataFrame) -> list[dict]:
    out = []
    for r in df.itertuples(index=False):
        scores = {s: float(getattr(r, f"score_{s}")) for s in SCORES if hasattr(r, f"score_{s}") and pd.notna(getattr(r, f"score_{s}"))}
        out.append(
            {
                "rank": int(r.rank),
                "item_id": str(r.item_id),
                "title": str(r.title),
                "domain": str(r.domain),
                "score": float(r.score),
                "scores": scores,
                "facts": json.loads(r.facts) if isinstance(r.facts, str) else {},
                "explanation": str(r.explanation),
                **({"linked": r.linked} if hasattr(r, "linked") else {}),
            }
        )
    return out


@dataclass
class StoredLists:
    """Users' stored lists, read once: the CLI reads one user's, `reclm serve` everyone's (and keeps
    answering from them while a run holds the store)."""

    dataset: str
    lists: pd.DataFrame
    n_users: int
    example: str | None
    stale: dict | None

    @classmethod
    def load(cls, dataset: str, user_id: str | None = None) -> "StoredLists":
        con, schema = open_store(dataset)
        try:
            where, args = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
            df = con.execute(f'SELECT * FROM "{schema}".recommendations {where}', args).df()
            n, example = con.execute(f'SELECT count(DISTINCT user_id), min(user_id) FROM "{schema}".recommendations').fetchone()
            stale = stale_lists(con, schema)
        finally:
            con.close()
        return cls(dataset, df, int(n), example, stale)

    @cached_property
    def by_user(self) -> dict[str, pd.DataFrame]:
        """Each user's list, ranked: a server looks one up instead of filtering every row per request."""
        return {str(u): g.sort_values("rank") for u, g in self.lists.groupby("user_id", sort=False)}

    def answer(self, user_id: str, k: int) -> list[dict]:
        mine = self.by_user.get(str(user_id))
        df = mine[mine["rank"] <= int(k)] if mine is not None else pd.DataFrame()
        if df.empty:
            raise ReclmError(f"unknown user '{user_id}' in dataset '{self.dataset}' ({self.n_users} users have lists, e.g. '{self.example}')")
        warn_if_stale(self.dataset, self.stale)
        return _rows(df)


def recommend_for_user(dataset: str, user_id: str, k: int) -> list[dict]:
    return StoredLists.load(dataset, user_id).answer(user_id, k)


def _user_profile_scores(tables: DatasetTables, user_id: str, candidates: pd.DataFrame, dataset: str):
    """The user's stored hybrid candidates as a 1 × items score row, and their consumed items.

    The stored candidates (``user_item_scores``) are the full hybrid's top items for the
    user; everything else sits just below the weakest of them. No model is refitted.
    """
    known = set(tables.interactions["user_id"].astype(str)) | set(tables.descriptions["user_id"].astype(str))
    if user_id not in known:
        raise ReclmError(f"unknown user '{user_id}' in dataset '{dataset}'")
    item_index = pd.Index(tables.items["item_id"].astype(str))
    scores = np.zeros((1, len(item_index)), np.float32)
    if len(candidates):
        pos = item_index.get_indexer(candidates["item_id"].astype(str))
        values = candidates["score"].to_numpy(np.float32)
        floor = float(values.min()) - (float(values.max() - values.min()) or 1.0)
        scores[:] = floor
        scores[0, pos[pos >= 0]] = values[pos >= 0]
    mine = tables.interactions[tables.interactions["user_id"].astype(str) == user_id]
    exclude, _ = to_matrix(mine, [user_id], item_index.to_numpy())
    return scores, exclude


@dataclass
class QueryIndex:
    """Everything a free-text request is scored against, built once: the items as the hybrid sees
    them (vectors + BM25, models/query.QueryScorer), the graph's item→entity links, the facts and
    the users' stored candidates. The CLI builds it per call; `reclm serve` once per store."""

    dataset: str
    encoder: object
    tables: DatasetTables
    cfg: dict
    entities: pd.DataFrame | None  # kg_entities, read only when no fresh stored entity index (entity_keys)
    item_entities: pd.DataFrame  # head (item node), tail (entity id)
    fact_map: dict[str, str]
    candidates: pd.DataFrame  # user_id, item_id, score
    scorer: QueryScorer
    stale: dict | None
    entity_keys: pd.DataFrame | None = None  # the linker's stored dictionary (query_index asset), when fresh

    @classmethod
    def load(cls, dataset: str, encoder, user_ids: list[str] | None = None) -> "QueryIndex":
        """``user_ids``: whose stored candidates to read (None: everyone's). The items' side comes
        from the stored ``query_items`` (the ``query_index`` asset) when it was built from the raw
        tables, setting and encoder now stored; otherwise it is built here, as the asset would."""
        cfg = settings.load_config()
        con, schema = open_store(dataset)
        try:
            config = chosen_hybrid_config(con, schema, cfg)
            fingerprint = query_items_fingerprint(con, schema, encoder.version, config)
            stored = read_query_items(con, schema, fingerprint)
            entity_keys = read_entity_keys(con, schema, entity_keys_fingerprint(con, schema, fingerprint))
            if stored is not None:
                tables = DatasetTables(items=store.read_df(con, schema, "items"),
                                       interactions=store.read_df(con, schema, "interactions", "user_id, item_id"),
                                       descriptions=store.read_df(con, schema, "descriptions", "DISTINCT user_id"),
                                       item_vectors=stored[0], item_tokens=stored[1], description_vectors=np.zeros((0, 0)),
                                       description_tokens=[], encoder_version=encoder.version)
            else:
                tables = DatasetTables.load(con, schema)
            facts = store.read_df(con, schema, "recommendations", "DISTINCT item_id, facts")
            entities = store.read_df(con, schema, "kg_entities") if entity_keys is None else None
            item_entities = con.execute(
                f"""SELECT head, tail FROM "{schema}".kg_triples WHERE head LIKE 'item:%' AND tail NOT LIKE 'item:%'""").df()
            where, args = ("", []) if user_ids is None else ("WHERE user_id IN (SELECT unnest(?::VARCHAR[]))", [list(user_ids)])
            candidates = con.execute(f'SELECT user_id, item_id, score FROM "{schema}".user_item_scores {where}', args).df()
            stale = stale_lists(con, schema)
        finally:
            con.close()
        if tables.encoder_version != encoder.version:
            raise ReclmError(
                f"dataset '{dataset}' was embedded with {tables.encoder_version}, not {encoder.version}: "
                f"pass the same --encoder, or re-run `reclm run --dataset {dataset} --encoder ...`"
            )
        if stored is not None:
            item_vectors, item_tokens = stored
        else:  # items as the hybrid sees them: catalogue text plus what users said about them
            item_vectors, item_tokens = item_text_index(tables, tables.items["item_id"].astype(str).to_numpy(), config)
        return cls(dataset, encoder, tables, cfg, entities, item_entities, dict(zip(facts["item_id"].astype(str), facts["facts"])),
                   candidates, QueryScorer.fit(item_vectors, item_tokens), stale, entity_keys)

    @cached_property
    def linker(self) -> EntityLinker:
        """The graph's entity index, once per request index: read from the stored dictionary when it is
        fresh (~0.05 s), else built from kg_entities (0.7 s on Last.fm's 29k entities)."""
        if self.entity_keys is not None:
            return EntityLinker.from_key_table(self.entity_keys)
        return EntityLinker(self.entities)

    def _named_entities(self, linked_ids: set[str], item_nodes: list[str]) -> dict[str, list[str]]:
        """item node -> the linked entities it has, for the listed items only (a tag such as 'piano'
        links thousands of artists: grouping them all cost a server 20 ms per request)."""
        if not linked_ids:
            return {}
        links = self.item_entities
        links = links[links["tail"].isin(linked_ids)]
        links = links[links["head"].isin(item_nodes)]
        return links.groupby("head", sort=False)["tail"].agg(list).to_dict() if len(links) else {}

    def answer(self, query: str, k: int, user_id: str | None = None) -> list[dict]:
        """Encode the request, match it to items by meaning (encoder) and words (BM25), and blend
        with the user's own hybrid profile when a user is given."""
        if not query or not query.strip():
            raise ReclmError("empty query: pass some words, e.g. --query \"a funny space adventure with robots\"")
        cfg, tables, scorer = self.cfg, self.tables, self.scorer
        linked = link_request(query, self.linker)  # exact / alias matches of KG entities, with spans
        linked_ids = {m["entity_id"] for m in linked}
        tokens = segment(query)
        readable, unknown_share = encoder_reads(self.encoder, query)
        # e5-style encoders embed requests with their own "query: " prefix; an unreadable request
        # (too many unknown tokens) gets text 0: words (jieba BM25) and named entities rank it alone
        signals = scorer.score([query], self.encoder, tokens=[tokens], readable=[readable])
        qw = {k_: float(v) for k_, v in cfg.get("query", {}).get("weights", {n: 1.0 for n in QUERY_SIGNALS}).items()}
        if not readable:
            qw["text"] = 0.0
        unread_note = "" if readable else f" (the encoder cannot read this request: {unknown_share:.0%} unknown tokens)"
        fused = fuse_query(signals, qw)
        exclude = None
        user_scores = None
        if user_id is not None:
            mine = self.candidates[self.candidates["user_id"].astype(str) == str(user_id)]
            user_scores, exclude = _user_profile_scores(tables, str(user_id), mine, self.dataset)
            fused = linear_fusion({"query": fused, "user": user_scores}, {"query": 1.0, "user": float(cfg.get("query", {}).get("user_weight", 0.5))}, norm="zscore")
        idx, vals = topk(fused, k, exclude=exclude)
        if user_id is not None:  # only the user's part is stored
            warn_if_stale(self.dataset, self.stale)
        items = tables.items.reset_index(drop=True)
        surface_of = {m["entity_id"]: m["surface"] for m in linked}
        named_in_request = self._named_entities(linked_ids, [item_node(items.at[int(i), "item_id"]) for i in idx[0] if i >= 0])
        rows = []
        for rank, (i, v) in enumerate(zip(idx[0], vals[0]), start=1):
            if i < 0:
                continue
            matched = scorer.bm25.matched_terms(tokens, int(i))
            named = named_in_request.get(item_node(items.at[int(i), "item_id"]), [])
            if named:
                why = "Has " + ", ".join(f"'{surface_of[e]}'" for e in named[:3]) + " that your request names"
            elif matched:
                why = "Matches " + ", ".join(f"'{w}'" for w in matched[:3]) + " in your request"
            elif readable:
                why = f"Close in meaning to your request (cosine {signals['text'][0, i]:.2f})"
            else:
                why = "No word of your request matched it"
            why += unread_note
            if user_scores is not None:
                why += "; fits your history"
            rows.append(
                {
                    "rank": rank,
                    "item_id": str(items.at[int(i), "item_id"]),
                    "title": str(items.at[int(i), "title"]),
                    "domain": str(items.at[int(i), "domain"]),
                    "score": float(v),
                    "score_text": float(signals["text"][0, i]),
                    "score_lexical": float(signals["lexical"][0, i]),
                    **({"score_user": float(user_scores[0, i])} if user_scores is not None else {}),
                    "facts": self.fact_map.get(str(items.at[int(i), "item_id"]), "{}"),
                    "explanation": why,
                    "linked": [{k_: m[k_] for k_ in ("surface", "start", "end", "entity_id", "entity_type")} for m in linked],
                }
            )
        return _rows(pd.DataFrame(rows)) if rows else []


QUERY_ITEMS_TABLE = "query_index"  # the query_index asset's table


def query_items_fingerprint(con, schema: str, encoder_version: str, config) -> str:
    """What the items' request side depends on: the raw tables, the encoder and the said-share."""
    return f"{store.tables_fingerprint(con, schema)}|{encoder_version}|said_share={config.said_share!r}"


def query_items_table(tables: DatasetTables, config, fingerprint: str):
    """The items as a request sees them (vector and tokens), stored so a request reads instead of rebuilding."""
    import pyarrow as pa

    ids = tables.items["item_id"].astype(str).to_numpy()
    vectors, tokens = item_text_index(tables, ids, config)
    table = store.embeddings_table(ids, ["item"] * len(ids), vectors, tables.encoder_version)
    table = table.append_column("tokens", pa.array([list(map(str, t)) for t in tokens], type=pa.list_(pa.string())))
    return table.append_column("fingerprint", pa.array([fingerprint] * len(ids), type=pa.string()))


QUERY_ENTITY_KEYS_TABLE = "query_entity_keys"  # the query_index asset's second table: the linker's dictionary
ENTITY_KEYS_VERSION = 1  # bump when kg/linking.py changes how keys are normalised or ordered


def entity_keys_fingerprint(con, schema: str, items_fingerprint: str) -> str:
    """What the stored dictionary depends on: the raw tables (kg_entities is built from them), the
    graph's size (a graph rebuilt since) and the linker's key format."""
    n = con.execute(f'SELECT count(*) FROM "{schema}".kg_entities').fetchone()[0] \
        if store.table_exists(con, schema, "kg_entities") else 0
    return f"{items_fingerprint}|entities={n}|keys_v{ENTITY_KEYS_VERSION}"


def entity_keys_table(entities: pd.DataFrame, fingerprint: str) -> pd.DataFrame:
    """The request linker's dictionary (``EntityLinker.key_table``) with the fingerprint it was built under."""
    return EntityLinker(entities).key_table().assign(fingerprint=fingerprint)


def _stored_under(con, schema: str, table: str, fingerprint: str) -> bool:
    """Whether ``table`` is stored and was built under ``fingerprint`` (its rows carry it)."""
    if not store.table_exists(con, schema, table):
        return False
    return con.execute(f'SELECT any_value(fingerprint) FROM "{schema}"."{table}"').fetchone()[0] == fingerprint


def read_entity_keys(con, schema: str, fingerprint: str) -> pd.DataFrame | None:
    """The stored dictionary, or None when absent or built from another graph."""
    if not _stored_under(con, schema, QUERY_ENTITY_KEYS_TABLE, fingerprint):
        return None
    return store.read_df(con, schema, QUERY_ENTITY_KEYS_TABLE, "key, units, entity_id, method, entity_type, name, position")


def read_query_items(con, schema: str, fingerprint: str):
    """``(item vectors, item tokens)`` aligned to the items, or None when absent or built from other data."""
    if not _stored_under(con, schema, QUERY_ITEMS_TABLE, fingerprint):
        return None
    ids, vectors = store.read_embeddings(con, schema, "item", name=QUERY_ITEMS_TABLE)
    tokens = store.read_df(con, schema, QUERY_ITEMS_TABLE, "id, tokens").set_index("id")["tokens"]
    items = store.read_df(con, schema, "items", "item_id")["item_id"].astype(str)
    pos = pd.Index(ids).get_indexer(items)
    if (pos < 0).any():
        return None
    return vectors[pos], [list(t) for t in tokens.reindex(items).to_numpy()]


def recommend_for_query(dataset: str, query: str, k: int, encoder, user_id: str | None = None) -> list[dict]:
    if not query or not query.strip():
        raise ReclmError("empty query: pass some words, e.g. --query \"a funny space adventure with robots\"")
    index = QueryIndex.load(dataset, encoder, [] if user_id is None else [str(user_id)])
    return index.answer(query, k, user_id)
