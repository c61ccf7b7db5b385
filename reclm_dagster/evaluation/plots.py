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


def plot_popularity_bias(metrics: pd.DataFrame, path: Path, title: str, k: int = 10) -> Path:
    """Per model: share of the top-k from the 10% most popular items, beside catalogue coverage."""
    m = metrics[metrics["slice"] == "all"]
    wide = m.pivot(index="model", columns="metric", values="value")
    cols = [c for c in (f"popularity_bias@{k}", f"coverage@{k}") if c in wide.columns]
    wide = wide[cols].sort_values(cols[0]) if cols else wide
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(wide) + 1.6))
    height = 0.8 / max(len(cols), 1)
    for n, col in enumerate(cols):
        ax.barh([i + n * height for i in range(len(wide))], wide[col], height=height, label=col)
    ax.set_yticks([i + height * (len(cols) - 1) / 2 for i in range(len(wide))])
    ax.set_yticklabels(wide.index)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
