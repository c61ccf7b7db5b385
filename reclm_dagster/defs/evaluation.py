"""Step 6 — offline evaluation on a held-out split, logged to MLflow (one experiment per dataset)."""


import json
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings, store
from reclm_dagster.defs.common import dataset_partitions, run_id_of, schema_of, profiled
from reclm_dagster.defs.resources import EncoderResource, MLflowResource
from reclm_dagster.defs.selection import (
    SELECTION_IN, TABLE_INS, SelectionConfig, dataset_tables, finetune_inputs, protocol_for, with_encoder,
)
from reclm_dagster.evaluation.holdout import user_sample_params
from reclm_dagster.models import fit_cache
from reclm_dagster.evaluation.offline import EvaluationProtocol, EvaluationResult, offline_evaluation
from reclm_dagster.evaluation.selection import selection_from_tables
from reclm_dagster.evaluation.plots import plot_metrics_at_k, plot_popularity_bias
from reclm_dagster.evaluation.report import (
    COLD_USER_BASELINES, COLD_USER_METRICS, COLD_USER_PREFIX, ONBOARDING_BASELINES, ONBOARDING_PREFIX, cold_user_entries,
    cold_user_ratios, eval_json, format_table, headline_ratios,
)
from reclm_dagster.training import hybrid_config

HEADLINE = ("ndcg@10", "recall@10", "recall@20", "precision@10")


def mlflow_metric_name(metric: str, slice_: str) -> str:
    """'ndcg@10' -> 'ndcg_at_10' (MLflow keys cannot hold '@'); cold slice prefixed."""
    name = metric.replace("@", "_at_")
    return name if slice_ == "all" else f"{slice_}_{name}"


def cold_user_ratio_metrics(result: EvaluationResult) -> dict[str, float]:
    """The hybrid's cold-user ratios as MLflow metrics: ÷ Pop at every n, ÷ EASE from n = 1 (no EASE list at n = 0).

    'cold_users_0_hybrid_over_pop_ndcg_at_10', …; a ratio over a zero baseline is left out.
    """
    metrics = [m for _, m in COLD_USER_METRICS]
    out = {}
    for prefix, baselines in ((COLD_USER_PREFIX, COLD_USER_BASELINES), (ONBOARDING_PREFIX, ONBOARDING_BASELINES)):
        ratios = cold_user_ratios(cold_user_entries(result, metrics, prefix=prefix), baselines)
        out.update({mlflow_metric_name(m, f"{prefix}{n}_{pair.replace('/', '_over_')}"): v
                    for pair, per_n in ratios.items() for n, values in per_n.items() for m, v in values.items() if v is not None})
    return out


def headline_ratio_metrics(result: EvaluationResult) -> dict[str, float]:
    """hybrid ÷ EASE and ÷ its own ablations as MLflow metrics ('hybrid_over_hybrid_at_lexical_ndcg_at_10', …)."""
    wide = result.wide()
    models = {str(n): {"ndcg@10": float(wide.at[n, "ndcg@10"])} for n in wide.index if "ndcg@10" in wide.columns}
    return {mlflow_metric_name("ndcg@10", pair.replace("/", "_over_").replace("@", "_at_")): v
            for pair, v in headline_ratios({"models": models}).items()}


class EvaluationConfig(SelectionConfig):
    """Overrides of the evaluation protocol in assets/config/default.yaml (None = keep the file's value).

    A split other than the one ``hybrid_selection`` chose on makes the evaluation re-select on its own split."""

    finetune_steps: int | None = None  # > 0: also hybrid@finetuned (the encoder fine-tuned on the train rows)


@dg.asset(
    group_name="evaluation",
    partitions_def=dataset_partitions,
    ins={**TABLE_INS, "hybrid_selection": SELECTION_IN},
    description="NDCG, Recall, Precision, … at K of the hybrid and of each signal alone, on a held-out per-user split with "
                "full ranking; the hybrid runs with hybrid_selection's choice when it was made on this split.",
)
@profiled
def evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    descriptions: pd.DataFrame,
    catalogue_facts: pd.DataFrame,
    text_tokens: pd.DataFrame,
    text_embeddings: pa.Table,
    hybrid_selection: dict[str, pd.DataFrame],
    duckdb: DuckDBResource,  # the encoder choice and the raw tables' loader version
    mlflow: MLflowResource,
    encoder: EncoderResource,
) -> dg.Output:
    dataset = context.partition_key
    schema = schema_of(context)
    cfg = settings.load_config()
    protocol = protocol_for(config)
    hybrid = hybrid_config(cfg)
    tables = dataset_tables(items, interactions, descriptions, catalogue_facts, text_tokens, text_embeddings)
    enc = with_encoder(duckdb, encoder, schema, dataset, tables)
    stored = selection_from_tables(hybrid_selection)
    start, served_before = time.perf_counter(), fit_cache.stats["hits"]
    base, recipe = finetune_inputs(enc, dataset, protocol)
    if recipe is not None:
        context.log.warning(f"{tables.encoder_version} was fine-tuned on rows this split holds out: the evaluation "
                            "measures its recipe, retrained on the split's train rows")
    result = offline_evaluation(tables, protocol, hybrid, progress=True, dataset=dataset, finetune_base=base,
                                encoder_recipe=recipe, selection=stored)
    seconds = time.perf_counter() - start
    context.log.info(f"hybrid setting: {result.selection_source}")
    evaluated_with = result.encoder_version or tables.encoder_version
    metrics = result.metrics.assign(dataset=dataset, encoder_version=evaluated_with, dagster_run_id=run_id_of(context))
    stored_tables = {  # stored by the IO manager in one transaction, once MLflow has the runs
        "evaluation_metrics": metrics,
        "evaluation_split": result.split,
        # The whole report as JSON: what `reclm eval --json` prints.
        "evaluation_report": pd.DataFrame({"json": [json.dumps(eval_json(dataset, protocol, result), ensure_ascii=False)]}),
    }

    wide = result.wide("all")
    tuned = result.hybrid_config or replace(hybrid, weights=result.weights)
    run_ids = log_to_mlflow(mlflow, dataset, result, protocol, tuned.as_params(), enc.name, evaluated_with, run_id_of(context))
    headline = wide[[c for c in HEADLINE if c in wide.columns]].round(4)
    context.log.info(f"evaluation on {dataset} ({protocol.name()}) in {seconds:.1f}s:\n{format_table(result)}")
    meta: dict[str, object] = {
        "protocol": protocol.name(),
        "encoder_version": evaluated_with,
        "n_test_users": int(wide["n_users"].iloc[0]) if "n_users" in wide else 0,
        "descriptions_removed_for_leakage": result.n_descriptions_removed,
        "metrics": dg.MetadataValue.md(headline.reset_index().to_markdown(index=False)),
        "mlflow_runs": ", ".join(run_ids),
        "fusion_weights": ", ".join(f"{k}={v:g}" for k, v in result.weights.items()),
        "fusion_weights_chosen_by": result.selection.chosen_by if result.selection else "config",
        "hybrid_selection": result.selection_source,
        "hybrid_setting": json.dumps(tuned.as_params()),
        "reranker": "kept (won on held-out validation users)" if result.reranker else "not used",
        "skipped_models": ", ".join(f"{k}: {v}" for k, v in result.skipped.items()) or "none",
        "sparse_fits_served": fit_cache.stats["hits"] - served_before,  # models/fit_cache.py: refits not redone
        "seconds": round(seconds, 1),
        "stages": dg.MetadataValue.md(result.stages.to_markdown(index=False)) if len(result.stages) else "none",
        "peak_rss_mb": float(result.stages["peak_rss_mb"].max()) if len(result.stages) else float("nan"),
        **stage_metrics(result.stages),  # the same numbers as MLflow's, one per stage (benchmarks/pipeline.py)
        **result.counts.as_dict(),
    }
    if "hybrid" in wide.index:
        meta.update({f"hybrid_{k.replace('@', '_at_')}": float(wide.loc["hybrid", k]) for k in HEADLINE if k in wide.columns})
    return dg.Output(stored_tables, metadata=meta)


def stage_metrics(stages: pd.DataFrame) -> dict[str, float]:
    """``stage_<name>_seconds`` and ``_peak_rss_mb`` per evaluation stage (profiling.LapClock)."""
    out = {}
    for row in stages.itertuples(index=False):
        key = re.sub(r"[^a-z0-9]+", "_", str(row.stage).lower()).strip("_")
        out[f"stage_{key}_seconds"] = float(row.seconds)
        out[f"stage_{key}_peak_rss_mb"] = float(row.peak_rss_mb)
    return out


def log_to_mlflow(mlflow: MLflowResource, dataset, result, protocol, model_params, encoder_name, encoder_version, dagster_run_id) -> list[str]:
    """One MLflow run per model in the dataset's experiment; returns the run ids."""
    import mlflow as mlf

    run_ids = []
    with tempfile.TemporaryDirectory() as tmp:
        table_path = Path(tmp) / "metrics.csv"
        result.metrics.to_csv(table_path, index=False)
        plot_path = plot_metrics_at_k(result.metrics, Path(tmp) / "metrics_at_k.png", f"{dataset}: {protocol.name()}")
        bias_path = plot_popularity_bias(result.metrics, Path(tmp) / "popularity_bias.png", f"{dataset}: popularity bias and coverage at 10")
        for model, group in result.metrics.groupby("model", sort=False):
            version = result.model_encoders.get(model, encoder_version)  # an ablation may run another encoder
            name = encoder_name if version == encoder_version else version.split("@")[0]
            tags = {"dagster_run_id": dagster_run_id, "dataset": dataset, "model": model, "encoder_version": version}
            with mlflow.start_run(dataset, run_name=f"{model} · {version}", tags=tags) as run:
                params = {**protocol.as_params(), **user_sample_params(result.scored_users),
                          "tuning_max_cells": protocol.tuning_max_cells, "test_max_cells": protocol.test_max_cells,
                          "model": model, "encoder_name": name, "encoder_version": version}
                if model in ("hybrid", "cf"):
                    params.update(model_params)
                params.update({f"param_{k}": v for k, v in result.params.get(model, {}).items()})
                mlf.log_params(params)
                metrics = {mlflow_metric_name(m, s): v for m, s, v in zip(group["metric"], group["slice"], group["value"])}
                if model == "hybrid":  # cold users: EASE has no row at n = 0, so neither has hybrid/ease
                    metrics.update(cold_user_ratio_metrics(result))
                    metrics.update(headline_ratio_metrics(result))
                    metrics.update(stage_metrics(result.stages))
                # headline metrics first: MLflow's run page lists metrics in logged order
                first = [mlflow_metric_name(m, "all") for m in HEADLINE if mlflow_metric_name(m, "all") in metrics]
                mlf.log_metrics({**{k: metrics[k] for k in first}, **metrics})
                mlf.log_artifact(str(table_path))
                mlf.log_artifact(str(plot_path))
                mlf.log_artifact(str(bias_path))
                run_ids.append(run.info.run_id)
    return run_ids


def evaluation_summary(con, dataset: str) -> pd.DataFrame:
    """The stored metrics of one dataset, one row per model (for the CLI)."""
    schema = settings.schema_name(dataset)
    if not store.table_exists(con, schema, "evaluation_metrics"):
        return pd.DataFrame()
    m = store.read_df(con, schema, "evaluation_metrics", where="slice = 'all'")
    return m.pivot(index="model", columns="metric", values="value")


# Tolerated drop of the hybrid's NDCG@10 against the best earlier run of the same dataset,
# encoder and protocol, before the new lists are blocked from replacing the old ones.
REGRESSION_TOLERANCE = 0.05


def reported_protocol_params(report: dict) -> dict[str, object]:
    """The stored report's protocol as the MLflow params ``log_to_mlflow`` logged for it (same keys, same spelling)."""
    p = report["protocol"]
    protocol = EvaluationProtocol(
        method=p["method"], valid_fraction=p["valid_fraction"], test_fraction=p["test_fraction"], seed=p["seed"],
        ks=tuple(p["ks"]), cold_item_max_train=p["cold_item_max_train"],
    )
    sampled = {role: (p[f"{role}_users"]["scored"], p[f"{role}_users"]["of"])
               for role in ("tuning", "test") if f"{role}_users" in p}  # the report names a sample only when drawn
    return {**protocol.as_params(), **user_sample_params(sampled)}


@dg.asset_check(
    asset=evaluation,
    partitions_def=dataset_partitions,
    blocking=True,
    description="Fails when the hybrid's NDCG@10 falls more than 5% below the best earlier MLflow run of the same dataset, "
                "encoder and protocol (method, split fractions, seed, ks, cold-item threshold, validation and test user samples).",
)
def ndcg_not_regressed(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    from reclm_dagster.experiments import best_earlier_ndcg

    dataset = context.partition_key
    schema = schema_of(context)
    with duckdb.get_connection() as con:
        row = con.execute(
            f"""SELECT value, encoder_version FROM "{schema}".evaluation_metrics
                WHERE model = 'hybrid' AND slice = 'all' AND metric = 'ndcg@10'"""
        ).fetchone()
        report = json.loads(con.execute(f'SELECT json FROM "{schema}".evaluation_report').fetchone()[0])
    if row is None or pd.isna(row[0]):  # NULL: the evaluation had no test user (float(None) was a TypeError)
        what = "no hybrid NDCG@10 stored" if row is None else "the hybrid's NDCG@10 is NULL"
        return dg.AssetCheckResult(passed=False, metadata={"reason": f"{what}: no user could be evaluated on this split"})
    current, encoder_version = float(row[0]), row[1]
    best = best_earlier_ndcg(dataset, encoder_version, "hybrid", run_id_of(context), reported_protocol_params(report))
    if best is None:
        return dg.AssetCheckResult(passed=True, metadata={"ndcg_at_10": current, "best_earlier": "none"})
    return dg.AssetCheckResult(
        passed=current >= (1 - REGRESSION_TOLERANCE) * best,
        metadata={"ndcg_at_10": current, "best_earlier": best, "ratio": round(current / best, 4) if best else None},
    )
