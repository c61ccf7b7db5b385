"""The stored request index (the query_index asset): read by requests while it matches the store."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from reclm_dagster import serving, settings, store


@pytest.fixture()
def home(demo_home, tmp_path, monkeypatch):
    """A copy of the shared demo run (this test changes the raw tables)."""
    copy = tmp_path / "home"
    shutil.copytree(demo_home, copy)
    monkeypatch.setenv("RECLM_HOME", str(copy))
    return copy


def answer(encoder, *, stored: bool):
    """A request answered with the stored index (``stored``) or with it rebuilt, and whether anything
    was rebuilt (the items' text index or the graph's entity dictionary)."""
    built = []
    real, real_linker = serving.item_text_index, serving.EntityLinker.__init__
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(serving, "item_text_index", lambda *a, **k: built.append(1) or real(*a, **k))
        mp.setattr(serving.EntityLinker, "__init__", lambda self, *a, **k: built.append("linker") or real_linker(self, *a, **k))
        if not stored:
            mp.setattr(serving, "read_query_items", lambda *a, **k: None)
            mp.setattr(serving, "read_entity_keys", lambda *a, **k: None)
        rows = serving.recommend_for_query("demo", "a funny space adventure with robots", 10, encoder, user_id="u0001")
    return rows, bool(built)


def test_a_request_reads_the_stored_index_and_answers_as_if_it_had_rebuilt_it(home):
    from reclm_dagster.encoders.registry import load_encoder
    from reclm_dagster.encoders.registry import dataset_encoder_spec

    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        assert store.table_exists(con, settings.schema_name("demo"), serving.QUERY_ITEMS_TABLE)  # the run built it
    encoder = load_encoder(dataset_encoder_spec("demo", None), 64, "auto")
    fast, rebuilt_fast = answer(encoder, stored=True)
    slow, rebuilt_slow = answer(encoder, stored=False)
    assert (rebuilt_fast, rebuilt_slow) == (False, True)
    assert [(r["item_id"], r["explanation"]) for r in fast] == [(r["item_id"], r["explanation"]) for r in slow]
    for f, s in zip(fast, slow):
        assert f["scores"] == pytest.approx(s["scores"], abs=1e-5)


def test_a_stored_index_older_than_the_raw_tables_is_not_used(home):
    from reclm_dagster.encoders.registry import load_encoder
    from reclm_dagster.encoders.registry import dataset_encoder_spec

    schema = settings.schema_name("demo")
    with duckdb.connect(str(settings.duckdb_path())) as con:  # the catalogue changed since the run
        con.execute(f"""UPDATE "{schema}".items SET title = title || ' (remastered)'
                        WHERE item_id = (SELECT min(item_id) FROM "{schema}".items)""")
    encoder = load_encoder(dataset_encoder_spec("demo", None), 64, "auto")
    _, rebuilt = answer(encoder, stored=True)
    assert rebuilt
