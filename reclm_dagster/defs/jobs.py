"""Jobs: the whole asset graph for one dataset (the partition is inferred from the assets)."""

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    name="reclm_full",
    selection=dg.AssetSelection.all(),
    description="Raw descriptions → tokens → embeddings → similarity → hybrid selection → evaluation → KG-enriched lists, for one dataset.",
)
