"""Reading MLflow back: the comparison table behind `reclm compare` and the regression check."""

from __future__ import annotations

import pandas as pd

from reclm_dagster import settings

COMPARE_METRICS = ("ndcg_at_10", "recall_at_10", "recall_at_20", "precision_at_10", "cold_ndcg_at_10", "cold_recall_at_20")
# The MLflow params that define the evaluation protocol (``EvaluationProtocol.as_params``'s keys,
# spelled out so that `reclm compare` need not import the evaluation). Only runs equal in all of
# them are comparable: another seed or split size moves NDCG@10 by more than a regression would.
PROTOCOL_PARAMS = ("protocol", "valid_fraction", "test_fraction", "seed", "ks", "cold_item_max_train")
# Which users chose and which were reported on (``holdout.user_sample_params``): "all", or a seeded
# sample above the evaluation's cell budgets. A run that did not log them scored every user.
SAMPLE_PARAMS = ("tuning_users", "test_users")


def list_runs(dataset: str | None = None, tracking_uri: str | None = None) -> pd.DataFrame:
    """Finished evaluation runs (one row per model run), best NDCG@10 first."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri or settings.mlflow_tracking_uri())
    client = MlflowClient()
    experiments = client.search_experiments()
    if dataset is not None:
        experiments = [e for e in experiments if e.name == dataset]
    ids = [e.experiment_id for e in experiments if e.name != "Default"]
    if not ids:
        return pd.DataFrame()
    runs = client.search_runs(ids, filter_string="attributes.status = 'FINISHED'", max_results=5000)
    names = {e.experiment_id: e.name for e in experiments}
    rows = []
    for r in runs:
        rows.append(
            {
                "dataset": names.get(r.info.experiment_id, r.info.experiment_id),
                "model": r.data.tags.get("model", r.info.run_name),
                "encoder_version": r.data.params.get("encoder_version", ""),
                **{key: r.data.params.get(key, "") for key in PROTOCOL_PARAMS},  # "" = not logged (older run)
                **{key: r.data.params.get(key, "all") for key in SAMPLE_PARAMS},
                "started": pd.Timestamp(r.info.start_time, unit="ms"),
                "run_id": r.info.run_id,
                "dagster_run_id": r.data.tags.get("dagster_run_id", ""),
                **{m: r.data.metrics.get(m) for m in COMPARE_METRICS},
            }
        )
    df = pd.DataFrame(rows)
    return df.sort_values(["dataset", "ndcg_at_10"], ascending=[True, False], na_position="last").reset_index(drop=True)


def best_earlier_ndcg(dataset: str, encoder_version: str, model: str, exclude_dagster_run: str,
                      protocol_params: dict[str, object]) -> float | None:
    """Best NDCG@10 of earlier runs of the same dataset, encoder, model and protocol, if any.

    ``protocol_params`` is ``EvaluationProtocol.as_params()`` of the current run, with its user
    samples (``holdout.user_sample_params``): a run matches only when it logged every one of them
    with the same value (MLflow keeps params as strings); an older run that lacks a protocol param
    does not match, one that lacks the sample params scored every user.
    """
    runs = list_runs(dataset)
    if runs.empty:
        return None
    same = runs[
        (runs["encoder_version"] == encoder_version)
        & (runs["model"] == model)
        & (runs["dagster_run_id"] != exclude_dagster_run)
    ]
    for key, value in protocol_params.items():
        if key not in same.columns:  # a param no run exposes: nothing is comparable
            return None
        same = same[same[key].astype(str) == str(value)]
    values = same["ndcg_at_10"].dropna()
    return float(values.max()) if len(values) else None
