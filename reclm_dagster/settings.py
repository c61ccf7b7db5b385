"""Where reclm reads and writes: one place for paths and defaults.

RECLM_HOME holds everything a run writes (DuckDB, MLflow store, Dagster instance);
RECLM_DATA_DIR is where external datasets are read from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Bundled data and configuration (demo catalogue, stop words): the top-level assets/
# folder of the repository; reclm is installed in editable mode so it is always beside us.
ASSETS_DIR = PACKAGE_DIR.parent / "assets"

DEFAULT_DATASET = "demo"
DEFAULT_K = 10


def reclm_home() -> Path:
    return Path(os.environ.get("RECLM_HOME", "./.reclm")).expanduser().resolve()


def data_dir() -> Path:
    env = os.environ.get("RECLM_DATA_DIR")
    return Path(env).expanduser().resolve() if env else reclm_home() / "datasets"


def duckdb_path() -> Path:
    return reclm_home() / "reclm.duckdb"


def mlflow_dir() -> Path:
    return reclm_home() / "mlflow"


def mlflow_tracking_uri() -> str:
    return f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


def mlflow_artifacts_dir() -> Path:
    return mlflow_dir() / "artifacts"


def dagster_home() -> Path:
    return reclm_home() / "dagster"


def schema_name(dataset: str) -> str:
    """DuckDB schema that holds one dataset's tables (names like 'ml-latest-small' are not identifiers)."""
    return "ds_" + re.sub(r"[^0-9a-zA-Z_]", "_", dataset).lower()


def load_config() -> dict:
    """The pipeline configuration: assets/config/default.yaml, or the file RECLM_CONFIG names."""
    import yaml

    path = Path(os.environ.get("RECLM_CONFIG") or ASSETS_DIR / "config" / "default.yaml")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)
