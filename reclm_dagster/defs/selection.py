"""Step 5a — model selection: the hybrid's whole setting and its re-ranker, chosen on validation only.

Upstream of the lists (``user_item_scores`` reads the stored choice) and of the ``evaluation``
(which reads it back when it was chosen on exactly its split; see ``evaluation/selection.py``).
The choice is made on the configured protocol's split of the whole dataset: the hybrid is
fitted on the train rows and every knob is judged on the validation rows; the test rows
reach nothing here, so the evaluation's test numbers never influence the production choice.
"""

# No `from __future__ import annotations` here: Dagster reads the config classes' annotations as types.
import json
from dataclasses import replace

import dagster as dg
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings
from reclm_dagster.defs.common import dataset_partitions, schema_of, profiled
from reclm_dagster.defs.resources import EncoderResource
from reclm_dagster.evaluation.holdout import EvaluationProtocol
from reclm_dagster.evaluation.selection import SELECTION_TABLES, select_hybrid, selection_tables
from reclm_dagster.training import DatasetTables, check_loader_version, hybrid_config

# The tables the model fits read, as arguments of the assets that fit (DatasetTables.from_frames);
# of text_tokens only what the fits use (its token ids stay in the store).
TABLE_INS = {"text_tokens": dg.AssetIn(metadata={"columns": ["source", "id", "tokens"]})}
# hybrid_selection is stored as these tables; the assets downstream load them as a dict, possibly
# empty: `reclm eval` on a dataset never run selects on its own split, the lists use the config.
SELECTION_IN = dg.AssetIn("hybrid_selection", metadata={"tables": list(SELECTION_TABLES), "missing_ok": True})


class SelectionConfig(dg.Config):
    """Overrides of the split the choice is made on (assets/config/default.yaml's evaluation section; None = keep)."""

    valid_fraction: float | None = None
    test_fraction: float | None = None
    seed: int | None = None
    method: str | None = None  # random | temporal


def protocol_for(config: dg.Config | None) -> EvaluationProtocol:
    protocol = EvaluationProtocol.from_config(settings.load_config())
    overrides = {k: v for k, v in (config.model_dump() if config else {}).items() if v is not None}
    return replace(protocol, **overrides)


def finetune_inputs(enc, dataset: str, protocol: EvaluationProtocol) -> tuple[str | None, dict | None]:
    """``(finetune_base, encoder_recipe)`` for ``offline_evaluation`` / ``select_hybrid`` from the run's encoder.

    The base is the encoder's folder when it is a transformer (else None: no ``hybrid@finetuned``);
    the recipe is its fine-tuning record when its weights have seen rows this split holds out.
    """
    from reclm_dagster.encoders.finetune import evaluation_conflict, trained_on
    from reclm_dagster.encoders.transformer import TransformerEncoder

    if not isinstance(enc, TransformerEncoder):
        return None, None
    if evaluation_conflict(enc.folder, dataset, protocol.as_params()) is None:
        return str(enc.folder), None
    recipe = trained_on(enc.folder) or {}
    return recipe.get("base_model") or "", recipe  # hybrid@finetuned starts from the same base, not these weights


def dataset_tables(items: pd.DataFrame, interactions: pd.DataFrame, descriptions: pd.DataFrame, catalogue_facts: pd.DataFrame,
                   text_tokens: pd.DataFrame, text_embeddings: pa.Table) -> DatasetTables:
    return DatasetTables.from_frames(items, interactions, descriptions, catalogue_facts, text_tokens, text_embeddings)


def with_encoder(duckdb: DuckDBResource, encoder: EncoderResource, schema: str, dataset: str, tables: DatasetTables):
    """The run's encoder, which must be the one ``tables`` were embedded with (and raw tables of this reclm)."""
    with duckdb.get_connection() as con:
        check_loader_version(con, schema)
        enc = encoder.for_dataset(con, schema)
    if enc.version != tables.encoder_version:  # name and version are logged from one encoder, or not at all
        raise dg.Failure(f"{dataset} is embedded with {tables.encoder_version}, this run's encoder is {enc.version}: "
                         f"materialize text_embeddings with it first (`reclm eval --dataset {dataset} --encoder ...` does)")
    return enc


@dg.asset(
    group_name="evaluation",
    partitions_def=dataset_partitions,
    ins=TABLE_INS,
    description="The hybrid's setting (side weight g, EASE λ, fusion weights, short-history prior) and its LightGBM "
                "re-ranker, chosen on the validation split (never on test); the lists and the evaluation read it.",
)
@profiled
def hybrid_selection(
    context: dg.AssetExecutionContext,
    config: SelectionConfig,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    descriptions: pd.DataFrame,
    catalogue_facts: pd.DataFrame,
    text_tokens: pd.DataFrame,
    text_embeddings: pa.Table,
    duckdb: DuckDBResource,  # the encoder choice and the raw tables' loader version
    encoder: EncoderResource,
) -> dg.Output:
    dataset, schema = context.partition_key, schema_of(context)
    protocol = protocol_for(config)
    tables = dataset_tables(items, interactions, descriptions, catalogue_facts, text_tokens, text_embeddings)
    enc = with_encoder(duckdb, encoder, schema, dataset, tables)
    _, recipe = finetune_inputs(enc, dataset, protocol)
    if recipe is not None:
        context.log.warning(f"{tables.encoder_version} was fine-tuned on rows this split holds out: the choice is made "
                            "with its recipe, retrained on the split's train rows")
    selection = select_hybrid(tables, protocol, hybrid_config(settings.load_config()), dataset=dataset,
                              encoder_recipe=recipe, progress=True)
    chosen = selection.config
    context.log.info(f"hybrid selection on {dataset} ({selection.chosen_by}): {json.dumps(chosen.as_params())}")
    return dg.Output(selection_tables(selection), metadata={  # the four tables in one transaction
        "protocol": protocol.name(),
        "chosen_by": selection.chosen_by,
        "hybrid_setting": json.dumps(chosen.as_params()),
        "fusion_weights": ", ".join(f"{k}={v:g}" for k, v in chosen.weights.items()),
        "side_weight": float(chosen.side_weight),
        "ease_l2": float(chosen.ease_l2),
        "short_history_popularity": float(chosen.short_history_popularity),
        "settings_tried": len(selection.tuning),
        "reranker": "kept (won on held-out validation users)" if selection.reranker is not None else "not used",
        "reranker_decision": json.dumps(selection.reranker_report),
        "encoder_version": selection.encoder_version,
        "fingerprint": selection.fingerprint,
    })
