"""Plots of offline metrics for MLflow artifacts and the Dagster UI."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs inside Dagster workers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_metrics_at_k(metrics: pd.DataFrame, path: Path, title: str, names=("ndcg", "recall")) -> Path:
    """One panel per metric family, one line per model, K on the x axis (slice 'all')."""
    m = metrics[metrics["slice"] == "all"]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, family in zip(axes[0], names):
        sub = m[m["metric"].str.startswith(f"{family}@")].copy()
        sub["k"] = sub["metric"].str.split("@").str[1].astype(int)
        for model, g in sub.sort_values("k").groupby("model", sort=False):
            ax.plot(g["k"], g["value"], marker="o", label=model)
        ax.set_xlabel("K")
        ax.set_ylabel(f"{family.upper()}@K")
        ax.set_xticks(sorted(sub["k"].unique()))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
