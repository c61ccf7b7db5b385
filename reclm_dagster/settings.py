"""Where reclm reads and writes: one place for paths and defaults.

RECLM_HOME holds everything a run writes (DuckDB, MLflow store, Dagster instance);
RECLM_DATA_DIR is where external datasets are read from.
"""

from __future__ import annotations

import hashlib
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
    """RECLM_MLFLOW_TRACKING_URI (a tracking server, e.g. http://mlflow:5000), else the sqlite store in RECLM_HOME."""
    return os.environ.get("RECLM_MLFLOW_TRACKING_URI") or f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


# Deployments (issue 12.4): one variable chooses the storage and executor resources; the assets
# and the maths are the same in both.
LOCAL, DISTRIBUTED = "local", "distributed"
DEPLOYMENTS = (LOCAL, DISTRIBUTED)


def deployment() -> str:
    """RECLM_DEPLOYMENT: 'local' (default: one DuckDB file, in-process/multiprocess executor) or
    'distributed' (Dask executor, Parquet storage under RECLM_STORAGE_ROOT, MLflow server)."""
    name = (os.environ.get("RECLM_DEPLOYMENT") or LOCAL).strip().lower()
    if name not in DEPLOYMENTS:
        raise ValueError(f"RECLM_DEPLOYMENT={name!r}: expected one of {', '.join(DEPLOYMENTS)}")
    return name


def mlflow_artifacts_dir() -> Path:
    return mlflow_dir() / "artifacts"


def encoders_dir() -> Path:
    """Fine-tuned encoders (one folder per version: name + weights hash)."""
    return reclm_home() / "encoders"


def dagster_home() -> Path:
    return reclm_home() / "dagster"


# Names kept as they always were: lowercase letters and digits in runs joined by single hyphens
# ('demo' -> ds_demo, 'ml-latest-small' -> ds_ml_latest_small). Their schema never holds '__'.
_PLAIN_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def schema_name(dataset: str) -> str:
    """DuckDB schema that holds one dataset's tables; one schema per exact name (injective).

    A plain name maps to 'ds_' + the name with '-' -> '_' (reversible). Any other name (an
    underscore, a capital, other punctuation, non-ASCII) keeps a readable slug and appends
    '__' + 12 hex digits of the name's sha256, so 'coll-a', 'coll_a' and 'Coll-A' get three
    schemas, and a plain name (never containing '__') cannot meet a hashed one.
    """
    if not dataset:
        raise ValueError("a dataset name cannot be empty")
    slug = re.sub(r"[^0-9a-z]+", "_", dataset.lower()).strip("_")
    if _PLAIN_NAME.fullmatch(dataset):
        return "ds_" + slug
    digest = hashlib.sha256(dataset.encode("utf-8", errors="surrogatepass")).hexdigest()[:12]
    return f"ds_{slug[:48]}__{digest}" if slug else f"ds__{digest}"


def load_config() -> dict:
    """The pipeline configuration: assets/config/default.yaml, or the file RECLM_CONFIG names."""
    import yaml

    path = Path(os.environ.get("RECLM_CONFIG") or ASSETS_DIR / "config" / "default.yaml")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)
