"""Issue 14: a re-run that replaced the raw tables and then failed never leaves lists that
silently disagree with them. `reclm recommend --user` still answers from the old lists, and
says in one stderr line that they are stale, which run built them and where the last one failed."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from reclm_dagster import settings, store
from reclm_dagster.cli import main
from reclm_dagster.datasets import INGEST_INFO_TABLE

RECS = pd.DataFrame({
    "user_id": ["u1"] * 2, "rank": [1, 2], "item_id": ["a", "b"], "title": ["A", "B"],
    "domain": ["video"] * 2, "score": [2.0, 1.0], "facts": ["{}"] * 2, "explanation": ["why"] * 2,
})


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))  # restored after the test
    settings.reclm_home().mkdir(parents=True)
    return tmp_path


def write_store(ingest: dict | None, lists: dict | None) -> None:
    tables = {"recommendations": RECS}
    if ingest is not None:
        tables[INGEST_INFO_TABLE] = pd.DataFrame({"loader_version": [1], "dataset": ["tiny"], **{k: [v] for k, v in ingest.items()}})
    if lists is not None:
        tables[store.LISTS_INFO_TABLE] = pd.DataFrame({k: [v] for k, v in lists.items()})
    with duckdb.connect(str(settings.duckdb_path())) as con:
        store.replace_tables(con, settings.schema_name("tiny"), tables)


@pytest.mark.parametrize("case, ingest, lists, stale", [
    ("built from these tables", {"run_id": "run-new", "fingerprint": "F2"}, {"run_id": "run-old", "fingerprint": "F2"}, False),
    ("tables replaced since", {"run_id": "run-new", "fingerprint": "F2"}, {"run_id": "run-old", "fingerprint": "F1"}, True),
    ("replay never finished", {"run_id": "run-new", "fingerprint": None}, {"run_id": "run-old", "fingerprint": None}, True),
    ("lists older than markers", {"run_id": "run-new", "fingerprint": "F2"}, None, True),
    ("store older than markers", {}, None, False),
    ("no ingest info at all", None, None, False),
])
def test_recommend_says_when_lists_are_stale(home, capsys, case, ingest, lists, stale):
    write_store(ingest, lists)
    assert main(["recommend", "--dataset", "tiny", "--user", "u1", "--json"]) == 0
    out = capsys.readouterr()
    assert [r["item_id"] for r in json.loads(out.out)] == ["a", "b"]  # still answers, stdout stays JSON
    if not stale:
        assert out.err == ""
        return
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reclm: warning: the stored lists of 'tiny' are stale"), out.err
    assert "run run-new replaced the raw tables" in lines[0] and "`reclm run --dataset tiny` rebuilds them" in lines[0]
    assert ("built by run run-old" if lists else "built before reclm recorded") in lines[0]


def test_an_unknown_user_is_still_one_line(home, capsys):
    write_store({"run_id": "run-new", "fingerprint": "F2"}, {"run_id": "run-old", "fingerprint": "F1"})
    assert main(["recommend", "--dataset", "tiny", "--user", "nobody"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown user 'nobody'" in err[0]


def write_catalogue(folder, n_users: int = 30, n_items: int = 24, per_user: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"i{i},Item number {i},{('video', 'audio')[i % 2]}\n" for i in range(n_items))
    (folder / "items.csv").write_text("item_id,title,domain\n" + rows, encoding="utf-8")
    rng = np.random.default_rng(0)
    pairs = [(u, i) for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False)]
    (folder / "interactions.csv").write_text("user_id,item_id\n" + "".join(f"u{u},i{i}\n" for u, i in pairs), encoding="utf-8")


RAW = ["items", "interactions", "descriptions", "catalogue_facts", "user_links", "quarantine"]


@pytest.mark.e2e
def test_a_failed_rerun_leaves_lists_marked_stale(home, capsys, monkeypatch):
    import dagster as dg
    from mlflow.tracking import MlflowClient

    from reclm_dagster import cli, recovery

    monkeypatch.delenv("MLFLOW_RUN_CONTEXT", raising=False)
    folder = home / "data" / "tiny"
    write_catalogue(folder)
    assert main(["run", "--dataset", "tiny"]) == 0
    capsys.readouterr()
    assert main(["recommend", "--dataset", "tiny", "--user", "u0", "--json"]) == 0
    fresh = capsys.readouterr()
    assert fresh.err == "" and len(json.loads(fresh.out)) == 10

    # the runs reclm started name their process, so a later run can tell if it was killed
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    assert runs and all(r.tags.get(recovery.PID_TAG) for r in runs)
    client = MlflowClient(settings.mlflow_tracking_uri())
    mlflow_runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert mlflow_runs and all(r.data.tags.get(recovery.PID_TAG) for r in mlflow_runs)

    # the same files ingested again (as `reclm eval` does): same content, lists still current
    cli._execute("tiny", None, "WARNING", asset_names=RAW)
    assert main(["recommend", "--dataset", "tiny", "--user", "u0"]) == 0
    assert capsys.readouterr().err == ""

    # interactions now empty: the re-run replaces the raw tables, then fails
    (folder / "interactions.csv").write_text("user_id,item_id\n", encoding="utf-8")
    assert main(["run", "--dataset", "tiny"]) == 2
    capsys.readouterr()
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        assert con.execute(f'SELECT count(*) FROM "{settings.schema_name("tiny")}".interactions').fetchone()[0] == 0
    assert main(["recommend", "--dataset", "tiny", "--user", "u0", "--json"]) == 0
    stale = capsys.readouterr()
    assert json.loads(stale.out) == json.loads(fresh.out)  # the old answer, not a broken one
    lines = stale.err.strip().splitlines()
    assert len(lines) == 1 and "the stored lists of 'tiny' are stale" in lines[0], stale.err
    assert "failed at step " in lines[0] and "`reclm run --dataset tiny` rebuilds them" in lines[0]


def test_an_inbox_append_marks_the_lists_stale_until_its_run_rebuilds_them(home, capsys):
    """Files the inbox appends change the raw tables without an ingest run: the fingerprint moves
    with them (same transaction), so the lists built before are flagged, naming the file."""
    from reclm_dagster import inbox

    schema = settings.schema_name("tiny")
    from reclm_dagster.datasets.schema import Dataset, validate

    ds = validate(Dataset(  # stored as the ingest asset stores them
        name="tiny",
        items=pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"], "domain": ["video"] * 2}),
        interactions=pd.DataFrame({"user_id": ["u1"], "item_id": ["a"], "weight": [1.0], "timestamp": [1]}),
        descriptions=pd.DataFrame({"description_id": ["d1"], "user_id": ["u1"], "item_id": ["a"], "kind": ["tag"],
                                   "text": ["rock"]}),
    ))
    with duckdb.connect(str(settings.duckdb_path())) as con:
        store.replace_tables(con, schema, {"items": ds.items, "interactions": ds.interactions,
                                           "descriptions": ds.descriptions, "recommendations": RECS})
        fp = store.tables_fingerprint(con, schema)
        store.replace_tables(con, schema, {
            INGEST_INFO_TABLE: pd.DataFrame({"loader_version": [2], "dataset": ["tiny"], "run_id": ["run-1"], "fingerprint": [fp]}),
            store.LISTS_INFO_TABLE: pd.DataFrame({"run_id": ["run-1"], "fingerprint": [fp]})})
    assert main(["recommend", "--dataset", "tiny", "--user", "u1"]) == 0 and capsys.readouterr().err == ""
    path = home / "inbox" / "tiny" / "interactions_0601.csv"
    path.parent.mkdir(parents=True)
    path.write_text("user_id,item_id,weight,timestamp\nu2,b,1,5\n")
    with duckdb.connect(str(settings.duckdb_path())) as con:
        assert inbox.ingest_file(con, "tiny", path).accepted
    assert main(["recommend", "--dataset", "tiny", "--user", "u1"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "stale" in lines[0] and "'interactions_0601.csv' was appended" in lines[0], lines
