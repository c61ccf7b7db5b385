"""The distributed deployment for real (issue 12.5): a local Dask scheduler and two worker processes
on 127.0.0.1 run the demo graph through the dagster-dask executor onto Parquet storage, and its
lists equal the local deployment's on the same data and encoder (``lexical``: no model to load in
each worker)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from reclm_dagster import parquet_store, settings, store

REPO = Path(__file__).resolve().parents[1]
SCHEMA = settings.schema_name("demo")


def _lists(con) -> pd.DataFrame:
    df = store.read_df(con, SCHEMA, "recommendations")
    return df.sort_values(["user_id", "rank"]).reset_index(drop=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(home: Path, monkeypatch, **env: str):
    from reclm_dagster.cli_run import _execute

    monkeypatch.setenv("RECLM_HOME", str(home))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result, _ = _execute("demo", "lexical", "WARNING")
    assert result.success
    return result


@contextlib.contextmanager
def _stop_signals_at_default():
    """SIGINT and SIGTERM at their defaults while the cluster spawns its worker processes, which
    inherit an ignored disposition (fork + exec keeps SIG_IGN).

    pytest started in the background by a non-interactive shell (e.g. ``make test &`` in a CI script)
    ignores SIGINT, and every in-process Dagster run ends by copying SIGINT's disposition onto SIGTERM
    (``capture_interrupts`` → ``setup_interrupt_handlers``), so after this test's local run SIGTERM is
    ignored as well. Dask workers that ignore SIGTERM pass it on to the ``tail -F`` processes of each
    step's compute-log capture, which then cannot be stopped: every step waited 2 × 30 s
    (``communicate(timeout=30)`` on the stdout and the stderr tail) and left both tails running."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


@pytest.mark.e2e
def test_dask_run_on_parquet_makes_the_local_lists(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")

    monkeypatch.delenv("RECLM_DEPLOYMENT", raising=False)
    _run(tmp_path / "local", monkeypatch)
    with duckdb.connect(str(tmp_path / "local" / "reclm.duckdb"), read_only=True) as con:
        local = _lists(con)

    storage = tmp_path / "storage"
    port = _free_port()
    env = {
        # the workers rebuild the run's config (executor included), so they need the address too
        "RECLM_DASK_ADDRESS": f"tcp://127.0.0.1:{port}",
        "RECLM_DEPLOYMENT": "distributed",
        "RECLM_STORAGE_ROOT": str(storage),
        "RECLM_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow-server.db'}",
        # the workers import this checkout's reclm_dagster, whatever the venv has installed
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # before the workers start: they inherit this environment
    # The MLflow store is created once here, not by two workers racing on an empty sqlite file.
    from reclm_dagster.defs.resources import MLflowResource

    MLflowResource(tracking_uri=env["RECLM_MLFLOW_TRACKING_URI"]).experiment_id("demo")

    with _stop_signals_at_default():  # the workers start here and keep what they inherit
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           scheduler_port=port, dashboard_address=None)
    with cluster:
        assert cluster.scheduler_address == env["RECLM_DASK_ADDRESS"]
        result = _run(tmp_path / "dist", monkeypatch)
        with distributed.Client(cluster) as client:
            workers = client.run(os.getpid)
    # the steps ran in the two worker processes, not in this one
    assert len(set(workers.values())) == 2 and os.getpid() not in workers.values()
    step_pids = {e.pid for e in result.all_events if e.is_step_success}
    assert step_pids and step_pids <= set(workers.values())
    # every step's compute-log capture ended cleanly: its tail processes stopped on SIGTERM (when the
    # workers ignored it, each step waited 60 s for two timeouts and reported this engine event)
    assert not [e.message for e in result.all_events if "cleaning up compute log capture" in (e.message or "")]

    assert not (tmp_path / "dist" / "reclm.duckdb").exists()  # nothing went to a DuckDB file
    assert (storage / SCHEMA / "recommendations.parquet").exists()
    with parquet_store.connect(str(storage)) as con:
        dist = _lists(con)
    assert len(local) > 0
    pd.testing.assert_frame_equal(dist[["user_id", "item_id", "rank"]], local[["user_id", "item_id", "rank"]],
                                  check_dtype=False)
    scores = [c for c in local.columns if local[c].dtype.kind == "f"]
    assert "score" in scores
    # float32 scores: Dask's workers run BLAS on one thread (OMP_NUM_THREADS=1), so sums may
    # round in another order than in this process; the lists above are identical all the same
    for col in scores:
        np.testing.assert_allclose(dist[col].to_numpy(float), local[col].to_numpy(float), rtol=1e-5, atol=1e-6,
                                   equal_nan=True, err_msg=col)
