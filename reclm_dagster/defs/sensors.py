"""inbox_sensor: new files in ``$RECLM_HOME/inbox/<dataset>/`` are appended to the dataset's
stored tables, then everything derived from them is recomputed for that dataset.

The file logic lives in ``reclm_dagster.inbox`` (no Dagster there). Exactly once comes from
three layers: the cursor (JSON, per dataset: sha256 -> file name of every ingested file),
the move to ``processed/`` / ``rejected/``, and the ledger row that commits together with
the data in DuckDB — so a crash anywhere between commit, move and cursor never applies a
file twice, and a file copied back with the same content is skipped.

The run re-materializes only the assets *downstream* of the raw tables: re-running
``raw_dataset`` would reload the dataset's source folder and drop the appended rows.
"""

from __future__ import annotations

import hashlib
import json
import time

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from reclm_dagster import inbox
from reclm_dagster.defs.common import dataset_partitions
from reclm_dagster.defs.ingest import RAW_TABLES
from reclm_dagster.defs.jobs import full_pipeline_job

# A sensor tick must end within Dagster's 60 s evaluation timeout; files left over wait
# for the next tick.
TICK_BUDGET_SECONDS = 40.0


def derived_asset_keys(context) -> list[dg.AssetKey]:
    """Every asset downstream of the raw tables (raw tables excluded), from the loaded definitions."""
    raw = dg.AssetSelection.assets(*RAW_TABLES)
    keys = (raw.downstream() - raw).resolve(context.repository_def.asset_graph)
    return sorted(keys, key=lambda k: k.to_user_string())


def load_cursor(text: str | None) -> dict[str, dict[str, str]]:
    """{dataset: {sha256: file name}} of the files already ingested."""
    return {ds: dict(files) for ds, files in (json.loads(text).get("ingested", {}) if text else {}).items()}


def dump_cursor(ingested: dict[str, dict[str, str]]) -> str:
    return json.dumps({"ingested": ingested}, sort_keys=True)


def _run_request(dataset: str, hashes: list[str], names: list[str], keys: list[dg.AssetKey]) -> dg.RunRequest:
    # One run per dataset and tick, however many files arrived: the run recomputes from
    # the stored tables, so one pass covers them all. With one file the run_key is its hash.
    run_key = hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()
    return dg.RunRequest(
        run_key=run_key,
        partition_key=dataset,
        asset_selection=keys,
        tags={"reclm/trigger": "inbox", "reclm/inbox_files": ", ".join(names)[:1000]},
    )


def _ingest_files(context, con, dataset: str, files, seen: dict[str, str], events: list, deadline: float
                  ) -> tuple[list[str], list[str], str | None]:
    """Ingest one dataset's waiting files in order: (hashes and names of the accepted ones,
    why the tick stopped early or None). ``seen`` (the cursor) and ``events`` are updated."""
    hashes, names = [], []
    for path in files:
        if time.monotonic() > deadline:
            break
        try:
            sha = inbox.sha256_file(path)
            if sha in seen:  # copied back, or moved before a crash: same content, never twice
                inbox.settle(path, inbox.IngestResult(dataset, path.name, inbox.file_kind(path), sha, already_ingested=True))
                context.log.info(f"inbox {dataset}/{path.name}: skipped, same content as {seen[sha]}")
                continue
            result = inbox.ingest_or_reject(con, dataset, path, sha)
            if result.accepted:
                # Counted before the move: if the move fails, the rows are committed all the same.
                # A file the ledger already held was ingested by a tick that died before its
                # cursor was saved: request the run again (the same run_key dedupes it).
                seen[sha] = path.name
                hashes.append(sha)
                names.append(path.name)
                if not result.already_ingested:
                    context.log.info(f"inbox {dataset}/{path.name}: {result.inserted} rows added, {result.updated} merged")
                    events.append(dg.AssetMaterialization(
                        asset_key=result.kind, partition=dataset,
                        description=f"appended from inbox file {path.name}",
                        metadata={"file": path.name, "sha256": sha, "rows_added": result.inserted, "rows_merged": result.updated},
                    ))
            dest = inbox.settle(path, result)
        except inbox.TRANSIENT_ERRORS as exc:  # DuckDB or the disk: this file and the rest wait for a later tick
            context.log.warning(f"inbox {dataset}/{path.name}: {type(exc).__name__}: {exc}; retrying next tick")
            return hashes, names, f"{dataset}/{path.name}: {type(exc).__name__}, retrying next tick"
        if not result.accepted:
            context.log.warning(f"inbox {dataset}/{path.name} rejected ({len(result.problems)} problems): see {dest}.reason.txt")
    return hashes, names, None


@dg.sensor(
    job=full_pipeline_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Appends interactions*/descriptions* files from $RECLM_HOME/inbox/<dataset>/ "
    "to the dataset's tables (bad files go to rejected/ with a reason) and recomputes what derives from them.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, duckdb: DuckDBResource):
    ingested = load_cursor(context.cursor)
    root = inbox.inbox_root()
    waiting = {d.name: inbox.pending_files(d) for d in sorted(root.iterdir()) if d.is_dir()} if root.is_dir() else {}
    waiting = {ds: files for ds, files in waiting.items() if files}
    if not waiting:
        return dg.SkipReason(f"no new files in {root}")
    try:
        # Fail fast when a run holds DuckDB (the resource would retry for ~100 s, longer than a tick).
        con = duckdb_lib.connect(duckdb.database)
    except duckdb_lib.IOException as exc:
        return dg.SkipReason(f"DuckDB is busy, retrying next tick: {exc}")

    deadline, requests, events, skipped = time.monotonic() + TICK_BUDGET_SECONDS, [], [], []
    try:
        for dataset, files in waiting.items():
            try:
                ready = inbox.dataset_ready(con, dataset)
            except inbox.TRANSIENT_ERRORS as exc:  # keep the requests already built for other datasets
                skipped.append(f"{dataset}: {type(exc).__name__}, retrying next tick")
                break
            if not ready:
                skipped.append(f"{dataset}: no stored tables yet (materialize the dataset first)")
                continue
            hashes, names, stopped = _ingest_files(context, con, dataset, files, ingested.setdefault(dataset, {}), events, deadline)
            # Requested even when a later file stopped the tick: these files are committed.
            if hashes:
                requests.append(_run_request(dataset, hashes, names, derived_asset_keys(context)))
            if stopped:
                skipped.append(stopped)
                break
    finally:
        con.close()
    for reason in skipped:
        context.log.info(f"inbox skipped {reason}")
    cursor = dump_cursor(ingested)
    if requests:
        missing = [r.partition_key for r in requests if not context.instance.has_dynamic_partition(dataset_partitions.name, r.partition_key)]
        return dg.SensorResult(
            run_requests=requests,
            cursor=cursor,
            asset_events=events,
            dynamic_partitions_requests=[dataset_partitions.build_add_request(missing)] if missing else None,
        )
    return dg.SensorResult(skip_reason="; ".join(skipped) or "no file accepted", cursor=cursor)
