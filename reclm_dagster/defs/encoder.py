"""A domain-adapted encoder per dataset: contrastive fine-tuning of MiniLM, logged to MLflow.

Materialized only on request (`reclm finetune --dataset NAME`, or "Materialize" on this asset
in the UI): a whole-graph run, the daily schedule and the inbox sensor skip it, so `reclm run`
costs what it did. The output is a folder under ``$RECLM_HOME/encoders``, a new encoder
version; `reclm run --dataset NAME --encoder FOLDER` embeds with it.
"""

# No `from __future__ import annotations` here: Dagster reads FinetuneConfig's annotations as types.
import time
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings, store
from reclm_dagster.defs.common import dataset_partitions, run_id_of, schema_of, profiled
from reclm_dagster.defs.ingest import raw_dataset
from reclm_dagster.defs.jobs import full_pipeline_job
from reclm_dagster.defs.resources import MLflowResource

MODEL_TAG = "encoder_finetuned"


class FinetuneConfig(dg.Config):
    """Training knobs (200 steps at batch 32: ~3 minutes on Last.fm, ~45 on the demo's long documents, one loaded core)."""

    finetune_steps: int = 200
    batch_size: int = 32
    lr: float = 2e-5
    seed: int = 0
    temperature: float = 0.2  # 0.05 collapsed the geometry on Last.fm (encoders/finetune.py)
    max_length: int = 128  # tokens per text while training (serving keeps the encoder's own)
    base_model: str = ""  # empty: the packaged all-MiniLM-L6-v2; else a local Hugging Face folder


def requested_explicitly(context: dg.AssetExecutionContext) -> bool:
    """True unless this step runs as part of a whole-graph, scheduled or sensor run.

    Those runs select every asset downstream of the raw tables, this one included; training
    there would add minutes to every `reclm run` and to every nightly refresh.
    """
    try:
        run = context.run
    except Exception:  # direct invocation (build_asset_context): the caller asked for it
        return True
    if run.tags.get("reclm/trigger"):  # daily_refresh schedule, inbox sensor
        return False
    # The whole job runs with no selection (None, or an empty set in some Dagster versions).
    return not (not run.asset_selection and run.job_name == full_pipeline_job.name)


# The raw tables are read through the resource, not taken as arguments: a whole-graph run skips
# this asset, and Dagster would load four tables (millions of interactions) before it could skip.
# The lineage still comes from the code: the keys are raw_dataset's own.
FINETUNE_READS = ("items", "interactions", "descriptions", "catalogue_facts")


@dg.asset(
    group_name="encoder",
    partitions_def=dataset_partitions,
    deps=[key for key in raw_dataset.keys if key.path[-1] in FINETUNE_READS],
    output_required=False,
    description="MiniLM fine-tuned on this dataset's words ↔ items and co-consumed items (in-batch negatives); "
                "a new encoder version under $RECLM_HOME/encoders. Materialize it explicitly (`reclm finetune`).",
)
@profiled
def encoder_finetuned(context: dg.AssetExecutionContext, config: FinetuneConfig, duckdb: DuckDBResource,
                      mlflow: MLflowResource):
    if not requested_explicitly(context):
        context.log.info("encoder_finetuned is trained only when asked for (`reclm finetune --dataset NAME`): skipped")
        return
    from reclm_dagster.encoders.registry import load_encoder
    from reclm_dagster.encoders.finetune import build_training_pairs, finetune_to_folder

    dataset, schema = context.partition_key, schema_of(context)
    with duckdb.get_connection() as con:
        items, facts, descriptions, interactions = (
            store.read_df(con, schema, t) for t in ("items", "catalogue_facts", "descriptions", "interactions"))  # FINETUNE_READS
    # Everything the production fit sees (the evaluation's masks are for an evaluation to pass).
    pairs = build_training_pairs(items, facts, descriptions, interactions, seed=config.seed)
    by_kind = {str(k): int(v) for k, v in pairs["kind"].value_counts().sort_index().items()}
    context.log.info(f"{len(pairs)} training pairs from {dataset}: {by_kind}")

    def on_step(step: int, loss: float) -> None:
        if step == 1 or step % 10 == 0 or step == config.finetune_steps:
            context.log.info(f"step {step}/{config.finetune_steps}: in-batch loss {loss:.4f}")

    folder, result, base_version = finetune_to_folder(
        pairs, settings.encoders_dir(), dataset, {"rows": "all"}, base_model=config.base_model or None, on_step=on_step,
        steps=config.finetune_steps, batch_size=config.batch_size, lr=config.lr, temperature=config.temperature,
        max_length=config.max_length, seed=config.seed)
    tuned = load_encoder(str(folder), 64, "auto")  # the `--encoder FOLDER` path: the version it will store
    run_id = log_finetune_run(mlflow, dataset, result, by_kind, folder, tuned.name, tuned.version, base_version,
                              config, run_id_of(context))
    context.log.info(f"{tuned.version} in {folder}; loss {result.smoothed(last=False):.4f} → {result.smoothed():.4f}; "
                     f"held-out pairs {result.heldout_before} → {result.heldout_after}")
    if result.heldout_after.get("accuracy", 1.0) < result.heldout_before.get("accuracy", 0.0):
        context.log.warning("held-out in-batch accuracy fell: the pairs may be too noisy for this encoder to learn from")
    yield dg.MaterializeResult(metadata={
        "steps": result.steps,
        "final_loss": result.smoothed(),  # mean of the last 10 steps: one step is noisy
        "first_loss": result.smoothed(last=False),
        **result.heldout(),  # loss, accuracy, mrr, cos_gap on held-out pairs, before and after
        "seconds": round(result.seconds, 1),
        "seconds_per_step": round(result.seconds / max(result.steps, 1), 3),
        "precision": result.precision,
        "encoder_version": tuned.version,
        "base_encoder_version": base_version,
        "folder": dg.MetadataValue.path(str(folder)),
        "pairs": dg.MetadataValue.json({**by_kind, "trained_on": result.n_train_pairs, "held_out": result.n_heldout_pairs}),
        "mlflow_run_id": run_id,
    })


def log_finetune_run(mlflow: MLflowResource, dataset: str, result, by_kind: dict[str, int], folder: Path,
                     name: str, version: str, base_version: str, config: FinetuneConfig, dagster_run_id: str) -> str:
    """One MLflow run in the dataset's experiment: params, the loss curve by step, the model folder."""
    import mlflow as mlf
    from mlflow.entities import Metric

    tags = {"dagster_run_id": dagster_run_id, "dataset": dataset, "model": MODEL_TAG,
            "encoder_version": version, "base_encoder_version": base_version}
    with mlflow.start_run(dataset, run_name=f"{MODEL_TAG} · {version}", tags=tags) as run:
        mlf.log_params({**config.model_dump(), **result.params, "encoder_name": name, "encoder_version": version,
                        "base_encoder_version": base_version, "precision": result.precision,
                        **{f"pairs_{k}": v for k, v in by_kind.items()},
                        "train_pairs": result.n_train_pairs, "heldout_pairs": result.n_heldout_pairs})
        now = int(time.time() * 1000)
        # Batch calls (MLflow takes up to 1000 metrics each): a call per step costs a store round trip each.
        curve = [Metric("train_loss", loss, now, step) for step, loss in enumerate(result.losses, start=1)]
        for start in range(0, len(curve), 1000):
            mlf.MlflowClient().log_batch(run.info.run_id, metrics=curve[start : start + 1000])
        mlf.log_metrics({"final_loss": result.smoothed(), "first_loss": result.smoothed(last=False),
                         **result.heldout(),
                         "seconds": result.seconds, "seconds_per_step": result.seconds / max(result.steps, 1)})
        mlf.log_artifacts(str(folder), artifact_path="encoder")
        return run.info.run_id
