"""The five-item fixture catalogue (reclm folder format) and helpers of the tests in tests/defs."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from reclm_dagster import settings, store
from reclm_dagster.defs.resources import EncoderResource

DATASET = "defs_tiny"
SCHEMA = settings.schema_name(DATASET)
ITEMS = ["m1", "m2", "m3", "m4", "m5"]
HEAVY = [f"u{i}" for i in range(1, 7)]  # consumed all five items: evaluable, and cold-user candidates
LIGHT = ["u7", "u8", "u9"]  # two items each: they get lists

CATALOGUE = pd.DataFrame({
    "item_id": ITEMS,
    "title": ["Orbit of Iron", "Tin Can Odyssey", "Night Harbour", "Salt and Smoke", "Paper Lanterns"],
    "description": [
        "A salvage crew meets a warship AI in deep space; cerebral science fiction about machines.",
        "A clumsy robot and a retired pilot cross the galaxy: a funny space adventure with robots.",
        "A detective walks the rainy docks of a port city in a slow, moody crime thriller.",
        "Two brothers run a barbecue shack in a small town: a warm comedy about food and family.",
        "A quiet drama about a lantern maker and her daughter in an old mountain village.",
    ],
    "domain": ["video"] * 5,
    "language": ["en"] * 5,
})
FACTS = pd.DataFrame({
    "item_id": ["m1", "m1", "m2", "m2", "m3", "m4", "m5", "m3"],
    "relation": ["has_genre", "directed_by", "has_genre", "directed_by", "has_genre", "has_genre", "has_genre", "directed_by"],
    "entity": ["Sci-Fi", "Ada Brook", "Sci-Fi", "Ada Brook", "Crime", "Comedy", "Drama", "Lev Marsh"],
})
DESCRIPTIONS = pd.DataFrame({
    "user_id": ["u1", "u2", "u3", "u7", "u8", "u9", "u4", "u5"],
    "item_id": ["m1", "m2", "m3", "m1", "m4", "", "m5", "m2"],
    "kind": ["review", "tag", "review", "review", "tag", "request", "review", "tag"],
    "text": [
        "Cerebral science fiction, the warship AI is great", "funny robots", "moody crime in the rain",
        "I love science fiction with machines and Sci-Fi ideas", "comedy", "something funny with robots in space",
        "a quiet lovely drama", "space adventure",
    ],
})


def _interactions() -> pd.DataFrame:
    rows = [(u, item) for u in HEAVY for item in ITEMS]
    rows += [("u7", "m1"), ("u7", "m3"), ("u8", "m4"), ("u8", "m5"), ("u9", "m2"), ("u9", "m4")]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    df["weight"] = 1.0 + (df.index % 3)
    df["timestamp"] = 1_700_000_000 + df.index * 3600
    bad = pd.DataFrame({"user_id": ["u9"], "item_id": ["m1"], "weight": [-1.0], "timestamp": [1_700_000_000]})
    return pd.concat([df, bad], ignore_index=True)  # the last row is invalid: it goes to quarantine


def write_catalogue(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    CATALOGUE.to_csv(folder / "items.csv", index=False)
    _interactions().to_csv(folder / "interactions.csv", index=False)
    DESCRIPTIONS.to_csv(folder / "descriptions.csv", index=False)
    FACTS.to_csv(folder / "facts.csv", index=False)
    pd.DataFrame({"user_id": ["u1", "u7"], "other_user_id": ["u2", "u8"]}).to_csv(folder / "user_links.csv", index=False)
    return folder


def ctx() -> dg.AssetExecutionContext:
    return dg.build_asset_context(partition_key=DATASET)


def check_ctx():
    """A check's direct-invocation context with the partition (build_asset_check_context takes none)."""
    return dg.build_op_context(partition_key=DATASET)


def encoder() -> EncoderResource:
    return EncoderResource(model="lexical")


def copy_db(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    if Path(f"{src}.wal").exists():
        shutil.copy(f"{src}.wal", f"{dst}.wal")
    return dst


def read(db: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return store.read_df(con, SCHEMA, table)


def execute(db: Path, sql: str) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute(sql)


def meta(result) -> dict:
    """A result's metadata as plain values (direct invocation keeps what the asset returned)."""
    return {k: getattr(v, "value", v) for k, v in result.metadata.items()}


def check_passes_then_fails(check, db: Path, mutation_sql: str):
    """``check`` passes on the stage's tables and fails once ``mutation_sql`` broke them; the failing result."""
    from dagster_duckdb import DuckDBResource

    res = DuckDBResource(database=str(db))
    assert check(check_ctx(), duckdb=res).passed
    execute(db, mutation_sql)
    result = check(check_ctx(), duckdb=res)
    assert not result.passed
    return result


def stages() -> dict[str, list]:
    """The assets of each stage of ``built``, in graph order."""
    from reclm_dagster.defs.ingest import raw_dataset
    from reclm_dagster.defs.kg import kg_mentions, knowledge_graph
    from reclm_dagster.defs.query import query_index
    from reclm_dagster.defs.recommendations import recommendations
    from reclm_dagster.defs.selection import hybrid_selection
    from reclm_dagster.defs.similarity import item_similarity, user_item_scores
    from reclm_dagster.defs.text import text_embeddings, text_tokens

    return {"raw": [raw_dataset], "text": [text_tokens, text_embeddings], "kg": [knowledge_graph, kg_mentions],
            "selected": [hybrid_selection], "scored": [item_similarity, user_item_scores, query_index], "lists": [recommendations]}


def all_assets() -> list:
    from reclm_dagster.defs.evaluation import evaluation

    return [a for stage in stages().values() for a in stage] + [evaluation]


def io_manager(db: Path):
    from dagster_duckdb import DuckDBResource

    from reclm_dagster.defs.io_manager import ReclmIOManager

    return ReclmIOManager(duckdb=DuckDBResource(database=str(db)))


def resources(db: Path) -> dict[str, object]:
    from dagster_duckdb import DuckDBResource

    from reclm_dagster.defs.resources import MLflowResource

    res = DuckDBResource(database=str(db))
    return {"duckdb": res, "io_manager": io_manager(db), "encoder": encoder(), "mlflow": MLflowResource()}


def inputs(asset: dg.AssetsDefinition, db: Path, **replace: pd.DataFrame) -> dict[str, object]:
    """The asset's upstream data as Dagster would pass it: each input loaded from ``db`` by the IO
    manager, with the input's own metadata (columns) and type; ``replace`` overrides some."""
    from reclm_dagster.defs.common import dataset_partitions

    manager, out = io_manager(db), {}
    instance = dg.DagsterInstance.ephemeral()  # where the dynamic partitions live
    instance.add_dynamic_partitions(dataset_partitions.name, [DATASET])
    for name, key in asset.keys_by_input_name.items():
        if name in replace:
            out[name] = replace[name]
            continue
        spec = asset.node_def.input_def_named(name)
        if spec.dagster_type.is_nothing:  # an ordering dependency (deps=[...]): no value
            continue
        context = dg.build_input_context(name=name, asset_key=key, partition_key=DATASET, asset_partitions_def=dataset_partitions,
                                         definition_metadata=spec.metadata, dagster_type=spec.dagster_type, instance=instance)
        out[name] = manager.load_input(context)
    return out


def value(result, table: str | None = None) -> pd.DataFrame:
    """The frame an asset returned (``table`` of a dict of them)."""
    v = result.value
    return v[table] if table is not None else v
