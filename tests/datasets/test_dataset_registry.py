"""available_datasets / load_dataset: dispatch by folder layout, helpful errors."""

from __future__ import annotations

import pytest

from reclm_dagster.datasets import (
    SOURCES,
    DatasetError,
    DatasetNotFound,
    available_datasets,
    load_dataset,
    source_for,
)


def make_folder_dataset(path):
    path.mkdir()
    (path / "items.csv").write_text("item_id,title,domain\na,Alpha,video\nb,Beta,audio\n", encoding="utf-8")
    (path / "interactions.csv").write_text("user_id,item_id,weight\nu1,a,2\nu1,b,1\n", encoding="utf-8")
    return path


def test_available_lists_demo_and_readable_folders_only(tmp_path):
    make_folder_dataset(tmp_path / "mine")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("nothing to see")
    assert available_datasets(tmp_path) == ["demo", "mine"]
    assert available_datasets(tmp_path / "does-not-exist") == ["demo"]


def test_folder_dataset_loads_by_name(tmp_path):
    make_folder_dataset(tmp_path / "mine")
    ds = load_dataset("mine", tmp_path)
    assert ds.name == "mine"
    assert ds.domain_summary()["n_interactions"] == 2


def test_unknown_name_says_what_to_do(tmp_path):
    make_folder_dataset(tmp_path / "mine")
    with pytest.raises(DatasetNotFound) as err:
        load_dataset("nope", tmp_path)
    message = str(err.value)
    assert "'nope'" in message and "demo" in message and "mine" in message and "RECLM_DATA_DIR" in message


def test_unrecognised_layout(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "ratings.csv").write_text("userId,movieId,rating\n")  # no movies.csv: not MovieLens
    with pytest.raises(DatasetError) as err:
        load_dataset("junk", tmp_path)
    assert not isinstance(err.value, DatasetNotFound)
    assert "movies.csv" in str(err.value)


def test_default_data_dir_comes_from_environment(tmp_path, monkeypatch):
    make_folder_dataset(tmp_path / "mine")
    monkeypatch.setenv("RECLM_DATA_DIR", str(tmp_path))
    assert "mine" in available_datasets()
    assert load_dataset("mine").name == "mine"


def test_dispatch_order_prefers_specific_layouts(tmp_path):
    # a folder with both MovieLens files and reclm tables is read as MovieLens
    path = make_folder_dataset(tmp_path / "both")
    (path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    (path / "movies.csv").write_text("movieId,title,genres\n")
    assert source_for(path).name == "movielens"
    assert [s.name for s in SOURCES][-1] == "folder"


def test_demo_is_always_available(tmp_path):
    assert load_dataset("demo", tmp_path / "empty").name == "demo"


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc", "a\\b", "a\x00b"])
def test_a_dataset_name_never_leads_out_of_the_data_directory(name, tmp_path):
    from reclm_dagster.datasets import DatasetError, dataset_folder

    (tmp_path / "data" / "x").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not a folder name"):
        dataset_folder(name, tmp_path / "data")
