"""`reclm eval --queries`: held-out descriptions as free-text requests, from the stored tables."""

from __future__ import annotations

from reclm_dagster import settings


def query_retrieval_report(dataset: str, encoder_name: str | None) -> dict:
    """Held-out descriptions as free-text requests: BM25 vs the encoder vs both (evaluation/queries.py).

    Uses the stored catalogue and descriptions; embeddings go through the store's cache.
    The table is also stored as ``query_evaluation``.
    """
    import duckdb

    from reclm_dagster import store
    from reclm_dagster.encoders.registry import load_encoder, resolve_encoder_spec
    from reclm_dagster.encoders.cache import CachedEncoder
    from reclm_dagster.evaluation.queries import evaluate_query_retrieval

    schema = settings.schema_name(dataset)
    with duckdb.connect(str(settings.duckdb_path())) as con:
        items, facts, descriptions = (store.read_df(con, schema, t) for t in ("items", "catalogue_facts", "descriptions"))
        spec = resolve_encoder_spec(con, schema, encoder_name)  # None: the dataset's own, as runs resolve it
        encoder = CachedEncoder(load_encoder(spec, 64, "auto"), con)
        result = evaluate_query_retrieval(f"{dataset}/{'+'.join(sorted(set(descriptions['kind'])))}", items, facts,
                                          descriptions, encoder, fusion=("zscore", "rrf"))
        store.replace_tables(con, schema, {"query_evaluation": result.table})
    wide = result.table.pivot_table(index="model", columns="metric", values="value", sort=False)
    return {"task": str(result.table["task"].iloc[0]), "n_queries": int(result.table["n_queries"].iloc[0]),
            "n_items": result.n_items, "encoder": encoder.version, "fusion_weight": result.fusion_weight,
            "models": {m: {k: float(v) for k, v in row.items()} for m, row in wide.iterrows()}}


def format_query_table(q: dict) -> str:
    lines = [f"free-text requests: {q['task']} ({q['n_queries']} held-out descriptions as queries, "
             f"{q['n_items']} items, full ranking; encoder {q['encoder']})", "model        Recall@10     MRR",
             "----------  ---------  ------"]
    for model, m in q["models"].items():
        lines.append(f"{model:<10}  {m.get('recall@10', float('nan')):9.4f}  {m.get('mrr', float('nan')):6.4f}")
    return "\n".join(lines)
