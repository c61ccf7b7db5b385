"""daily_refresh_schedule: one run per existing dataset partition, dated run keys, stopped by default."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest

RAW = {"items", "interactions", "descriptions", "catalogue_facts", "user_links", "quarantine"}


@pytest.fixture(scope="module")
def repo():
    from reclm_dagster.definitions import build_definitions

    return build_definitions().get_repository_def()


def evaluate(instance, repo, when: datetime):
    from reclm_dagster.defs.schedules import daily_refresh_schedule

    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=when, repository_def=repo)
    return daily_refresh_schedule.evaluate_tick(ctx)


def test_definition():
    from reclm_dagster.defs.schedules import daily_refresh_schedule

    assert daily_refresh_schedule.cron_schedule == "0 3 * * *"
    assert daily_refresh_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert daily_refresh_schedule.job_name == "reclm_full"


@pytest.fixture
def instance():
    # A throwaway persistent instance: build_schedule_context refuses an ephemeral one.
    with dg.instance_for_test() as inst:
        yield inst


def test_one_run_per_partition_with_the_date_in_the_run_key(repo, instance):
    instance.add_dynamic_partitions("datasets", ["demo", "ml-latest-small"])
    # demo's raw tables exist (materialized once); ml-latest-small's were never built.
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="items", partition="demo"))

    day1 = evaluate(instance, repo, datetime(2025, 6, 1, 3, tzinfo=timezone.utc)).run_requests
    assert sorted(r.partition_key for r in day1) == ["demo", "ml-latest-small"]
    keys = {r.partition_key: r.run_key for r in day1}
    assert keys["demo"] != keys["ml-latest-small"] and all("2025-06-01" in k for k in keys.values())
    day2 = evaluate(instance, repo, datetime(2025, 6, 2, 3, tzinfo=timezone.utc)).run_requests
    assert not {r.run_key for r in day1} & {r.run_key for r in day2}  # a new day is a new run

    by_ds = {r.partition_key: r for r in day1}
    demo = {k.to_user_string() for k in by_ds["demo"].asset_selection}
    # Stored dataset: recompute everything derived, including the evaluation, not the raw reload.
    assert {"text_tokens", "text_embeddings", "item_similarity", "kg_triples", "recommendations", "evaluation"} <= demo
    assert not demo & RAW
    assert by_ds["ml-latest-small"].asset_selection is None  # never built: the whole job


def test_no_partitions_skips(repo, instance):
    result = evaluate(instance, repo, datetime(2025, 6, 1, 3, tzinfo=timezone.utc))
    assert not result.run_requests and "no dataset partitions" in result.skip_message
