"""Step 1 — raw descriptions: the dataset source named by the partition, in reclm's schema."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from reclm_dagster import checks, settings, store
import pandas as pd

from reclm_dagster.datasets import INGEST_INFO_TABLE, LOADER_VERSION, DatasetError, load_dataset
from reclm_dagster.defs.common import dataset_partitions, run_id_of, schema_of, table_meta
from reclm_dagster.inbox import replay_processed

RAW_TABLES = {
    "items": "Catalogue: id, title, free-text description, domain (video/audio/product), language.",
    "interactions": "Behaviour: user, item, weight (plays, stars, purchases), timestamp.",
    "descriptions": "What users said: tags, reviews, requests (item empty for general requests).",
    "catalogue_facts": "Facts for the knowledge graph: item, relation, entity type, entity, provenance.",
    "user_links": "User-user links (friends) for the knowledge graph.",
    "quarantine": "Rows that failed validation: file, line, field, value, reason.",
}


@dg.multi_asset(
    specs=[dg.AssetSpec(name, description=desc, group_name="ingest") for name, desc in RAW_TABLES.items()],
    partitions_def=dataset_partitions,
)
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
    with duckdb.get_connection() as con:
        if store.table_exists(con, schema_of(context), INGEST_INFO_TABLE):
            owner = store.read_df(con, schema_of(context), INGEST_INFO_TABLE)
            if "dataset" in owner and str(owner["dataset"].iloc[0]) != name:  # never overwrite another dataset's tables
                raise DatasetError(f"schema {schema_of(context)} holds dataset {owner['dataset'].iloc[0]!r}, not {name!r}: rename one")
        store.replace_tables(con, schema_of(context), {**frames, INGEST_INFO_TABLE: info})
        # Files that arrived through the inbox live only in the stored tables: put them back.
        replayed = replay_processed(con, name)
        con.execute(f'UPDATE "{schema_of(context)}".{INGEST_INFO_TABLE} SET fingerprint = ?',
                    [store.tables_fingerprint(con, schema_of(context))])
        for table in ("interactions", "descriptions"):
            frames[table] = store.read_df(con, schema_of(context), table)
    for result in replayed:
        if not result.accepted:
            context.log.warning(f"inbox file {result.file} no longer applies: {result.reason_text()}")
    if len(dataset.quarantine):
        context.log.warning(f"{len(dataset.quarantine)} rows quarantined in {name}; see table quarantine")
    context.log.info(", ".join(f"{k}={len(v)}" for k, v in frames.items()))
    for key, frame in frames.items():
        yield dg.MaterializeResult(asset_key=key, metadata=table_meta(frame, dataset=name, inbox_files_replayed=len(replayed)))


@dg.asset_check(asset="interactions", partitions_def=dataset_partitions, blocking=True,
                description="Every interaction names a stored catalogue item, with a positive weight.")
def interactions_reference_catalogue(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        passed, meta = checks.interactions_valid(con, schema_of(context))
    return dg.AssetCheckResult(passed=passed, metadata=meta)
