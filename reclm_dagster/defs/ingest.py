"""Step 1 — raw descriptions: the dataset source named by the partition, in reclm's schema."""


import warnings

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from dagster_pandas import PandasColumn, create_dagster_pandas_dataframe_type
from dagster_pandas.constraints import ColumnDTypeInSetConstraint

from reclm_dagster import checks, settings, store
from reclm_dagster.datasets import INGEST_INFO_TABLE, LOADER_VERSION, DatasetError, load_dataset
from reclm_dagster.datasets.schema import COLUMNS
from reclm_dagster.defs.common import dataset_partitions, run_id_of, schema_of, table_meta, profiled
from reclm_dagster.defs.io_manager import WRITTEN_BY_ASSET
from reclm_dagster.inbox import replay_processed

RAW_TABLES = {
    "items": "Catalogue: id, title, free-text description, domain (video/audio/product), language.",
    "interactions": "Behaviour: user, item, weight (plays, stars, purchases), timestamp.",
    "descriptions": "What users said: tags, reviews, requests (item empty for general requests).",
    "catalogue_facts": "Facts for the knowledge graph: item, relation, entity type, entity, provenance.",
    "user_links": "User-user links (friends) for the knowledge graph.",
    "quarantine": "Rows that failed validation: file, line, field, value, reason.",
}


# The schema's frame behind each raw table, and how its dtype families are stored in DuckDB.
SCHEMA_KIND = {"items": "items", "interactions": "interactions", "descriptions": "descriptions",
               "catalogue_facts": "facts", "user_links": "user_links", "quarantine": "quarantine"}
_STORED_TYPE = {"str": "VARCHAR", "str?": "VARCHAR", "float": "DOUBLE", "float?": "DOUBLE", "ts": "BIGINT", "int": "BIGINT"}
_SHOWN_TYPE = {"str": "string", "str?": "string, nullable", "float": "float64", "float?": "float64, nullable",
               "ts": "int64 unix seconds, nullable", "int": "int64"}


def column_schema(table: str) -> dg.TableSchema:
    """The schema's columns of one raw table, as Dagster shows them on the asset's page."""
    return dg.TableSchema(columns=[dg.TableColumn(col, _SHOWN_TYPE[typ]) for col, typ in COLUMNS[SCHEMA_KIND[table]].items()])


# The pandas dtypes each family may arrive as (the loader's frames, or the same read back from DuckDB).
_PANDAS_DTYPES = {"str": {"object", "string", "str"}, "str?": {"object", "string", "str"}, "float": {"float64"},
                  "float?": {"float64"}, "ts": {"Int64", "int64"}, "int": {"int64", "Int64"}}


def frame_type(table: str) -> dg.DagsterType:
    """The raw table's frame as a dagster-pandas type: every schema column present with its dtype family
    (extra columns, e.g. a catalogue's price, are kept). Checked on the loader's frames before anything
    is stored, and by Dagster on the asset's output; a violation names the table, column and dtype."""
    return create_dagster_pandas_dataframe_type(
        name=f"{table}_frame",
        description=f"The {table} table of reclm's schema (datasets/schema.py).",
        columns=[PandasColumn(col, constraints=[ColumnDTypeInSetConstraint(_PANDAS_DTYPES[typ])])
                 for col, typ in COLUMNS[SCHEMA_KIND[table]].items()],
    )


with warnings.catch_warnings():  # dagster-pandas 0.29 labels its column types beta; they are what we need
    warnings.simplefilter("ignore", dg.BetaWarning)
    FRAME_TYPES = {table: frame_type(table) for table in RAW_TABLES}


def check_frames(frames: dict[str, pd.DataFrame]) -> None:
    """Raise a one-line ``dg.Failure`` for the first frame whose columns or dtypes are not the schema's."""
    for table, frame in frames.items():
        result = dg.check_dagster_type(FRAME_TYPES[table], frame)
        if not result.success:
            raise dg.Failure(f"{table} does not match reclm's schema: {' '.join(str(result.description).split())}")


# The six tables and the inbox replay are committed by the asset itself, in one transaction
# (WRITTEN_BY_ASSET: the IO manager records their metadata and loads them for the assets downstream).
@dg.multi_asset(
    outs={name: dg.AssetOut(description=desc, group_name="ingest", dagster_type=FRAME_TYPES[name],
                            metadata={"dagster/column_schema": column_schema(name), WRITTEN_BY_ASSET: True})
          for name, desc in RAW_TABLES.items()},
    partitions_def=dataset_partitions,
)
@profiled
def raw_dataset(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    """Load, validate and store one dataset; all six tables replace the old ones in one transaction."""
    name = context.partition_key
    dataset = load_dataset(name, settings.data_dir())
    frames = {
        "items": dataset.items,
        "interactions": dataset.interactions,
        "descriptions": dataset.descriptions,
        "catalogue_facts": dataset.facts,
        "user_links": dataset.user_links,
        "quarantine": dataset.quarantine,
    }
    # run_id + fingerprint: the lists record the fingerprint they were built from, so serving can
    # tell when a later run replaced these tables and failed before the lists (serving.stale_lists).
    # The fingerprint stays NULL (= lists stale) until the inbox files are replayed too.
    info = pd.DataFrame({"loader_version": [LOADER_VERSION], "dataset": [name], "run_id": [run_id_of(context)],
                         "ingested_at": [pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)],
                         "fingerprint": pd.Series([None], dtype="string")})
    check_frames(frames)  # a loader returning a wrong column or dtype stops here, before anything is stored
    with duckdb.get_connection() as con:
        if store.table_exists(con, schema_of(context), INGEST_INFO_TABLE):
            owner = store.read_df(con, schema_of(context), INGEST_INFO_TABLE)
            if "dataset" in owner and str(owner["dataset"].iloc[0]) != name:  # never overwrite another dataset's tables
                raise DatasetError(f"schema {schema_of(context)} holds dataset {owner['dataset'].iloc[0]!r}, not {name!r}: rename one")
        store.replace_tables(con, schema_of(context), {**frames, INGEST_INFO_TABLE: info})
        # Files that arrived through the inbox live only in the stored tables: put them back.
        replayed = replay_processed(con, name)
        # The fingerprint of what is stored now, written as a whole table (no UPDATE: the
        # distributed deployment's Parquet files are replaced, never changed in place).
        fingerprinted = info.assign(fingerprint=pd.Series([store.tables_fingerprint(con, schema_of(context))], dtype="string"))
        store.replace_tables(con, schema_of(context), {INGEST_INFO_TABLE: fingerprinted})
        for table in ("interactions", "descriptions"):
            frames[table] = store.read_df(con, schema_of(context), table)
    for result in replayed:
        if not result.accepted:
            context.log.warning(f"inbox file {result.file} no longer applies: {result.reason_text()}")
    if len(dataset.quarantine):
        context.log.warning(f"{len(dataset.quarantine)} rows quarantined in {name}; see table quarantine")
    context.log.info(", ".join(f"{k}={len(v)}" for k, v in frames.items()))
    for key, frame in frames.items():
        yield dg.Output(frame, output_name=key, metadata=table_meta(frame, dataset=name, inbox_files_replayed=len(replayed)))


@dg.asset_check(asset="interactions", partitions_def=dataset_partitions, blocking=True,
                description="Every interaction names a stored catalogue item, with a positive weight.")
def interactions_reference_catalogue(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        passed, meta = checks.interactions_valid(con, schema_of(context))
    return dg.AssetCheckResult(passed=passed, metadata=meta)


def schema_mismatches(con, schema: str, table: str) -> list[str]:
    """'column: expected T, stored U' for every schema column stored with another type (or missing)."""
    stored = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                              [schema, table]).fetchall())
    wrong = []
    for col, typ in COLUMNS[SCHEMA_KIND[table]].items():
        if stored.get(col) != _STORED_TYPE[typ]:
            wrong.append(f"{col}: expected {_STORED_TYPE[typ]}, stored {stored.get(col, 'no such column')}")
    return wrong


def _schema_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=table, name=f"{table}_match_the_schema", partitions_def=dataset_partitions, blocking=True,
                    description=f"The stored {table} table has every column of reclm's schema, with its type: a loader "
                    "that returns a wrong column or dtype is stopped here, before anything reads it.")
    def check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            wrong = schema_mismatches(con, schema_of(context), table)
        return dg.AssetCheckResult(passed=not wrong, metadata={"mismatches": "; ".join(wrong) or "none"})
    return check


schema_checks = [_schema_check(table) for table in RAW_TABLES]
