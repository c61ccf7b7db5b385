"""Jobs: the whole asset graph for one dataset (partition)."""

import dagster as dg

from reclm_dagster.defs.common import dataset_partitions

full_pipeline_job = dg.define_asset_job(
    name="reclm_full",
    selection=dg.AssetSelection.all(),
    partitions_def=dataset_partitions,
    description="Raw descriptions → tokens → embeddings → similarity → KG-enriched lists → evaluation, for one dataset.",
)
