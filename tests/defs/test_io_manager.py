"""The IO manager (partition → schema, asset → table) on both storages, and the lineage it carries:
every asset's upstream data arrives as an argument, so the graph Dagster draws comes from the code."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from dagster_duckdb import DuckDBResource

from reclm_dagster import defs as defs_package, settings, store
from reclm_dagster.defs.common import dataset_partitions
from reclm_dagster.defs.io_manager import WRITTEN_BY_ASSET, ReclmIOManager
from reclm_dagster.defs.resources import ParquetDuckDBResource

DATASETS = ["io_a", "io_b"]


@pytest.fixture(params=["duckdb", "parquet"])
def storage(request, tmp_path) -> DuckDBResource:
    if request.param == "duckdb":
        return DuckDBResource(database=str(tmp_path / "reclm.duckdb"))
    return ParquetDuckDBResource(root=str(tmp_path / "store"))


@pytest.fixture
def instance() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(dataset_partitions.name, DATASETS)
    return instance


def out_ctx(instance, asset: str, dataset: str, metadata=None) -> dg.OutputContext:
    return dg.build_output_context(asset_key=asset, partition_key=dataset, asset_partitions_def=dataset_partitions,
                                   definition_metadata=metadata or {}, instance=instance)


def in_ctx(instance, asset: str, dataset: str, metadata=None, dagster_type=None) -> dg.InputContext:
    return dg.build_input_context(asset_key=asset, partition_key=dataset, asset_partitions_def=dataset_partitions,
                                  definition_metadata=metadata or {}, instance=instance,
                                  dagster_type=dagster_type or dg.DagsterType(lambda _, __: True, name="Any"))


def test_round_trip_per_partition(storage, instance):
    manager = ReclmIOManager(duckdb=storage)
    for n, dataset in enumerate(DATASETS):
        manager.handle_output(out_ctx(instance, "items", dataset), pd.DataFrame({"item_id": [f"{dataset}-{i}" for i in range(n + 2)],
                                                                              "price": [1.5] * (n + 2)}))
    for n, dataset in enumerate(DATASETS):  # each dataset its own schema, its own rows
        items = manager.load_input(in_ctx(instance, "items", dataset))
        assert items["item_id"].tolist() == [f"{dataset}-{i}" for i in range(n + 2)]
        assert manager.load_input(in_ctx(instance, "items", dataset, {"columns": ["price"]})).columns.tolist() == ["price"]
    with storage.get_connection() as con:  # the table the CLI and serving read by name
        assert store.read_df(con, settings.schema_name("io_b"), "items")["item_id"].tolist() == ["io_b-0", "io_b-1", "io_b-2"]


def test_a_dict_is_several_tables_in_one_write_and_loads_back_as_one(storage, instance):
    manager = ReclmIOManager(duckdb=storage)
    lists = pd.DataFrame({"user_id": ["u1"], "item_id": ["m1"], "rank": [1]})
    info = pd.DataFrame({"run_id": ["r1"]})
    context = out_ctx(instance, "recommendations", "io_a")
    manager.handle_output(context, {"recommendations": lists, store.LISTS_INFO_TABLE: info})
    meta = context.get_logged_metadata()
    assert meta["dagster/row_count"].value == 1 and meta["stored_tables"].data == {"recommendations": 1, "recommendations_info": 1}
    assert [c.name for c in meta["dagster/column_schema"].schema.columns] == ["user_id", "item_id", "rank"]
    loaded = manager.load_input(in_ctx(instance, "recommendations", "io_a", {"tables": ["recommendations", store.LISTS_INFO_TABLE]}))
    assert loaded[store.LISTS_INFO_TABLE]["run_id"].tolist() == ["r1"] and loaded["recommendations"].equals(lists)


def test_missing_ok_leaves_out_what_is_not_stored(storage, instance):
    """hybrid_selection's tables before any selection: `reclm eval` on a fresh dataset selects on its own split."""
    from reclm_dagster.defs.selection import SELECTION_IN

    manager = ReclmIOManager(duckdb=storage)
    assert manager.load_input(in_ctx(instance, "hybrid_selection", "io_a", SELECTION_IN.metadata)) == {}
    manager.handle_output(out_ctx(instance, "hybrid_selection", "io_a"), {"hybrid_chosen": pd.DataFrame({"json": ["{}"]})})
    assert set(manager.load_input(in_ctx(instance, "hybrid_selection", "io_a", SELECTION_IN.metadata))) == {"hybrid_chosen"}


def test_arrow_tables_round_trip_as_arrow(storage, instance):
    manager = ReclmIOManager(duckdb=storage)
    table = store.embeddings_table(["a", "b"], ["item", "item"], [[1.0, 0.0], [0.0, 1.0]], "enc@1")
    manager.handle_output(out_ctx(instance, "text_embeddings", "io_a"), table)
    loaded = manager.load_input(in_ctx(instance, "text_embeddings", "io_a", dagster_type=dg.DagsterType(
        lambda _, v: isinstance(v, pa.Table), name="Table", typing_type=pa.Table)))
    assert isinstance(loaded, pa.Table)
    ids, vectors = store.embedding_matrix(loaded, "item")
    assert ids == ["a", "b"] and vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_written_by_asset_outputs_are_only_recorded(storage, instance):
    """The raw tables and the graph are committed by their asset (one transaction with the inbox replay)."""
    manager = ReclmIOManager(duckdb=storage)
    context = out_ctx(instance, "items", "io_a", {WRITTEN_BY_ASSET: True})
    manager.handle_output(context, pd.DataFrame({"item_id": ["x"]}))
    assert context.get_logged_metadata()["dagster/row_count"].value == 1
    with storage.get_connection() as con:
        assert not store.table_exists(con, settings.schema_name("io_a"), "items")


def test_a_missing_table_and_a_wrong_value_fail_with_a_clear_message(storage, instance):
    manager = ReclmIOManager(duckdb=storage)
    with pytest.raises(dg.Failure, match="items is not stored: materialize items for dataset io_a first"):
        manager.load_input(in_ctx(instance, "items", "io_a"))
    with pytest.raises(dg.Failure, match="cannot store items .list."):
        manager.handle_output(out_ctx(instance, "items", "io_a"), [1, 2])


def test_the_kill_point_of_the_lists_commit_still_covers_both_tables(tmp_path, instance, monkeypatch):
    """Crash safety (tests/test_crash_campaign.py): the lists and their info go through one replace_tables call."""
    calls = []
    real = store.replace_tables
    monkeypatch.setattr(store, "replace_tables", lambda con, schema, tables: calls.append(sorted(tables)) or real(con, schema, tables))
    manager = ReclmIOManager(duckdb=DuckDBResource(database=str(tmp_path / "x.duckdb")))
    manager.handle_output(out_ctx(instance, "recommendations", "io_a"),
                          {"recommendations": pd.DataFrame({"a": [1]}), store.LISTS_INFO_TABLE: pd.DataFrame({"b": [1]})})
    assert calls == [["recommendations", "recommendations_info"]]


# ------------------------------------------------------------------ lineage from the code


def test_the_graph_lineage_comes_from_the_assets_arguments():
    from reclm_dagster.definitions import build_definitions

    defs = build_definitions("local")
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()}
    assert parents["recommendations"] == {"user_item_scores", "items", "interactions", "descriptions", "text_tokens",
                                          "kg_entities", "kg_triples", "kg_mentions"}
    assert parents["text_embeddings"] == {"text_tokens"}
    assert parents["text_tokens"] == {"items", "catalogue_facts", "descriptions"}
    assert {"hybrid_selection", "text_embeddings", "items"} <= parents["user_item_scores"]
    assert parents["kg_entities"] == {"items", "catalogue_facts", "descriptions", "user_links"}

    # every upstream asset is an argument, except the few ordering-only dependencies named here
    ordering_only = {("user_item_scores", "evaluation"), ("kg_mentions", "text_tokens")}
    reads_through_resource = "encoder_finetuned"  # skipped in whole-graph runs: must not load four tables first
    for assets_def in defs.assets:
        if not isinstance(assets_def, dg.AssetsDefinition) or assets_def.node_def.name == reads_through_resource:
            continue
        for input_name, key in assets_def.keys_by_input_name.items():
            if assets_def.node_def.input_def_named(input_name).dagster_type.is_nothing:
                assert (assets_def.node_def.name, key.to_user_string()) in ordering_only
    # and no dependency is a bare string any more
    for module in Path(defs_package.__file__).parent.glob("*.py"):
        assert not re.search(r"deps=\[\s*[\"']", module.read_text()), module.name


def test_the_io_manager_is_every_deployments_default():
    from reclm_dagster.defs.resources import reclm_resources

    for deployment in (settings.LOCAL, settings.DISTRIBUTED):
        resources = reclm_resources(deployment)
        assert isinstance(resources["io_manager"], ReclmIOManager)
        assert resources["io_manager"].duckdb is resources["duckdb"]


def test_a_whole_graph_run_moves_values_between_steps(tmp_path, instance):
    """Two assets in one run: the second receives the first's table, loaded by the IO manager."""
    @dg.asset(partitions_def=dataset_partitions)
    def first() -> pd.DataFrame:
        return pd.DataFrame({"x": [1, 2, 3]})

    @dg.asset(partitions_def=dataset_partitions)
    def second(first: pd.DataFrame) -> pd.DataFrame:
        return first.assign(y=first["x"] * 2)

    storage = DuckDBResource(database=str(tmp_path / "run.duckdb"))
    result = dg.materialize([first, second], partition_key="io_a", instance=instance,
                            resources={"io_manager": ReclmIOManager(duckdb=storage)})
    assert result.success
    with duckdb.connect(str(tmp_path / "run.duckdb"), read_only=True) as con:
        assert store.read_df(con, settings.schema_name("io_a"), "second")["y"].tolist() == [2, 4, 6]
