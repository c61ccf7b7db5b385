"""The evaluation's lap clock: every stage timed, memory peaks recorded where they happen."""

import numpy as np

from reclm_dagster.profiling import LapClock, peak_rss_mb, rss_mb


def test_laps_time_each_stage_and_see_an_allocation_in_the_peak():
    laps = LapClock()
    laps("nothing")
    block = np.ones((64, 2**20), np.uint8)  # 64 MiB, touched
    laps("allocate")
    table = laps.table()
    assert list(table["stage"]) == ["nothing", "allocate"] and (table["seconds"] >= 0).all()
    # resident memory shows the allocation; the peak never falls and is never below it
    # (the peak itself may not move: earlier work in this process can have gone higher)
    assert table["rss_mb"].iloc[1] >= table["rss_mb"].iloc[0] + 60
    assert table["peak_rss_mb"].is_monotonic_increasing and (table["peak_rss_mb"] >= table["rss_mb"] - 1).all()
    assert peak_rss_mb() >= rss_mb() - 1 and block.sum() == 64 * 2**20


def test_stage_metrics_have_mlflow_safe_names():
    import pandas as pd

    from reclm_dagster.defs.evaluation import stage_metrics

    stages = pd.DataFrame({"stage": ["hybrid fit and tuning", "re-ranker"], "seconds": [2.5, 1.0],
                           "rss_mb": [100.0, 90.0], "peak_rss_mb": [120.0, 130.0]})
    assert stage_metrics(stages) == {"stage_hybrid_fit_and_tuning_seconds": 2.5, "stage_hybrid_fit_and_tuning_peak_rss_mb": 120.0,
                                     "stage_re_ranker_seconds": 1.0, "stage_re_ranker_peak_rss_mb": 130.0}
