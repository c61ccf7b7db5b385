"""The `reclm` command's contract: arguments checked up front; a user's mistake is one line on
stderr and exit 2; an unexpected error is exit 1 with one line saying where to look; --debug
shows the traceback; JSON answers stay bounded; --dataset is a name, not a path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from reclm_dagster import serving, settings, store
from reclm_dagster.cli import main


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A store with stored lists for user 'u1' of dataset 'tiny' (no Dagster run needed)."""
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECLM_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "mine").mkdir(parents=True)
    settings.reclm_home().mkdir(parents=True)
    recs = pd.DataFrame({
        "user_id": ["u1"] * 3, "rank": [1, 2, 3], "item_id": ["a", "b", "c"], "title": ["A", "B", "C"],
        "domain": ["video"] * 3, "score": [3.0, 2.0, 1.0], "facts": ["{}"] * 3, "explanation": ["why"] * 3,
    })
    con = duckdb.connect(str(settings.duckdb_path()))
    store.replace_tables(con, settings.schema_name("tiny"), {"recommendations": recs})
    con.close()
    return tmp_path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_valid_k_still_answers(home, capsys):
    assert main(["recommend", "--dataset", "tiny", "--user", "u1", "-k", "2", "--json"]) == 0
    assert [r["item_id"] for r in json.loads(capsys.readouterr().out)] == ["a", "b"]


@pytest.mark.parametrize("k", ["0", "-5", "1001", "abc", "2.5"])
@pytest.mark.parametrize("who", [["--user", "u1"], ["--query", "robots"]])
def test_bad_k_is_refused_up_front(home, capsys, k, who):
    assert main(["recommend", "--dataset", "tiny", *who, "-k", k]) == 2
    err = _one_line_error(capsys)
    assert "-k" in err and "from 1 to 1000" in err and "unknown user" not in err
    assert capsys.readouterr().out == ""  # no `[]` answer


@pytest.mark.parametrize("length", [2001, 100_000])
def test_long_query_is_refused_with_the_limit(home, capsys, length):
    assert main(["recommend", "--dataset", "tiny", "--query", "robot " * (length // 6 + 1), "--json"]) == 2
    err = _one_line_error(capsys)
    assert "--query" in err and "limit is 2,000" in err and len(err) < 300


def test_json_answer_bounds_linked_spans(home, capsys, monkeypatch):
    import reclm_dagster.encoders.registry as registry

    spans = [{"surface": "robot", "start": 6 * i, "end": 6 * i + 5, "entity_id": "tag:robot", "entity_type": "tag"}
             for i in range(5300)]
    rows = [{"rank": r, "item_id": str(r), "title": "T", "domain": "video", "score": 1.0, "scores": {}, "facts": {},
             "explanation": "why", "linked": spans} for r in range(1, 11)]
    monkeypatch.setattr(registry, "load_encoder", lambda *a, **kw: None)
    monkeypatch.setattr(serving, "recommend_for_query", lambda *a, **kw: rows)
    assert main(["recommend", "--dataset", "tiny", "--query", "robot " * 300, "--json"]) == 0
    out = capsys.readouterr().out
    answer = json.loads(out)
    assert [len(r["linked"]) for r in answer] == [20] * 10
    assert all(r["linked_dropped"] == 5280 for r in answer)
    assert len(out) < 100_000


def test_unexpected_error_is_exit_1_and_says_where_to_look(home, capsys, monkeypatch):
    def boom(*a, **kw):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(serving, "recommend_for_user", boom)
    assert main(["recommend", "--dataset", "tiny", "--user", "u1"]) == 1
    err = _one_line_error(capsys)
    assert "RuntimeError: boom second line" in err and "--debug" in err and "reclm ui" in err
    for argv in (["--debug", "recommend", "--dataset", "tiny", "--user", "u1"],
                 ["recommend", "--dataset", "tiny", "--user", "u1", "--debug"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and "RuntimeError: boom" in err


def test_user_error_traceback_only_with_debug(home, capsys):
    assert main(["recommend", "--dataset", "tiny", "--user", "nobody"]) == 2
    assert "unknown user 'nobody'" in _one_line_error(capsys)
    assert main(["recommend", "--dataset", "tiny", "--user", "nobody", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_usage_mistakes_are_one_line(home, capsys):
    assert main(["recommend", "--no-such-flag"]) == 2
    assert "--no-such-flag" in _one_line_error(capsys)
    assert main(["eval", "--test-fraction", "1.5"]) == 2
    assert "--test-fraction" in _one_line_error(capsys)
    assert main(["eval", "--valid-fraction", "0.5", "--test-fraction", "0.5"]) == 2  # before any run starts
    assert "below 1" in _one_line_error(capsys)
    assert main(["ui", "--port", "99999"]) == 2
    assert "--port" in _one_line_error(capsys)


@pytest.mark.parametrize("command", [["recommend", "--user", "u1"], ["kg", "export"], ["run"], ["eval"]])
@pytest.mark.parametrize("dataset", ["/etc", "../outside", "..", "mine/../../x", ""])
def test_dataset_must_be_a_name_under_the_data_dir(home, capsys, command, dataset):
    assert main([*command, "--dataset", dataset]) == 2
    err = _one_line_error(capsys)
    assert "--dataset" in err and ("not a path" in err or "needs a dataset name" in err)


def test_a_path_to_a_folder_in_the_data_dir_means_its_name(home, capsys):
    assert main(["recommend", "--dataset", str(home / "data" / "mine"), "--user", "u1"]) == 2
    assert "dataset 'mine' has not been materialized" in _one_line_error(capsys)


def test_missing_encoder_is_a_user_error(home, capsys):
    assert main(["recommend", "--dataset", "tiny", "--query", "robots", "--encoder", str(home / "no-such-model")]) == 2
    err = _one_line_error(capsys)
    assert "encoder" in err and "not found" in err and "unexpected" not in err


def test_missing_encoder_is_a_user_error_in_a_fresh_process(home):
    """As a user meets it: a request's process never loads the torch encoder's module, where the
    error once had to be looked up (this test, unlike the one above, can see that)."""
    out = subprocess.run([sys.executable, "-m", "reclm_dagster.cli", "recommend", "--dataset", "tiny", "--query",
                          "robots", "--encoder", str(home / "no-such-model")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
    err = out.stderr.strip()
    assert out.returncode == 2, err
    assert len(err.splitlines()) == 1 and "not found" in err and "unexpected" not in err, err


@pytest.mark.parametrize("value", ["0", "abc"])
@pytest.mark.parametrize("command", [["run"], ["eval"]])
def test_a_bad_evaluation_budget_in_the_config_is_one_line_before_any_run(home, capsys, monkeypatch, value, command):
    config = (settings.ASSETS_DIR / "config" / "default.yaml").read_text(encoding="utf-8")
    assert "  tuning_max_cells: 134217728\n" in config
    bad = home / "bad.yaml"
    bad.write_text(config.replace("  tuning_max_cells: 134217728\n", f"  tuning_max_cells: {value}\n"), encoding="utf-8")
    monkeypatch.setenv("RECLM_CONFIG", str(bad))
    monkeypatch.setattr("reclm_dagster.cli_run.run_graph", lambda *a, **k: pytest.fail("a run started"))
    assert main([*command, "--dataset", "demo"]) == 2
    err = _one_line_error(capsys)
    assert str(bad) in err and "evaluation" in err
