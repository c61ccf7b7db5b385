"""Test-wide settings: the runtime home goes to a temporary folder; datasets come from RECLM_DATA_DIR."""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_TEST_HOME: str | None = None  # the temporary RECLM_HOME this session made (pytest_configure)


def pytest_configure(config):
    # Generated-input tests are the same examples on every run (CI must not be a lottery);
    # HYPOTHESIS_PROFILE=explore searches fresh random examples, many more of them.
    from hypothesis import settings

    settings.register_profile("repeatable", derandomize=True, database=None, max_examples=60)
    settings.register_profile("explore", derandomize=False, max_examples=2000)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

    # Before any reclm module reads settings: nothing a test writes lands in the repository.
    # The folder is made only when RECLM_HOME is unset, and removed when the session ends.
    global _TEST_HOME
    import tempfile

    if "RECLM_HOME" not in os.environ:
        _TEST_HOME = os.environ["RECLM_HOME"] = tempfile.mkdtemp(prefix="reclm-test-home-")
    os.environ.setdefault("RECLM_DATA_DIR", str((REPO.parent / "shared" / "data").resolve()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_unconfigure(config):
    if _TEST_HOME is not None:
        shutil.rmtree(_TEST_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = Path(os.environ["RECLM_DATA_DIR"])
    if not path.is_dir():
        pytest.skip(f"public datasets not found in {path} (set RECLM_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A RECLM_HOME where `reclm run` has materialized the whole graph on the bundled demo data
    (shared by the end-to-end, CLI and browser tests: one run of about a minute).

    The run is also the proof that reclm needs no network at run time (only `reclm download`
    does): every IPv4/IPv6 connection it tries fails, and none may be tried."""
    import socket

    from reclm_dagster.cli import main

    home = tmp_path_factory.mktemp("reclm-home")
    old = os.environ.get("RECLM_HOME")
    os.environ["RECLM_HOME"] = str(home)
    tried = []
    real_connect, real_create = socket.socket.connect, socket.create_connection

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            tried.append(address)
            raise OSError(f"network blocked in tests: {address}")
        return real_connect(sock, address)

    def create_connection(address, *args, **kwargs):
        tried.append(address)
        raise OSError(f"network blocked in tests: {address}")

    socket.socket.connect, socket.create_connection = connect, create_connection
    try:
        assert main(["run", "--dataset", "demo"]) == 0
        assert tried == [], f"reclm run tried the network: {tried[:3]}"
    finally:
        socket.socket.connect, socket.create_connection = real_connect, real_create
        if old is None:
            os.environ.pop("RECLM_HOME", None)
        else:
            os.environ["RECLM_HOME"] = old
    return home


@pytest.fixture(autouse=True)
def _empty_fit_cache():
    """Each test starts with no cached sparse fit (models/fit_cache.py is process-wide)."""
    from reclm_dagster.models import fit_cache

    fit_cache.clear()
    yield
    fit_cache.clear()
