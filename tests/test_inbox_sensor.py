"""The inbox: files appended all-or-nothing to a dataset's stored tables, and the sensor that
does it exactly once. A tiny dataset in a temporary RECLM_HOME; no model, no run."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from reclm_dagster import inbox, settings, store
from reclm_dagster.datasets.schema import Dataset, validate

DS = "tiny"
SCHEMA = settings.schema_name(DS)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """RECLM_HOME with the raw tables of a 3-item dataset, stored as raw_dataset stores them."""
    monkeypatch.setenv("RECLM_HOME", str(tmp_path))
    ds = validate(Dataset(
        name=DS,
        items=pd.DataFrame({"item_id": ["i1", "i2", "i3"], "title": ["A", "B", "C"], "domain": ["audio"] * 3}),
        interactions=pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "weight": [2.0, 1.0], "timestamp": [100, None]}),
        descriptions=pd.DataFrame({"description_id": ["d1"], "user_id": ["u1"], "item_id": ["i1"], "kind": ["tag"], "text": ["rock"]}),
    ))
    with duckdb.connect(str(settings.duckdb_path())) as con:
        store.replace_tables(con, SCHEMA, {"items": ds.items, "interactions": ds.interactions, "descriptions": ds.descriptions})
    (tmp_path / "inbox" / DS).mkdir(parents=True)
    return tmp_path


def drop(home, name: str, text: str, dataset: str = DS):
    path = home / "inbox" / dataset / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def table(name: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.duckdb_path())) as con:
        return store.read_df(con, SCHEMA, name).sort_values(list(store.read_df(con, SCHEMA, name).columns[:2])).reset_index(drop=True)


def ingest(path):
    with duckdb.connect(str(settings.duckdb_path())) as con:
        return inbox.ingest_file(con, DS, path)


# ---------------------------------------------------------------- ingest_file

def test_interactions_appended_and_duplicates_follow_the_schema_rule(home):
    path = drop(home, "interactions_0601.csv", "user_id,item_id,weight,timestamp\nu1,i1,5,200\nu3,i3,1,\nu3,i3,4,300\n")
    result = ingest(path)
    assert result.accepted and (result.inserted, result.updated) == (1, 1)
    rows = table("interactions").set_index(["user_id", "item_id"])
    assert rows.loc[("u1", "i1"), "weight"] == 5 and rows.loc[("u1", "i1"), "timestamp"] == 200  # max weight, latest ts
    assert rows.loc[("u3", "i3"), "weight"] == 4 and rows.loc[("u3", "i3"), "timestamp"] == 300  # collapsed in the file too
    assert rows.loc[("u2", "i2"), "weight"] == 1 and len(rows) == 3
    again = ingest(path)  # the ledger remembers the content: applying twice changes nothing
    assert again.already_ingested and again.inserted == 0
    assert len(table("interactions")) == 3 and table("interactions")["weight"].sum() == 10


def test_a_bad_row_rejects_the_whole_file_and_names_every_bad_line(home):
    text = "user_id,item_id,weight,timestamp\nu9,i2,3,\nu1,i2,abc,\nu1,i404,1,\n,i3,1,\nu2,i3,1,yesterday\nu2,i3,1\n"
    path = drop(home, "interactions_bad.csv", text)
    before_i, before_d = table("interactions"), table("descriptions")
    result = ingest(path)
    assert not result.accepted
    got = {(p.line, p.field, p.reason) for p in result.problems}
    assert got == {
        (3, "weight", "not a number"),
        (4, "item_id", "unknown item"),
        (5, "user_id", "missing id"),
        (6, "timestamp", "not a unix timestamp or date"),
        (7, "*", "expected 4 fields, found 3"),
    }
    pd.testing.assert_frame_equal(table("interactions"), before_i)  # u9's good row was not kept either
    pd.testing.assert_frame_equal(table("descriptions"), before_d)
    dest = inbox.settle(path, result)
    assert dest == home / "inbox" / DS / "rejected" / "interactions_bad.csv" and not path.exists()
    reason = (dest.parent / "interactions_bad.csv.reason.txt").read_text()
    for line in (3, 4, 5, 6, 7):
        assert f"interactions_bad.csv line {line}, field" in reason


def test_descriptions_appended_and_id_collisions_rejected(home):
    bad = drop(home, "descriptions_a.csv", "description_id,user_id,item_id,kind,text\nd1,u2,i2,tag,jazz\nd2,u2,,request,calm\n,u2,i3,tag,x\n")
    problems = {(p.line, p.field, p.reason) for p in ingest(bad).problems}
    assert problems == {(2, "description_id", "description_id already stored"), (4, "description_id", "missing id")}
    assert len(table("descriptions")) == 1

    good = drop(home, "descriptions_b.csv", "description_id,user_id,item_id,kind,text,rating\nd2,u2,,request,something calm,\nd3,u3,i3,review,great,4.5\n")
    result = ingest(good)
    assert result.accepted and result.inserted == 2
    rows = table("descriptions").set_index("description_id")
    assert rows.loc["d2", "item_id"] is None and rows.loc["d3", "rating"] == 4.5 and rows.loc["d3", "kind"] == "review"


def test_descriptions_into_a_dataset_stored_without_any(home):
    # An empty frame is stored with DuckDB's "NULL"-typed columns, which accept no insert.
    with duckdb.connect(str(settings.duckdb_path())) as con:
        store.replace_tables(con, SCHEMA, {"descriptions": validate(Dataset(name=DS)).descriptions})
    path = drop(home, "descriptions_first.csv", "description_id,user_id,item_id,kind,text,rating,timestamp\nd1,u1,,request,upbeat,,2024-01-02\n")
    result = ingest(path)
    assert result.accepted and result.inserted == 1
    row = table("descriptions").iloc[0]
    assert (row["description_id"], row["text"], row["timestamp"]) == ("d1", "upbeat", 1704153600)


def test_parquet_and_missing_columns(home):
    path = home / "inbox" / DS / "interactions_p.parquet"
    pd.DataFrame({"user_id": [7], "item_id": ["i2"], "weight": [2.0], "timestamp": pd.to_datetime(["2024-03-01"])}).to_parquet(path)
    assert ingest(path).accepted
    row = table("interactions").query("user_id == '7'").iloc[0]
    assert row["timestamp"] == 1709251200  # datetimes stored as unix seconds, not nanoseconds
    no_weight = drop(home, "interactions_nw.csv", "user_id,item_id\nu1,i3\n")
    (problem,) = ingest(no_weight).problems
    assert (problem.line, problem.field) == (1, "weight") and "required column missing" in problem.reason


# ---------------------------------------------------------------- the sensor

@pytest.fixture(scope="module")
def dagster_env():
    """The loaded definitions and a throwaway instance, shared by the sensor tests (slow to build)."""
    from reclm_dagster.definitions import build_definitions

    repo = build_definitions().get_repository_def()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", [DS])
        yield repo, instance


@pytest.fixture
def evaluate(home, dagster_env):
    """Evaluate inbox_sensor as the daemon would: a cursor carried from tick to tick."""
    from reclm_dagster.defs.sensors import inbox_sensor

    repo, instance = dagster_env

    def tick(cursor=None):
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, repository_def=repo,
            resources={"duckdb": DuckDBResource(database=str(settings.duckdb_path()))},
        )
        result = inbox_sensor(ctx)
        if isinstance(result, dg.SkipReason):
            return [], cursor, result
        return result.run_requests or [], result.cursor, result.skip_reason

    return tick


def test_sensor_requests_one_downstream_run_and_processes_each_file_once(home, evaluate):
    path = drop(home, "interactions_1.csv", "user_id,item_id,weight\nu4,i1,1\n")
    sha = inbox.sha256_file(path)
    (request,), cursor, _ = evaluate()
    assert request.partition_key == DS and request.run_key == sha
    selected = {k.to_user_string() for k in request.asset_selection}
    assert {"text_tokens", "text_embeddings", "recommendations", "evaluation"} <= selected
    assert not selected & {"items", "interactions", "descriptions", "quarantine"}  # raw reload would drop the rows
    assert (home / "inbox" / DS / "processed" / "interactions_1.csv").exists() and not path.exists()
    assert len(table("interactions")) == 3

    # Restart: same cursor, nothing new -> nothing requested.
    requests, cursor2, skip = evaluate(cursor)
    assert requests == [] and skip is not None
    # The same content copied back is skipped, whatever its name, and nothing is appended twice.
    shutil.copy(home / "inbox" / DS / "processed" / "interactions_1.csv", home / "inbox" / DS / "interactions_1_again.csv")
    requests, _, _ = evaluate(cursor2)
    assert requests == [] and len(table("interactions")) == 3
    assert not (home / "inbox" / DS / "interactions_1_again.csv").exists()


def test_sensor_recovers_a_file_committed_before_a_crash(home, evaluate):
    # A tick that committed the rows but died before moving the file and saving its cursor.
    path = drop(home, "descriptions_x.csv", "description_id,user_id,item_id,kind,text\nd9,u1,i2,tag,indie\n")
    assert ingest(path).accepted
    (request,), cursor, _ = evaluate(None)
    assert request.run_key == inbox.sha256_file(home / "inbox" / DS / "processed" / "descriptions_x.csv")
    assert len(table("descriptions")) == 2  # not appended again (d9 would collide anyway)
    assert "descriptions_x.csv" in cursor


def test_sensor_rejects_bad_files_and_skips_unknown_datasets(home, evaluate):
    drop(home, "interactions_bad.csv", "user_id,item_id,weight\nu1,nope,1\n")
    waiting = drop(home, "interactions.csv", "user_id,item_id,weight\nu1,i1,1\n", dataset="not-stored-yet")
    requests, cursor, skip = evaluate()
    assert requests == []
    assert "not-stored-yet" in skip.skip_message
    assert (home / "inbox" / DS / "rejected" / "interactions_bad.csv.reason.txt").exists()
    assert waiting.exists()  # left for when the dataset exists
    assert "interactions_bad.csv" not in cursor  # a fixed catalogue may accept it later


def test_a_rebuild_of_the_raw_tables_replays_what_the_inbox_accepted(home):
    """raw_dataset reloads the source folder; files the inbox accepted must come back on top."""
    path = drop(home, "interactions_new.csv", "user_id,item_id,weight\nu9,i3,4\n")
    result = ingest(path)
    assert result.accepted
    inbox.settle(path, result)
    before = table("interactions")
    assert "u9" in set(before["user_id"])
    # the rebuild: the source's two interactions only
    with duckdb.connect(str(settings.duckdb_path())) as con:
        store.replace_tables(con, SCHEMA, {"interactions": before[before["user_id"] != "u9"]})
        replayed = inbox.replay_processed(con, DS)
    assert [r.accepted for r in replayed] == [True]
    after = table("interactions")
    assert len(after) == len(before) and "u9" in set(after["user_id"])
    # replaying does not write the ledger twice: the sensor still sees the file as done
    with duckdb.connect(str(settings.duckdb_path())) as con:
        assert inbox.already_ingested(con, DS, result.sha256)
        assert con.execute(f"SELECT count(*) FROM {inbox.LEDGER}").fetchall()[0][0] == 1


def test_a_rebuild_between_a_ticks_commit_and_its_move_applies_the_file_exactly_once(home, evaluate):
    """Issue 14.4: the inbox sensor and a manual run at the same time. The tick committed a
    file's rows, then a manual run rebuilt the raw tables before the tick moved the file to
    processed/. Replaying from the folder lost the rows (0 times); the ledger replays them once."""
    path = drop(home, "interactions_race.csv", "user_id,item_id,weight\nu7,i3,2\n")
    sha = inbox.sha256_file(path)
    assert ingest(path).accepted  # the tick's commit; the file is still in the inbox folder
    source = table("interactions")
    source = source[source["user_id"] != "u7"]
    with duckdb.connect(str(settings.duckdb_path())) as con:  # the manual run's raw_dataset
        store.replace_tables(con, SCHEMA, {"interactions": source})
        assert [r.accepted for r in inbox.replay_processed(con, DS)] == [True]
    assert (table("interactions")["user_id"] == "u7").sum() == 1
    (request,), cursor, _ = evaluate()  # the tick goes on: moves the file, requests its run once
    assert request.run_key == sha and (table("interactions")["user_id"] == "u7").sum() == 1
    assert evaluate(cursor)[0] == []
    with duckdb.connect(str(settings.duckdb_path())) as con:  # and a later rebuild still has it once
        store.replace_tables(con, SCHEMA, {"interactions": source})
        inbox.replay_processed(con, DS)
    assert (table("interactions")["user_id"] == "u7").sum() == 1


def test_an_accepted_file_that_disappeared_is_named_by_the_rebuild(home):
    path = drop(home, "interactions_gone.csv", "user_id,item_id,weight\nu8,i3,2\n")
    assert ingest(path).accepted
    path.unlink()
    with duckdb.connect(str(settings.duckdb_path())) as con:
        (result,) = inbox.replay_processed(con, DS)
    assert not result.accepted and "interactions_gone.csv" in result.reason_text() and "no longer" in result.reason_text()


_KILLED_APPEND = """
import os, signal, sys
import duckdb
from reclm_dagster import inbox, settings
real = inbox._append
def append_then_die(*args, **kwargs):
    real(*args, **kwargs)  # the rows are in the table, the ledger row and the COMMIT not yet
    os.kill(os.getpid(), signal.SIGKILL)
inbox._append = append_then_die
with duckdb.connect(str(settings.duckdb_path())) as con:
    inbox.ingest_file(con, sys.argv[1], sys.argv[2])
"""


def test_kill_9_in_the_middle_of_an_append_leaves_nothing_and_the_next_tick_applies_it_once(home, evaluate):
    """Issue 14.3: SIGKILL between the rows' INSERT and the COMMIT (a real process, really killed)."""
    import subprocess
    import sys

    path = drop(home, "interactions_killed.csv", "user_id,item_id,weight\nu6,i3,2\nu6,i1,1\n")
    before = table("interactions")
    proc = subprocess.run([sys.executable, "-c", _KILLED_APPEND, DS, str(path)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-500:]
    assert table("interactions").equals(before) and path.exists()  # the store opens; nothing half-appended
    (request,), cursor, _ = evaluate()
    assert request.run_key == inbox.sha256_file(home / "inbox" / DS / "processed" / "interactions_killed.csv")
    assert (table("interactions")["user_id"] == "u6").sum() == 2 and len(table("interactions")) == len(before) + 2


# ---------------------------------------------------------------- poison files (issue 14, defect 4b)

def test_a_duplicated_column_rejects_the_file_instead_of_raising(home):
    # Before: a TypeError out of validate() (df["weight"] was two columns), so the sensor raised.
    path = drop(home, "interactions_dup.csv", 'user_id,item_id,weight,weight\n"u1",i2,1,2\n')
    result = ingest(path)
    assert not result.accepted and "'weight' appears twice" in str(result.problems[0])


def _poison(monkeypatch, name: str, exc: Exception):
    """ingest_file raises ``exc`` for one file: any case the validation does not foresee."""
    real = inbox.ingest_file

    def fake(con, dataset, path, *args, **kwargs):
        if path.name == name:
            raise exc
        return real(con, dataset, path, *args, **kwargs)

    monkeypatch.setattr(inbox, "ingest_file", fake)
    return real


def test_a_poison_file_is_rejected_and_the_files_around_it_get_their_run(home, evaluate, monkeypatch):
    good = [drop(home, f"interactions_{n}.csv", f"user_id,item_id,weight\nu{n},i{n},1\n") for n in (1, 3)]
    drop(home, "interactions_2.csv", "user_id,item_id,weight\nu2,i2,1\n")
    drop(home, "interactions_4.csv", "user_id,item_id,weight,timestamp\nu4,i1,1,1e30\n")  # the value
    _poison(monkeypatch, "interactions_2.csv", TypeError("cannot safely cast non-equivalent float64 to int64"))
    (request,), cursor, _ = evaluate()
    # one run for both accepted files, whatever came between them
    assert request.tags["reclm/inbox_files"] == "interactions_1.csv, interactions_3.csv"
    rejected = home / "inbox" / DS / "rejected"
    reason = (rejected / "interactions_2.csv.reason.txt").read_text()
    assert "TypeError: cannot safely cast" in reason and "nothing was stored" in reason
    assert "timestamp out of range" in (rejected / "interactions_4.csv.reason.txt").read_text()
    assert sorted(p.name for p in (home / "inbox" / DS / "processed").iterdir()) == [p.name for p in good]
    assert inbox.pending_files(home / "inbox" / DS) == []
    assert set(table("interactions")["user_id"]) == {"u1", "u2", "u3"}  # u2 of the store, not of the poison file
    assert "interactions_1.csv" in cursor and "interactions_3.csv" in cursor and "interactions_2.csv" not in cursor
    requests, _, skip = evaluate(cursor)  # the next tick has nothing left to trip over
    assert requests == [] and skip is not None


def test_a_database_fault_keeps_the_runs_of_committed_files_and_retries_the_rest(home, evaluate, monkeypatch):
    for n in (1, 2, 3):
        drop(home, f"interactions_{n}.csv", f"user_id,item_id,weight\nu{n}{n},i{n},1\n")
    real = _poison(monkeypatch, "interactions_2.csv", duckdb.IOException("disk I/O error"))
    (request,), cursor, _ = evaluate()
    assert request.tags["reclm/inbox_files"] == "interactions_1.csv"  # committed, so requested
    waiting = [p.name for p in inbox.pending_files(home / "inbox" / DS)]
    assert waiting == ["interactions_2.csv", "interactions_3.csv"]  # not rejected: the file was not at fault
    monkeypatch.setattr(inbox, "ingest_file", real)  # the disk is back
    (request,), _, _ = evaluate(cursor)
    assert request.tags["reclm/inbox_files"] == "interactions_2.csv, interactions_3.csv"
    assert {"u11", "u22", "u33"} <= set(table("interactions")["user_id"])
