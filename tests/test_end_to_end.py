"""The whole asset graph on the bundled demo data, with the real MiniLM encoder, into a temporary RECLM_HOME."""

import json
import os
import subprocess
import sys

import duckdb
import pytest

from reclm_dagster import settings
from reclm_dagster.cli import main

pytestmark = pytest.mark.e2e

PHONE = "这款手机电池续航能力强，拍照效果好"
LAPTOP = "这个笔记本轻薄便携，性能稳定"


@pytest.fixture()
def materialized(demo_home, monkeypatch):
    monkeypatch.setenv("RECLM_HOME", str(demo_home))
    return demo_home


def _con():
    return duckdb.connect(str(settings.duckdb_path()), read_only=True)


def test_every_step_wrote_its_table(materialized):
    expected = {
        "items", "interactions", "descriptions", "catalogue_facts", "user_links", "quarantine",
        "text_tokens", "text_embeddings", "item_similarity", "user_item_scores",
        "kg_entities", "kg_triples", "recommendations", "evaluation_metrics", "evaluation_split",
    }
    with _con() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'ds_demo'").fetchall()}
        assert expected <= tables
        n_items = con.execute("SELECT count(*) FROM ds_demo.items").fetchone()[0]
        n_desc = con.execute("SELECT count(*) FROM ds_demo.descriptions").fetchone()[0]
        # one embedding per item and per description, all from one encoder version
        n_emb, versions = con.execute("SELECT count(*), count(DISTINCT encoder_version) FROM ds_demo.text_embeddings").fetchone()
        assert n_emb == n_items + n_desc and versions == 1
        assert n_items >= 60


def test_recommendation_lists_are_personal_and_explained(materialized):
    with _con() as con:
        consumed = con.execute(
            "SELECT count(*) FROM ds_demo.recommendations r JOIN ds_demo.interactions x USING (user_id, item_id)"
        ).fetchone()[0]
        assert consumed == 0
        n_users, n_lists = con.execute(
            "SELECT (SELECT count(DISTINCT user_id) FROM ds_demo.interactions), count(DISTINCT user_id) FROM ds_demo.recommendations"
        ).fetchone()
        assert n_lists == n_users
        # lists differ between users: not a popularity list for everyone
        distinct_tops = con.execute("SELECT count(DISTINCT item_id) FROM ds_demo.recommendations WHERE rank = 1").fetchone()[0]
        assert distinct_tops > 5
        empty = con.execute("SELECT count(*) FROM ds_demo.recommendations WHERE explanation IS NULL OR explanation = ''").fetchone()[0]
        assert empty == 0


def test_evaluation_is_logged_to_a_finished_mlflow_run(materialized):
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri())
    runs = mlflow.search_runs(experiment_names=["demo"], output_format="list")
    by_model = {r.data.tags["model"]: r for r in runs}
    assert {"hybrid", "cf", "text", "lexical", "pop", "itemknn", "rp3beta", "ease"} <= set(by_model)
    hybrid = by_model["hybrid"]
    assert hybrid.info.status == "FINISHED"
    for key in ("ndcg_at_10", "recall_at_10", "recall_at_20", "precision_at_10"):
        assert 0.0 <= hybrid.data.metrics[key] <= 1.0
    assert hybrid.data.params["encoder_version"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    assert hybrid.data.tags["dagster_run_id"] and hybrid.data.tags["git_commit"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(hybrid.info.run_id)}
    assert {"metrics.csv", "metrics_at_k.png", "popularity_bias.png"} <= artifacts
    # the demo's users have learnable tastes: the hybrid must beat popularity on held-out pairs
    assert hybrid.data.metrics["ndcg_at_10"] > by_model["pop"].data.metrics["ndcg_at_10"]


def _rank(rows, item_id):
    ids = [r["item_id"] for r in rows]
    return ids.index(item_id) if item_id in ids else len(ids)


def test_seed_case_chinese_requests_rank_the_right_product(materialized, capsys):
    assert main(["recommend", "--query", PHONE, "-k", "60", "--json"]) == 0
    phone = json.loads(capsys.readouterr().out)
    assert _rank(phone, "P40") < _rank(phone, "MacBook")
    assert main(["recommend", "--query", LAPTOP, "-k", "60", "--json"]) == 0
    laptop = json.loads(capsys.readouterr().out)
    assert _rank(laptop, "MacBook") < _rank(laptop, "P40")
    top = phone[0]
    assert set(top) >= {"rank", "item_id", "title", "score", "scores", "explanation", "linked"}
    # the request's words are linked to KG entities with their spans (jieba-free: a dictionary scan)
    linked = {m["surface"]: m for m in top["linked"]}
    assert "电池续航" in linked and PHONE[linked["电池续航"]["start"]:linked["电池续航"]["end"]] == "电池续航"
    p40 = phone[_rank(phone, "P40")]
    assert "电池续航" in p40["explanation"]  # P40 has that feature in the graph, and says so
    # MiniLM reads most of these characters as [UNK]: the request is ranked by words and entities,
    # never by a meaningless cosine, and every explanation says why
    assert all("encoder cannot read this request" in r["explanation"] for r in phone)
    assert all("Close in meaning" not in r["explanation"] for r in phone)


def test_user_recommendations_from_the_cli(materialized, capsys):
    with _con() as con:
        user = con.execute("SELECT min(user_id) FROM ds_demo.recommendations").fetchone()[0]
    assert main(["recommend", "--user", user, "-k", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["explanation"] for r in rows)


def test_personalised_request_blends_the_users_list_and_skips_what_they_consumed(materialized, capsys):
    with _con() as con:
        user = con.execute("SELECT min(user_id) FROM ds_demo.recommendations").fetchone()[0]
        consumed = {r[0] for r in con.execute("SELECT item_id FROM ds_demo.interactions WHERE user_id = ?", [user]).fetchall()}
        candidates = {r[0] for r in con.execute("SELECT item_id FROM ds_demo.user_item_scores WHERE user_id = ?", [user]).fetchall()}
    query = "a funny space adventure with robots"
    assert main(["recommend", "--query", query, "--user", user, "-k", "10", "--json"]) == 0
    personal = json.loads(capsys.readouterr().out)
    assert main(["recommend", "--query", query, "-k", "60", "--json"]) == 0
    anyone = json.loads(capsys.readouterr().out)
    assert personal and not {r["item_id"] for r in personal} & consumed
    assert all("user" in r["scores"] for r in personal)
    # the blend favours the user's own candidates: more of them in the personal top 10 than in anyone's
    share = lambda rows: sum(r["item_id"] in candidates for r in rows[:10])
    assert share(personal) >= share([r for r in anyone if r["item_id"] not in consumed])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--dataset", "no-such-dataset"], "unknown dataset 'no-such-dataset'"),
        (["recommend", "--user", "nobody-42"], "unknown user 'nobody-42'"),
        (["recommend", "--query", "   "], "empty query"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(materialized, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_definitions_load_as_dagster_dev_loads_them(tmp_path):
    env = {**os.environ, "RECLM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=settings.PACKAGE_DIR.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
