"""Fixtures for the dataset tests: the bundled demo and the public datasets under RECLM_DATA_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest

from reclm_dagster.datasets import Dataset, load_dataset



def _public(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        pytest.skip(f"{name} not present under {root}")
    return path


@pytest.fixture(scope="session")
def lastfm_dir(shared_data_dir: Path) -> Path:
    return _public(shared_data_dir, "hetrec2011-lastfm-2k")


@pytest.fixture(scope="session")
def ml_small_dir(shared_data_dir: Path) -> Path:
    return _public(shared_data_dir, "ml-latest-small")


@pytest.fixture(scope="session")
def lastfm(lastfm_dir: Path) -> Dataset:
    return load_dataset(lastfm_dir.name, lastfm_dir.parent)


@pytest.fixture(scope="session")
def ml_small(ml_small_dir: Path) -> Dataset:
    return load_dataset(ml_small_dir.name, ml_small_dir.parent)


@pytest.fixture(scope="session")
def demo() -> Dataset:
    return load_dataset("demo")


@pytest.fixture(scope="session")
def douban_dir(shared_data_dir: Path) -> Path:
    return _public(shared_data_dir, "douban-moviedata-small")


@pytest.fixture(scope="session")
def douban(douban_dir: Path) -> Dataset:
    return load_dataset(douban_dir.name, douban_dir.parent)


@pytest.fixture(scope="session")
def hetrec_movies_dir(shared_data_dir: Path) -> Path:
    return _public(shared_data_dir, "hetrec2011-movielens-2k-v2")
