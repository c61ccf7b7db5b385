"""The regression gate's comparator: only earlier runs of the very same protocol count."""

import pytest

from reclm_dagster.evaluation.offline import EvaluationProtocol
from reclm_dagster.evaluation.holdout import user_sample_params
from reclm_dagster.experiments import PROTOCOL_PARAMS, SAMPLE_PARAMS, best_earlier_ndcg, list_runs


@pytest.fixture()
def tracking_uri(tmp_path, monkeypatch):
    """A private MLflow sqlite store, used through settings like the real gate."""
    from reclm_dagster import settings

    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(settings, "mlflow_tracking_uri", lambda: uri)
    yield uri
    mlflow.set_tracking_uri(previous)  # list_runs sets it process-wide


def _log_run(uri: str, ndcg: float, params: dict, dagster_run_id: str = "earlier") -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("demo") or client.get_experiment(client.create_experiment("demo"))
    run = client.create_run(exp.experiment_id, tags={"model": "hybrid", "dagster_run_id": dagster_run_id})
    for key, value in {"encoder_version": "enc@1", **params}.items():
        client.log_param(run.info.run_id, key, value)  # stored as str(value), as log_params does
    client.log_metric(run.info.run_id, "ndcg_at_10", ndcg)
    client.set_terminated(run.info.run_id)


def test_protocol_params_are_what_the_evaluation_logs():
    assert tuple(EvaluationProtocol().as_params()) == PROTOCOL_PARAMS
    assert tuple(user_sample_params({})) == SAMPLE_PARAMS


def test_user_sample_params_name_a_sample_only_when_one_was_drawn():
    assert user_sample_params({"tuning": (1342, 200000), "test": (500, 500)}) == {
        "tuning_users": "1342 of 200000", "test_users": "all"}


def test_the_gate_compares_only_runs_scored_on_the_same_user_sample(tracking_uri):
    current = {**EvaluationProtocol().as_params(), **user_sample_params({"test": (1000, 20000)})}
    _log_run(tracking_uri, 0.40, current)
    _log_run(tracking_uri, 0.90, {**current, "test_users": "all"})  # every test user: another number
    _log_run(tracking_uri, 0.80, {**current, "test_users": "2000 of 20000"})
    _log_run(tracking_uri, 0.70, EvaluationProtocol().as_params())  # logged before the samples: every user
    assert best_earlier_ndcg("demo", "enc@1", "hybrid", "now", current) == pytest.approx(0.40)
    everyone = {**EvaluationProtocol().as_params(), **user_sample_params({})}
    assert best_earlier_ndcg("demo", "enc@1", "hybrid", "now", everyone) == pytest.approx(0.90)


def test_regression_gate_compares_only_runs_of_identical_protocol(tracking_uri):
    current = EvaluationProtocol(valid_fraction=0.1, test_fraction=0.2, seed=0).as_params()
    _log_run(tracking_uri, 0.30, current)  # the comparable one
    _log_run(tracking_uri, 0.90, {**current, "seed": 1})  # better, but another split
    _log_run(tracking_uri, 0.80, {**current, "valid_fraction": 0.2})
    _log_run(tracking_uri, 0.70, {**current, "ks": "5,10"})
    _log_run(tracking_uri, 0.60, {k: v for k, v in current.items() if k != "seed"})  # older run: no seed logged
    _log_run(tracking_uri, 0.95, current, dagster_run_id="now")  # the run being checked itself

    runs = list_runs("demo")
    assert set(PROTOCOL_PARAMS) <= set(runs.columns) and len(runs) == 6
    assert best_earlier_ndcg("demo", "enc@1", "hybrid", "now", current) == pytest.approx(0.30)
    assert best_earlier_ndcg("demo", "enc@1", "hybrid", "now", {**current, "seed": 1}) == pytest.approx(0.90)
    assert best_earlier_ndcg("demo", "enc@2", "hybrid", "now", current) is None  # another encoder
    assert best_earlier_ndcg("demo", "enc@1", "hybrid", "now", {**current, "seed": 2}) is None


def test_the_gate_reads_the_logged_params_back_from_the_stored_report():
    import json

    from reclm_dagster.defs.evaluation import reported_protocol_params

    protocol = EvaluationProtocol(method="temporal", valid_fraction=0.05, test_fraction=0.2, seed=3, ks=(10, 20),
                                  cold_item_max_train=1)
    stored = {"method": "temporal", "valid_fraction": 0.05, "test_fraction": 0.2, "seed": 3, "ks": [10, 20],
              "cold_item_max_train": 1, "name": protocol.name()}  # the report's protocol part, through JSON
    report = json.loads(json.dumps({"protocol": stored}))
    logged = {**protocol.as_params(), **user_sample_params({})}
    assert {k: str(v) for k, v in reported_protocol_params(report).items()} == {k: str(v) for k, v in logged.items()}
    sampled = json.loads(json.dumps({"protocol": {**stored, "test_users": {"scored": 1000, "of": 20000}}}))
    assert reported_protocol_params(sampled)["test_users"] == "1000 of 20000"
    assert reported_protocol_params(sampled)["tuning_users"] == "all"
