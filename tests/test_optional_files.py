"""Datasets with only what is required, or with too little to evaluate (issue 14, defects 3
and 7): optional files really are optional, and an evaluation that cannot hold out a single
test interaction says so in one line before any metric is stored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reclm_dagster.datasets import DatasetError, load_dataset
from reclm_dagster.evaluation.offline import EvaluationProtocol, offline_evaluation
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.training import DatasetTables


def write_catalogue(folder, n_users: int = 30, n_items: int = 24, per_user: int = 6) -> None:
    """items.csv and interactions.csv only: no descriptions, facts or user links."""
    folder.mkdir(parents=True)
    rows = "".join(f"i{i},Item number {i},{('video', 'audio')[i % 2]}\n" for i in range(n_items))
    (folder / "items.csv").write_text("item_id,title,domain\n" + rows, encoding="utf-8")
    rng = np.random.default_rng(0)
    pairs = [(u, i) for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False)]
    (folder / "interactions.csv").write_text("user_id,item_id\n" + "".join(f"u{u},i{i}\n" for u, i in pairs), encoding="utf-8")


@pytest.mark.e2e
def test_items_and_interactions_alone_run_end_to_end(tmp_path, monkeypatch):
    # Before: kg_mentions_mentions_are_valid failed on a DuckDB BinderException (the empty
    # kg_mentions table has VARCHAR "start"/"end"), so such a catalogue never ran.
    import duckdb

    from reclm_dagster import settings
    from reclm_dagster.cli import main

    monkeypatch.setenv("RECLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    write_catalogue(tmp_path / "data" / "two-files")
    assert main(["run", "--dataset", "two-files"]) == 0
    schema = settings.schema_name("two-files")
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        n_desc, n_mentions, n_lists = (con.execute(f'SELECT count(*) FROM "{schema}".{t}').fetchone()[0]
                                       for t in ("descriptions", "kg_mentions", "recommendations"))
    assert (n_desc, n_mentions) == (0, 0) and n_lists > 0


# ---------------------------------------------------------------- nothing to evaluate

def tables_of(items: pd.DataFrame, interactions: pd.DataFrame) -> DatasetTables:
    """DatasetTables without text: the guard runs before any vector or token is used."""
    n = len(items)
    return DatasetTables(
        items=items, interactions=interactions,
        descriptions=pd.DataFrame(columns=["description_id", "user_id", "item_id", "kind", "text"]),
        item_vectors=np.zeros((n, 4), np.float32), item_tokens=[[] for _ in range(n)],
        description_vectors=np.zeros((0, 4), np.float32), description_tokens=[], encoder_version="test",
    )


ITEMS = pd.DataFrame({"item_id": [f"i{i}" for i in range(10)]})


@pytest.mark.parametrize("case, rows_per_user, item", [
    ("header-only", 0, "i{}"), ("all-unknown", 2, "nope{}"), ("two-per-user", 2, "i{}"), ("three-per-user", 3, "i{}"),
])
def test_no_evaluable_user_is_one_clear_error(tmp_path, case, rows_per_user, item):
    # Before: every metric NaN, stored as NULL, then `TypeError: float() ... 'NoneType'` in
    # evaluation_ndcg_not_regressed.
    folder = tmp_path / "few"
    folder.mkdir()
    (folder / "items.csv").write_text("item_id,title,domain\n" + "".join(f"i{i},T{i},video\n" for i in range(10)))
    rows = "".join(f"u{u},{item.format(k)}\n" for u in range(50) for k in range(rows_per_user))
    (folder / "interactions.csv").write_text("user_id,item_id\n" + rows)
    ds = load_dataset("few", tmp_path)
    with pytest.raises(DatasetError) as err:
        offline_evaluation(tables_of(ds.items, ds.interactions), EvaluationProtocol(), HybridConfig())
    message = str(err.value)
    assert "\n" not in message and message.startswith("no user can be evaluated")
    assert "needs ≥ 5 interactions per user" in message and "reclm eval --queries" in message
    n_users = len(ds.interactions["user_id"].unique())
    assert n_users == (0 if case in ("header-only", "all-unknown") else 50)
    assert f"of {n_users} users none has that many ({n_users if rows_per_user == 3 else 0} have ≥ 3" in message


def test_the_needed_count_follows_the_protocol():
    interactions = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["i1", "i2", "i1"], "weight": 1.0, "timestamp": pd.NA})
    protocol = EvaluationProtocol(valid_fraction=0.0, test_fraction=0.25)
    with pytest.raises(DatasetError, match="at test fraction 0.25 needs ≥ 3 interactions per user"):
        offline_evaluation(tables_of(ITEMS, interactions), protocol, HybridConfig())


@pytest.mark.realdata
def test_douban_small_says_no_user_can_be_evaluated(shared_data_dir):
    folder = shared_data_dir / "douban-moviedata-small"
    if not folder.is_dir():
        pytest.skip(f"douban-moviedata-small not under {shared_data_dir}")
    ds = load_dataset(folder.name, shared_data_dir)
    with pytest.raises(DatasetError, match=r"^no user can be evaluated: .* of 974 users none has that many .*reclm eval --queries"):
        offline_evaluation(tables_of(ds.items, ds.interactions), EvaluationProtocol(), HybridConfig())


@pytest.mark.e2e
def test_eval_without_evaluable_users_says_so_and_still_evaluates_requests(tmp_path, monkeypatch, capsys):
    """Douban-small's shape (every user with one or two ratings, comments on films): `reclm eval`
    refuses in one line before any evaluation run; with --queries it evaluates the requests only."""
    import json

    from reclm_dagster.cli import main

    monkeypatch.setenv("RECLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    folder = tmp_path / "data" / "sparse"
    write_catalogue(folder, n_users=40, per_user=2)
    words = ("funny robots", "space opera", "slow romance", "dark thriller")
    rows = [f"d{u}-{i},u{u},i{i},review,{words[i % 4]} number {i}" for u in range(40) for i in (u % 24, (u + 5) % 24)]
    (folder / "descriptions.csv").write_text("description_id,user_id,item_id,kind,text\n" + "\n".join(rows) + "\n")
    assert main(["eval", "--dataset", "sparse"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (the encoding progress bar comes before it)
    assert last.startswith("reclm: no user can be evaluated") and "reclm eval --queries" in last
    assert "Traceback" not in err
    assert main(["eval", "--dataset", "sparse", "--queries", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert "evaluating free-text requests only" in out.err
    assert report["query_retrieval"]["n_queries"] > 0 and "bm25" in report["query_retrieval"]["models"]
