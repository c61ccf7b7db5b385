"""Steps 2 and 3 — tokens and embeddings of every item and every user description."""


import time

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from reclm_dagster import checks, store
from reclm_dagster.defs.common import dataset_partitions, schema_of, table_meta, profiled
from reclm_dagster.defs.resources import EncoderResource
from reclm_dagster.encoders.registry import ENCODER_CHOICE_TABLE, encoder_choice_table, load_encoder
from reclm_dagster.encoders import cache as embedding_cache
from reclm_dagster.text.documents import text_corpus
from reclm_dagster.text.normalize import detect_language, normalize, segment


# The resource is kept for the dataset's stored encoder choice (read, and written with the tokens).
@dg.asset(
    group_name="text",
    partitions_def=dataset_partitions,
    ins={"descriptions": dg.AssetIn(metadata={"columns": ["description_id", "text"]})},
    description="Normalised, segmented text (jieba for Chinese, stop words dropped) and the encoder tokenizer's ids.",
)
@profiled
def text_tokens(context: dg.AssetExecutionContext, items: pd.DataFrame, catalogue_facts: pd.DataFrame,
                descriptions: pd.DataFrame, duckdb: DuckDBResource, encoder: EncoderResource) -> dg.Output:
    schema = schema_of(context)
    docs = text_corpus(items, catalogue_facts, descriptions)
    # Many descriptions repeat (the same tag by many users): process each distinct text once.
    unique = pd.Series(docs["text"].unique())
    with duckdb.get_connection() as con:
        spec = encoder.spec_for(con, schema, unique)  # first run: the default for these texts
    tokenizer = load_encoder(spec, encoder.batch_size, encoder.precision)
    normalized = unique.map(normalize)
    languages = unique.map(detect_language)
    # The same call as for free-text requests (serving.py), so items and queries share tokens.
    words = [segment(t) for t in unique]
    stats = tokenizer.tokenize_stats(unique.tolist())
    per_text = pd.DataFrame(
        {
            "text": unique,
            "language": languages,
            "normalized": normalized,
            "tokens": words,
            "token_ids": stats["token_ids"].to_numpy(),
            "n_tokens": stats["n_tokens"].to_numpy(),
            "truncated": stats["truncated"].to_numpy(),
            "n_unknown": stats["n_unknown"].to_numpy(),
        }
    )
    table = docs.merge(per_text, on="text", how="left").assign(tokenizer=tokenizer.version)  # whose token ids
    n_tok = table["n_tokens"].to_numpy()
    total = max(int(n_tok.sum()), 1)
    meta = {
        "distinct_texts": len(unique),
        "tokens_p50": float(np.percentile(n_tok, 50)) if len(n_tok) else 0.0,
        "tokens_p95": float(np.percentile(n_tok, 95)) if len(n_tok) else 0.0,
        "tokens_max": int(n_tok.max()) if len(n_tok) else 0,
        "truncation_rate": float(table["truncated"].mean()) if len(table) else 0.0,
        "unknown_token_rate": float(table["n_unknown"].sum() / total),
        "share_chinese": float((table["language"] == "zh").mean()) if len(table) else 0.0,
    }
    context.log.info(f"tokens: {len(table)} texts ({len(unique)} distinct); " + ", ".join(f"{k}={v:.3g}" for k, v in meta.items()))
    # stored together (one transaction): the choice is the dataset's from now on, every later run that names no encoder reads it
    return dg.Output({"text_tokens": table, ENCODER_CHOICE_TABLE: encoder_choice_table(spec, tokenizer)},
                     metadata=table_meta(table[["source", "id", "language", "tokens", "n_tokens", "n_unknown"]],
                                         tokenizer=tokenizer.version, **meta))


# The resource is kept for the shared embedding cache and the dataset's encoder choice.
@dg.asset(
    group_name="text",
    partitions_def=dataset_partitions,
    ins={"text_tokens": dg.AssetIn(metadata={"columns": ["source", "id", "text"]})},
    description="Transformer embeddings (mean pooling, L2-normalised) of items and user descriptions.",
)
@profiled
def text_embeddings(context: dg.AssetExecutionContext, text_tokens: pd.DataFrame, duckdb: DuckDBResource,
                    encoder: EncoderResource) -> dg.Output:
    schema = schema_of(context)
    docs = text_tokens
    with duckdb.get_connection() as con:
        spec = encoder.spec_for(con, schema)
        model = load_encoder(spec, encoder.batch_size, encoder.precision)
        unique, inverse = np.unique(docs["text"].to_numpy(dtype=str), return_inverse=True)
        # Texts met before (this dataset's last run, or any other dataset) come from the
        # shared cache; only the rest go through the model.
        found = embedding_cache.lookup(con, model.version, model.dim, unique.tolist())
    # The connection is closed while the model runs, so DuckDB stays free for other readers.
    start = time.perf_counter()
    new = model.encode(found.missing_texts, progress=True, desc=f"encoding {context.partition_key}")
    seconds = time.perf_counter() - start
    vectors = found.fill(new)
    table = store.embeddings_table(docs["id"], docs["source"], vectors[inverse.reshape(-1)], model.version)
    with duckdb.get_connection() as con:
        embedding_cache.store(con, model.version, found.missing_texts, new)
    rate = found.misses / seconds if seconds > 0 and found.misses else float("nan")
    context.log.info(
        f"{len(unique)} distinct texts: {found.hits} from the cache, {found.misses} encoded in {seconds:.1f}s ({rate:.0f}/s) with {model.version}"
    )
    return dg.Output(
        {"text_embeddings": table, ENCODER_CHOICE_TABLE: encoder_choice_table(spec, model)},  # one transaction
        metadata={
            "dagster/row_count": table.num_rows,
            "distinct_texts": len(unique),
            "cache_hits": found.hits,
            "cache_misses": found.misses,
            "encoder_name": model.name,
            "encoder_version": model.version,
            "encoder_model": spec or "(packaged all-MiniLM-L6-v2)",
            "dim": model.dim,
            "precision": model.precision,
            "seconds": round(seconds, 2),
            "texts_per_second": round(rate, 1),
        }
    )


@dg.asset_check(asset=text_embeddings, partitions_def=dataset_partitions, blocking=True,
                description="No NaN embeddings, unit norms, one embedding per item and per description.")
def embeddings_are_unit_vectors(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        passed, meta = checks.embeddings_valid(con, schema_of(context))
    return dg.AssetCheckResult(passed=passed, metadata=meta)
