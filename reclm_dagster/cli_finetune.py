"""`reclm finetune`: a domain-adapted encoder for one dataset (materializes ``encoder_finetuned``).

    reclm finetune --dataset NAME [--steps N] [--batch-size B] [--lr LR] [--seed S]

Prints the new encoder's folder and version; then `reclm run --dataset NAME --encoder FOLDER`
embeds with it and `reclm compare --dataset NAME` shows its runs beside the base encoder's.
"""

from __future__ import annotations

import argparse
import shlex

from reclm_dagster import settings
from reclm_dagster import cli_args
from reclm_dagster.cli_args import dataset_arg

ASSET = "encoder_finetuned"


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a number above 0 and below 1 (e.g. 2e-5), got {text[:20]!r}")
    return value


def _value(meta: dict, key: str):
    item = meta.get(key)
    return getattr(item, "value", item)


def cmd_finetune(args: argparse.Namespace) -> int:
    from reclm_dagster.cli_run import _execute, _materialized
    from reclm_dagster.defs.ingest import RAW_TABLES
    from reclm_dagster.serving import ReclmError

    names = [ASSET] if _materialized(args.dataset, "items") else [*RAW_TABLES, ASSET]  # first time: ingest too
    config = {"finetune_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    result, seconds = _execute(args.dataset, "", args.log_level, asset_names=names, ops_config={ASSET: {"config": config}})
    done = result.asset_materializations_for_node(ASSET)
    if not done:
        raise ReclmError(f"run {result.run_id} did not materialize {ASSET}; `reclm ui` shows its logs")
    meta = done[-1].metadata
    folder, version = str(_value(meta, "folder")), _value(meta, "encoder_version")
    print(f"fine-tuned encoder for '{args.dataset}': {_value(meta, 'steps')} steps in {seconds:.0f}s "
          f"({_value(meta, 'seconds_per_step')} s/step, {_value(meta, 'precision')})")
    print(f"  in-batch loss    first 10 steps {_value(meta, 'first_loss'):.4f} -> last 10 steps {_value(meta, 'final_loss'):.4f}")
    held = [f"{m} {_value(meta, f'heldout_{m}_before'):.4f} -> {_value(meta, f'heldout_{m}_after'):.4f}"
            for m in ("loss", "accuracy", "mrr", "cos_gap") if f"heldout_{m}_before" in meta]
    print(f"  held-out pairs   {'; '.join(held) or 'too few pairs to hold any out'}")
    print(f"  encoder version  {version}")
    print(f"  base encoder     {_value(meta, 'base_encoder_version')}")
    print(f"  folder           {folder}")
    print(f"  MLflow run       {_value(meta, 'mlflow_run_id')} (experiment '{args.dataset}', {settings.mlflow_tracking_uri()})")
    print(f"next: reclm run --dataset {shlex.quote(args.dataset)} --encoder {shlex.quote(folder)}"
          f"  (then `reclm compare --dataset {shlex.quote(args.dataset)}` shows both encoders' runs)")
    return 0


def add_finetune_parser(subparsers) -> argparse.ArgumentParser:
    """Add `finetune` to reclm's sub-commands."""
    p = subparsers.add_parser("finetune", help="fine-tune the packaged MiniLM on a dataset's words and co-consumed items: a new encoder")
    p.add_argument("--dataset", type=dataset_arg, default=settings.DEFAULT_DATASET,
                   help="dataset name: 'demo' (bundled) or a folder under RECLM_DATA_DIR")
    p.add_argument("--steps", "--finetune-steps", dest="steps", type=cli_args.int_in(1, 100_000), default=200,
                   help="optimizer steps (default 200; each is one batch)")
    p.add_argument("--batch-size", type=cli_args.int_in(2, 1024), default=32, help="pairs per batch = in-batch negatives + 1 (default 32)")
    p.add_argument("--lr", type=_learning_rate, default=2e-5, help="AdamW peak learning rate (default 2e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs, the batches and dropout (default 0)")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Dagster console log level")
    p.set_defaults(fn=cmd_finetune)
    return p
