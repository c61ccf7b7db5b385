"""Where a long step spends its time and memory: a lap clock with peak RSS, no dependencies.

``laps = LapClock(); ...; laps("baselines"); ...; laps("hybrid fit")`` records, per stage, the
seconds since the previous lap, the process's resident memory now and its peak so far (peak is
monotonic: the stage where it jumps is the one that allocated). Read by the evaluation asset
(Dagster metadata, MLflow metrics) and `reclm eval --json` ("stages").
"""

from __future__ import annotations

import os
import resource
import sys
import time

import pandas as pd

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident memory of this process now (MiB); NaN where /proc is missing."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB): ru_maxrss is KiB on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class LapClock:
    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.rows: list[dict] = []

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.rows.append({"stage": stage, "seconds": round(now - self._last, 2), "rss_mb": round(rss_mb(), 1),
                          "peak_rss_mb": round(peak_rss_mb(), 1)})
        self._last = now

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["stage", "seconds", "rss_mb", "peak_rss_mb"])
