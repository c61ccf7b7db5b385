"""`reclm eval`, `reclm compare` and the NDCG regression check, on the materialized demo."""

import json
import math

import pytest

from reclm_dagster import settings
from reclm_dagster.cli import main
from reclm_dagster.evaluation.holdout import EvaluationProtocol
from reclm_dagster.experiments import PROTOCOL_PARAMS

pytestmark = pytest.mark.e2e

BASELINES = {"pop", "itemknn", "rp3beta", "ease"}


@pytest.fixture()
def home(demo_home, monkeypatch):
    monkeypatch.setenv("RECLM_HOME", str(demo_home))
    return demo_home


def test_eval_json_on_the_reference_protocol(home, capsys):
    argv = ["eval", "--dataset", "demo", "--valid-fraction", "0", "--test-fraction", "0.2", "--seed", "0", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "demo"
    assert report["protocol"]["test_fraction"] == 0.2 and report["protocol"]["valid_fraction"] == 0.0
    assert {"hybrid", "cf", "text", "lexical"} | BASELINES <= set(report["models"])
    hybrid = report["models"]["hybrid"]
    # null in the JSON stands for NaN; all are fractions but novelty (mean self-information, bits)
    for key in ("ndcg@10", "recall@20", "precision@5", "map@10", "mrr@10", "hit@10", "f1@10", "coverage@10", "novelty@10"):
        value = hybrid[key]
        upper = math.inf if key.startswith("novelty") else 1.0
        assert value is not None and math.isfinite(value) and 0 <= value <= upper, (key, value)
    assert set(hybrid["cold"]) >= {"ndcg@10", "recall@20"}
    # with no validation split, EASE falls back to its documented default
    assert report["models"]["ease"]["params"] == {"l2": 200.0}
    # every test pair was held out of training
    assert report["split"]["n_test"] > 0 and report["split"]["n_valid"] == 0


def test_eval_table_and_compare(home, capsys):
    assert main(["eval", "--dataset", "demo", "--queries"]) == 0
    table = capsys.readouterr().out
    assert "NDCG@10" in table and "hybrid" in table and "ease" in table
    assert "NDCG@10 hybrid/ease:" in table
    # the language model's own contribution: the hybrid against itself without the transformer
    assert "hybrid/hybrid@lexical:" in table and "hybrid/hybrid-notext:" in table
    # the cold-user protocol and the free-text request comparison are printed too
    assert "cold users (" in table and "n=0 NDCG@10" in table and "hybrid/ease" in table
    assert "free-text requests:" in table and "bm25" in table and "encoder" in table
    assert main(["compare", "--dataset", "demo", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in runs} >= {"hybrid", "hybrid@lexical", "hybrid-notext"} | BASELINES
    # each ablation is its own MLflow run, tagged with the encoder it ran with
    versions = {r["model"]: r["encoder_version"] for r in runs}
    assert versions["hybrid@lexical"].startswith("reclm/hashed-bag-of-words@")
    assert versions["hybrid-notext"] == versions["hybrid"] != versions["hybrid@lexical"]
    ndcg = [r["ndcg_at_10"] for r in runs]
    assert ndcg == sorted(ndcg, reverse=True)  # best first


def test_regression_check_blocks_a_worse_model(home, capsys):
    """An earlier run of the same dataset, encoder and protocol that was far better makes the
    blocking check fail, so `reclm eval` exits non-zero and says which check failed."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri())
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("demo")
    hybrid = client.search_runs([exp.experiment_id], filter_string="tags.model = 'hybrid'", max_results=1)[0]
    # the demo is below both cell budgets: every validation and test user was scored, and the run says so
    assert {k: hybrid.data.params[k] for k in ("tuning_users", "test_users")} == {"tuning_users": "all", "test_users": "all"}
    assert int(hybrid.data.params["test_max_cells"]) == EvaluationProtocol().test_max_cells
    fake = client.create_run(exp.experiment_id, tags={"model": "hybrid", "dataset": "demo", "dagster_run_id": "earlier"})
    for key in ("encoder_version", *PROTOCOL_PARAMS):  # only a run of the very same protocol is a comparator
        client.log_param(fake.info.run_id, key, hybrid.data.params[key])
    client.log_metric(fake.info.run_id, "ndcg_at_10", min(1.0, hybrid.data.metrics["ndcg_at_10"] * 1.5))
    client.set_terminated(fake.info.run_id)
    try:
        assert main(["eval", "--dataset", "demo"]) == 2
        err = capsys.readouterr().err
        assert "ndcg_not_regressed" in err
    finally:
        client.delete_run(fake.info.run_id)
    assert main(["eval", "--dataset", "demo"]) == 0


def test_encoder_comparison_tracks_each_encoder_as_its_own_runs(demo_home, tmp_path, monkeypatch, capsys):
    # a copy of the materialized demo, so re-embedding does not touch the shared one
    import shutil

    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    monkeypatch.setenv("RECLM_HOME", str(home))  # `reclm run` logged the packaged MiniLM's runs there
    assert main(["eval", "--dataset", "demo", "--encoder", "lexical"]) == 0  # re-embeds: another encoder
    capsys.readouterr()
    assert main(["compare", "--dataset", "demo", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    versions = {r["encoder_version"] for r in runs if r["model"] == "text"}
    assert any(v.startswith("reclm/hashed-bag-of-words@") for v in versions)
    assert any("MiniLM" in v for v in versions)
    # The encoder is the dataset's setting: runs that name none (schedule, sensor, UI, the CLI
    # without --encoder) keep it, and `recommend --query` reads requests with it.
    import duckdb

    from reclm_dagster import settings
    from reclm_dagster.cli import _embedded_with, _execute
    from reclm_dagster.encoders.registry import stored_encoder_spec

    _execute("demo", None, "WARNING", asset_names=["text_tokens", "text_embeddings"])  # as the nightly refresh does
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        schema = settings.schema_name("demo")
        assert stored_encoder_spec(con, schema) == "lexical"
        stored = con.execute(f'SELECT DISTINCT encoder_version FROM "{schema}".text_embeddings').fetchall()
        tokenizers = con.execute(f'SELECT DISTINCT tokenizer FROM "{schema}".text_tokens').fetchall()
    assert [v for (v,) in stored] == [v for (v,) in tokenizers] and stored[0][0].startswith("reclm/hashed-bag-of-words@")
    assert _embedded_with("demo", None) and not _embedded_with("demo", "")  # '' = --encoder default (MiniLM)
    capsys.readouterr()
    assert main(["recommend", "--dataset", "demo", "--query", "robots in space", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
