#!/usr/bin/env bash
# Wall time of a whole `reclm run` on a dataset vs a run after 1% new descriptions arrive
# through the inbox (the embedding cache then encodes only the new texts).
# Usage: benchmarks/incremental_run.sh [DATASET]   (default hetrec2011-lastfm-2k)
# Writes benchmarks/results/incremental_run.json. Uses a throw-away RECLM_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-hetrec2011-lastfm-2k}"
export RECLM_DATA_DIR="${RECLM_DATA_DIR:-$(cd .. && pwd)/shared/data}"
export RECLM_HOME="$(mktemp -d -t reclm-incremental-XXXX)"
trap 'rm -rf "$RECLM_HOME"' EXIT

seconds() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }

full=$(seconds .venv/bin/reclm run --dataset "$DATASET")
.venv/bin/python - "$DATASET" <<'PY'
import sys
import duckdb
import numpy as np
from reclm_dagster import inbox, settings, store

dataset = sys.argv[1]
con = duckdb.connect(str(settings.duckdb_path()), read_only=True)
d = store.read_df(con, settings.schema_name(dataset), "descriptions")
con.close()
n = max(1, len(d) // 100)
new = d.sample(n, random_state=0).copy()
new["description_id"] = [f"inbox-{i}" for i in range(n)]
new["text"] = new["text"].astype(str) + " " + np.random.default_rng(0).choice(["live", "remix", "classic", "vinyl"], size=n)
folder = inbox.inbox_root() / dataset
folder.mkdir(parents=True, exist_ok=True)
path = folder / "descriptions_benchmark.csv"
new[["description_id", "user_id", "item_id", "kind", "text"]].to_csv(path, index=False)
with duckdb.connect(str(settings.duckdb_path())) as con:
    result = inbox.ingest_file(con, dataset, path)
inbox.settle(path, result)
print(f"new descriptions accepted: {result.accepted} ({result.inserted} rows)")
PY
again=$(seconds .venv/bin/reclm run --dataset "$DATASET")
mkdir -p benchmarks/results
printf '{"dataset": "%s", "full_run_s": %.1f, "run_after_1pct_new_descriptions_s": %.1f}\n' "$DATASET" "$full" "$again" \
  | tee benchmarks/results/incremental_run.json
