"""The IO manager: asset values stored as tables in the deployment's storage, loaded back as arguments.

Partition key (a dataset) → its schema (``settings.schema_name``), asset key → a table of that
name. Built over the ``duckdb`` resource, so the same code writes the local DuckDB file and the
distributed deployment's Parquet files (``ParquetDuckDBResource``). Every write goes through
``store.replace_tables``: a failed step leaves the previous table intact.

- An output that is a DataFrame or Arrow table becomes the table named like the asset.
- An output that is a ``dict`` of frames is written in ONE transaction (e.g. the lists and their
  ``recommendations_info``): a kill -9 never leaves half of them (tests/test_crash_campaign.py).
- An output whose definition metadata sets ``WRITTEN_BY_ASSET`` was committed by the asset itself
  (the raw tables and the inbox replay share one transaction, as do the three graph tables);
  only its metadata is recorded here, and it is loaded like any other.

An input loads the upstream table as a DataFrame (an Arrow table when annotated ``pa.Table``).
``AssetIn(metadata={"columns": [...]})`` reads only those columns (the dagster-duckdb
convention); ``{"tables": [...]}`` loads an asset stored as several tables as a dict of them;
``{"missing_ok": True}`` leaves out tables not stored (None for a single one) instead of failing.
"""

# No `from __future__ import annotations`: Dagster reads the resource dependency's annotation as a type.
import json
from collections.abc import Mapping

import dagster as dg
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from reclm_dagster import settings, store

WRITTEN_BY_ASSET = "reclm/written_by_asset"


def _schema_of(context: dg.InputContext | dg.OutputContext) -> str:
    if not context.has_asset_partitions:
        raise dg.Failure(f"{context.asset_key.to_user_string()} has no dataset partition: reclm stores every asset per dataset")
    return settings.schema_name(context.asset_partition_key)


def _columns(frame: pd.DataFrame | pa.Table) -> dg.TableSchema:
    if isinstance(frame, pa.Table):
        return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in frame.schema])
    return dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])


def _rows(frame: pd.DataFrame | pa.Table) -> int:
    return frame.num_rows if isinstance(frame, pa.Table) else len(frame)


class ReclmIOManager(dg.ConfigurableIOManager):
    """Tables per dataset in the deployment's storage (see the module docstring)."""

    duckdb: dg.ResourceDependency[DuckDBResource]

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is None:  # an asset that produced nothing (e.g. encoder_finetuned when skipped)
            return
        table = context.asset_key.path[-1]
        tables = dict(obj) if isinstance(obj, Mapping) else {table: obj}
        bad = [k for k, v in tables.items() if not isinstance(v, pd.DataFrame | pa.Table)]
        if bad:
            raise dg.Failure(f"{table}: cannot store {', '.join(bad)} ({type(tables[bad[0]]).__name__}): "
                             "return a DataFrame, an Arrow table or a dict of them")
        if not context.definition_metadata.get(WRITTEN_BY_ASSET):
            with self.duckdb.get_connection() as con:
                store.replace_tables(con, _schema_of(context), tables)  # one transaction for all of them
        meta: dict[str, object] = {}
        if table in tables:
            meta["dagster/row_count"] = _rows(tables[table])
            # the raw tables show the schema's contract (defs/ingest.py); the others what was stored
            if "dagster/column_schema" not in context.definition_metadata:
                meta["dagster/column_schema"] = _columns(tables[table])
        if len(tables) > 1 or table not in tables:
            meta["stored_tables"] = dg.MetadataValue.json({k: _rows(v) for k, v in tables.items()})
        context.add_output_metadata(meta)

    def load_input(self, context: dg.InputContext) -> object:
        schema = _schema_of(context)
        wanted = context.definition_metadata or {}
        columns = wanted.get("columns")
        names = list(wanted.get("tables") or [context.asset_key.path[-1]])
        arrow = context.dagster_type.typing_type is pa.Table
        with self.duckdb.get_connection() as con:
            missing = [n for n in names if not store.table_exists(con, schema, n)]
            if wanted.get("missing_ok"):  # e.g. no stored selection yet: the asset falls back on its own
                names = [n for n in names if n not in missing]
            elif missing:
                raise dg.Failure(f"table {schema}.{missing[0]} is not stored: materialize "
                                 f"{context.asset_key.to_user_string()} for dataset {context.asset_partition_key} first")
            sql_columns = ", ".join(f'"{c}"' for c in columns) if columns else "*"
            loaded = {n: (con.sql(f'SELECT {sql_columns} FROM "{schema}"."{n}"').to_arrow_table() if arrow
                          else store.read_df(con, schema, n, sql_columns)) for n in names}
        context.log.debug(f"loaded {json.dumps({n: _rows(v) for n, v in loaded.items()})} from {schema}")
        return loaded if "tables" in wanted else loaded.get(names[0]) if names else None
