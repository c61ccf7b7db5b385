"""Splitting, ranking metrics and the full-ranking evaluation protocol."""

from reclm_dagster.evaluation.protocol import evaluate
from reclm_dagster.evaluation.split import SplitCounts, split_interactions

__all__ = ["SplitCounts", "evaluate", "split_interactions"]
