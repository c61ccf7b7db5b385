"""Issue 14, "nothing lost, nothing corrupted": a killed run does not stay RUNNING/STARTED
forever, and two `reclm run` on one RECLM_HOME do not race (the second is refused in one line)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid

import pytest

from reclm_dagster import cli, recovery, settings
from reclm_dagster.cli import main


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))  # restored after the test
    monkeypatch.delenv("MLFLOW_RUN_CONTEXT", raising=False)
    settings.reclm_home().mkdir(parents=True)
    return tmp_path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def seed_runs(pid: int) -> dict[str, str]:
    """An MLflow run and a Dagster run left unfinished by ``pid``, and one of each owned by us."""
    import dagster as dg
    from mlflow.tracking import MlflowClient

    from reclm_dagster.defs.resources import ensure_dagster_home

    ensure_dagster_home()
    settings.mlflow_dir().mkdir(parents=True, exist_ok=True)
    client = MlflowClient(settings.mlflow_tracking_uri())
    exp = client.create_experiment("demo")
    host = socket.gethostname()
    ids = {
        "mlflow_dead": client.create_run(exp, tags={recovery.PID_TAG: str(pid), recovery.HOST_TAG: host}).info.run_id,
        "mlflow_alive": client.create_run(exp, tags=recovery.owner_tags()).info.run_id,
    }
    with dg.DagsterInstance.get() as instance:
        for name, tags in (("dagster_dead", {recovery.PID_TAG: str(pid), recovery.HOST_TAG: host}),
                           ("dagster_alive", recovery.owner_tags())):
            ids[name] = str(uuid.uuid4())
            instance.add_run(dg.DagsterRun(job_name="reclm_full", run_id=ids[name], status=dg.DagsterRunStatus.STARTED, tags=tags))
    return ids


def statuses(ids: dict[str, str]) -> dict[str, str]:
    import dagster as dg
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri())
    out = {k: client.get_run(v).info.status for k, v in ids.items() if k.startswith("mlflow")}
    with dg.DagsterInstance.get() as instance:
        out.update({k: instance.get_run_by_id(v).status.value for k, v in ids.items() if k.startswith("dagster")})
    return out


EXPECTED = {"mlflow_dead": "FAILED", "mlflow_alive": "RUNNING", "dagster_dead": "FAILURE", "dagster_alive": "STARTED"}


def test_runs_of_a_dead_process_end_as_failed(home):
    ids = seed_runs(dead_pid())
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        failed = recovery.recover_orphaned_runs(instance)
    assert set(failed) == {ids["mlflow_dead"], ids["dagster_dead"]}
    assert statuses(ids) == EXPECTED


def test_reclm_run_fails_the_orphans_before_it_starts(home, monkeypatch):
    """Through the command: `reclm run` recovers before building its job (stopped right there)."""
    ids = seed_runs(dead_pid())
    monkeypatch.setattr(cli, "_check_dataset", lambda name: None)

    def stop(*a, **kw):
        raise cli.ReclmError("stopped by the test")
    monkeypatch.setattr("reclm_dagster.definitions.build_definitions", stop)
    assert main(["run", "--dataset", "demo"]) == 2
    assert statuses(ids) == EXPECTED


def test_reclm_ui_fails_the_orphans_before_it_starts(home, monkeypatch):
    ids = seed_runs(dead_pid())
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)  # leave pytest's handlers alone

    def stop(*a, **kw):
        raise cli.ReclmError("stopped by the test")
    monkeypatch.setattr(cli.subprocess, "Popen", stop)
    assert main(["ui"]) == 2
    assert statuses(ids) == EXPECTED


def test_untagged_runs_are_left_alone_while_another_reclm_holds_a_lock(home):
    from mlflow.tracking import MlflowClient

    settings.mlflow_dir().mkdir(parents=True)
    client = MlflowClient(settings.mlflow_tracking_uri())
    exp = client.create_experiment("demo")
    old = int((recovery.process_start() - 3600) * 1000)  # begun before this process: not ours
    run_id = client.create_run(exp, start_time=old).info.run_id
    with hold_lock("ui"):  # a `reclm ui` may still be running it
        assert recovery.recover_orphaned_runs() == []
    assert client.get_run(run_id).info.status == "RUNNING"
    assert recovery.recover_orphaned_runs() == [run_id]
    assert client.get_run(run_id).info.status == "FAILED"


# ---------------------------------------------------------------- one run at a time

HOLDER = """
import sys
from reclm_dagster import recovery
lock = recovery.ui_lock() if sys.argv[1] == "ui" else recovery.run_lock("run")
with lock:
    print("held", flush=True)
    sys.stdin.read()
"""


class hold_lock:
    """A child process holding the run (or ui) lock of RECLM_HOME until the block ends or it is killed."""

    def __init__(self, which: str = "run"):
        self.which = which

    def __enter__(self) -> subprocess.Popen:
        self.child = subprocess.Popen([sys.executable, "-c", HOLDER, self.which], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        assert self.child.stdout.readline().strip() == "held"
        return self.child

    def __exit__(self, *exc) -> None:
        if self.child.poll() is None:
            self.child.stdin.close()
        self.child.wait(timeout=30)


@pytest.mark.parametrize("command", [["run"], ["eval"], ["finetune"]])
def test_a_second_run_is_refused_in_one_line(home, monkeypatch, capsys, command):
    def must_not_run(*a, **kw):
        raise AssertionError("started a run while another holds RECLM_HOME")
    monkeypatch.setattr(cli, "_execute", must_not_run)
    monkeypatch.setattr(cli, "_embedded_with", lambda *a: True)
    with hold_lock() as child:
        assert main([*command, "--dataset", "demo"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith("reclm: another reclm run (pid ") and f"(pid {child.pid}, started " in err
        assert str(settings.reclm_home() / ".run.lock") in err and f"kill {child.pid}" in err
        # reading is never blocked: `recommend` does not take the lock (here: no store yet)
        assert main(["recommend", "--dataset", "demo", "--user", "u1"]) == 2
        assert "no reclm store" in capsys.readouterr().err
    with recovery.run_lock("run"):  # released when the holder exits
        pass


def test_the_lock_goes_with_a_killed_holder(home):
    with hold_lock() as child:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        with recovery.run_lock("run"):
            assert recovery.run_lock_path().read_text().startswith(f'{{"pid": {os.getpid()}')
    assert recovery.run_lock_path().read_text() == ""  # nobody holds it now
