"""One run at a time per RECLM_HOME, and no run left RUNNING by a process that was killed.

`run_lock` is an exclusive `flock` on RECLM_HOME/.run.lock held by `reclm run`, `eval` and
`finetune` for their whole life; the OS drops it when the process dies, so a kill never leaves
it behind. `reclm ui` holds a shared lock on RECLM_HOME/.ui.lock while its servers run.

`recover_orphaned_runs` ends, as FAILED, the MLflow runs still RUNNING and the Dagster runs
still NOT_STARTED/STARTING/STARTED whose owning process is gone: reclm tags the runs it starts
with its pid and host (`reclm/pid`, `reclm/host`). A run without those tags (one launched by a
bare `dagster dev`, say) counts as orphaned only when it began before this process and no other
reclm process holds a lock, i.e. nothing of ours can still be running it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from reclm_dagster import settings

PID_TAG, HOST_TAG = "reclm/pid", "reclm/host"
_held_run_lock = False  # this process holds the run lock (a second flock here would see it as taken)


def run_lock_path() -> Path:
    return settings.reclm_home() / ".run.lock"


def ui_lock_path() -> Path:
    return settings.reclm_home() / ".ui.lock"


def owner_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


# Commands that write the stores take the run lock; `recommend`, `compare` and `kg` only read.
LOCKED_COMMANDS = ("run", "eval", "finetune")


def command_lock(command: str):
    return run_lock(command) if command in LOCKED_COMMANDS else contextlib.nullcontext()


@contextlib.contextmanager
def run_lock(command: str) -> Iterator[None]:
    """Hold RECLM_HOME/.run.lock for the block; another holder is a one-line ReclmError."""
    global _held_run_lock
    if _held_run_lock:  # nested (a command calling another): already ours
        yield
        return
    path = run_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _lock_held_error(path, os.pread(fd, 4096, 0).decode("utf-8", "replace")) from None
        os.ftruncate(fd, 0)  # who holds it, for the one-line refusal of the next command
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": started, "command": command}).encode(), 0)
        _held_run_lock = True
        try:
            yield
        finally:
            _held_run_lock = False
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_held_error(path: Path, text: str) -> Exception:
    from reclm_dagster.serving import ReclmError

    try:
        holder = json.loads(text)
    except ValueError:  # the holder is between taking the lock and writing its name
        holder = {}
    pid = holder.get("pid", "?")
    return ReclmError(
        f"another reclm {holder.get('command', 'run')} (pid {pid}, started {holder.get('started', 'just now')}) "
        f"holds {path}; wait for it to finish, or stop it (kill {pid}) and run again")


def _taken_by_other(path: Path, shared_ok: bool = False) -> bool:
    """True when another process holds a lock on ``path`` (exclusive, or any when not shared_ok)."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared_ok else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def other_reclm_active() -> bool:
    """Another `reclm run/eval/finetune` or `reclm ui` works on this RECLM_HOME."""
    return (not _held_run_lock and _taken_by_other(run_lock_path())) or _taken_by_other(ui_lock_path())


@contextlib.contextmanager
def ui_lock() -> Iterator[None]:
    """A shared lock while `reclm ui` runs: runs it launches may be untagged and still alive."""
    path = ui_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def process_start() -> float:
    """When this process started (epoch seconds): untagged runs begun after it may be ours."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_orphaned(tags: dict, started: float | None, untagged_may_be_orphans: bool) -> bool:
    """The run's owner is gone: its tagged pid is dead on this host, or (untagged) it predates us and nobody else is active."""
    pid = tags.get(PID_TAG)
    if pid is None:
        return untagged_may_be_orphans and started is not None and started < process_start()
    if tags.get(HOST_TAG, socket.gethostname()) != socket.gethostname():
        return False  # another machine's process: cannot tell
    try:
        return not pid_alive(int(pid))
    except ValueError:
        return False


def fail_orphaned_mlflow_runs(untagged_may_be_orphans: bool) -> list[str]:
    """End, as FAILED, RUNNING MLflow runs of processes that are gone; their run ids."""
    if not (settings.mlflow_dir() / "mlflow.db").exists():
        return []  # never create the store here: that is what two first runs raced on
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri())
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiments:
        return []
    runs = client.search_runs(experiments, "attributes.status = 'RUNNING'", run_view_type=ViewType.ALL, max_results=50_000)
    failed = []
    for run in runs:
        if is_orphaned(run.data.tags, run.info.start_time / 1000 if run.info.start_time else None, untagged_may_be_orphans):
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    return failed


def _started(record) -> float | None:
    if record.start_time is not None:
        return record.start_time
    created = record.create_timestamp
    if created is None:
        return None
    return (created if created.tzinfo else created.replace(tzinfo=timezone.utc)).timestamp()


def fail_orphaned_dagster_runs(instance, untagged_may_be_orphans: bool) -> list[str]:
    """Report, as failed, Dagster runs not finished whose process is gone; their run ids."""
    import dagster as dg

    unfinished = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=unfinished)):
        run = record.dagster_run
        if is_orphaned(run.tags, _started(record), untagged_may_be_orphans):
            who = f"pid {run.tags[PID_TAG]}" if PID_TAG in run.tags else "its process"
            instance.report_run_failed(run, message=f"reclm: {who} ended without finishing this run (killed?); marked failed by pid {os.getpid()}")
            failed.append(run.run_id)
    return failed


def recover_orphaned_runs(instance=None) -> list[str]:
    """Fail the MLflow and Dagster runs left unfinished by killed processes; say so in one line."""
    untagged = not other_reclm_active()
    failed = fail_orphaned_mlflow_runs(untagged)
    dagster_failed = fail_orphaned_dagster_runs(instance, untagged) if instance is not None else []
    if failed or dagster_failed:
        ids = ", ".join(r[:8] for r in [*dagster_failed, *failed])
        print(f"reclm: marked {len(dagster_failed)} Dagster and {len(failed)} MLflow run(s) failed whose process had died ({ids})",
              file=sys.stderr)
    return [*dagster_failed, *failed]


@contextlib.contextmanager
def mlflow_owner_tags() -> Iterator[None]:
    """MLflow runs started in the block carry our pid and host (MLflow reads MLFLOW_RUN_CONTEXT as extra tags)."""
    old = os.environ.get("MLFLOW_RUN_CONTEXT")
    try:
        extra = json.loads(old) if old else {}
    except ValueError:
        extra = {}
    os.environ["MLFLOW_RUN_CONTEXT"] = json.dumps({**extra, **owner_tags()})
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_RUN_CONTEXT", None)
        else:
            os.environ["MLFLOW_RUN_CONTEXT"] = old
