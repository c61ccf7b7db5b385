"""Do explanations cite credible words? Last.fm top-10 lists explained by the old and the new rule.

Issue 11, item 5: "Because you liked The Killers: also tagged 'fucking good'" is a true path
and no reason. Same graph and lists for both rules (the production graph: every interaction,
every user's tags, co-consumption with one common user, friends); the lists come from ItemKNN
(reclm's default CF) for a seeded sample of users. Each explanation is judged by the *new*
definition of credible (``reclm_dagster.kg.evidence``): a clean catalogue fact, a clean tag
given by >= MIN_TAG_USERS distinct users, or the user's own words.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/explanations.py [--users 300] [--seed 0]

Reads RECLM_DATA_DIR (default /work/shared/data) / hetrec2011-lastfm-2k (``--dataset`` for
another); about a minute.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: the box is shared

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reclm_dagster.datasets import load_dataset
from reclm_dagster.kg.build import build_knowledge_graph, co_consumption_triples
from reclm_dagster.kg.coverage import credible_evidence, explanation_coverage
from reclm_dagster.kg.evidence import MIN_TAG_USERS, NEW_RULE, OLD_RULE, tag_user_counts
from reclm_dagster.kg.explain import explain_many
from reclm_dagster.kg.linking import EntityLinker, link_descriptions
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.models.neighbors import ItemKNN
from reclm_dagster.models.ranking import recommend_batches

RESULTS = Path(__file__).parent / "results" / "explanations.json"
DATASET = "hetrec2011-lastfm-2k"


def top_lists(interactions: pd.DataFrame, n_users: int, seed: int, k: int = 10) -> pd.DataFrame:
    """ItemKNN top-k of a seeded sample of users, consumed items excluded."""
    im = InteractionMatrix(interactions)
    model = ItemKNN(k_neighbors=100).fit(im.X)
    users = np.sort(np.random.default_rng(seed).choice(im.shape[0], min(n_users, im.shape[0]), replace=False))
    rows = []
    for r, idx, _ in recommend_batches(model, im.X, users, k):
        for u, ii in zip(r, idx):
            rows += [(im.users[u], im.items[i], n + 1) for n, i in enumerate(ii) if i >= 0]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=os.environ.get("RECLM_DATA_DIR", "/work/shared/data"))
    p.add_argument("--dataset", default=DATASET, help="any loadable dataset; the issue's target is on Last.fm")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", type=int, default=10)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    clock, timings = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    ds = load_dataset(args.dataset, args.data_dir)
    lap("load")
    co = co_consumption_triples(ds.interactions, min_common=1, top_k=10)
    kg = build_knowledge_graph(ds.items, ds.facts, ds.user_links, co, descriptions=ds.descriptions)
    mentions = link_descriptions(ds.descriptions, EntityLinker(kg.entities))  # kg_mentions without embeddings
    tag_users = tag_user_counts(ds.descriptions)  # exact distinct users per tag: the yardstick
    lap("graph")
    recs = top_lists(ds.interactions, args.users, args.seed)
    lap("lists")
    titles = dict(zip(ds.items["item_id"].astype(str), ds.items["title"].astype(str)))
    runs = {
        "old": explain_many(recs, ds.interactions, kg, titles=titles, mentions=mentions, rule=OLD_RULE),
        "new": explain_many(recs, ds.interactions, kg, titles=titles, mentions=mentions,
                            descriptions=ds.descriptions, rule=NEW_RULE),
        # What the recommendations asset gets until it passes descriptions: counts from kg_mentions.
        "new_mention_counts": explain_many(recs, ds.interactions, kg, titles=titles, mentions=mentions, rule=NEW_RULE),
    }
    lap("explain")
    report: dict[str, object] = {
        "dataset": args.dataset, "n_users": int(recs["user_id"].nunique()), "n_rows": int(len(recs)), "seed": args.seed,
        "recommender": "ItemKNN(k_neighbors=100) on all interactions", "min_tag_users": MIN_TAG_USERS,
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/explanations.py",
    }
    for name, out in runs.items():
        cov = explanation_coverage(out, kg, 10, ds.interactions, mentions)
        report[name] = {**credible_evidence(out, kg, 10, tag_users, mentions),
                        "coverage": cov["coverage"], "unfaithful": cov["unfaithful"], "kinds": cov["kinds"]}
    pick = np.random.default_rng(args.seed).choice(len(recs), min(args.examples, len(recs)), replace=False)
    report["examples"] = [
        {"user_id": str(recs["user_id"].iat[i]), "item": titles.get(str(recs["item_id"].iat[i]), ""),
         "before": runs["old"]["explanation"].iat[i], "after": runs["new"]["explanation"].iat[i]}
        for i in sorted(pick)
    ]
    lap("measure")
    report["seconds"] = timings
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    print(f"{args.dataset}: {report['n_rows']} top-10 explanations of {report['n_users']} users (seed {args.seed})")
    print(f"{'rule':<20}{'credible':>9}{'anything':>9}{'coverage':>9}{'unfaithful':>11}{'pieces':>7}  credible by")
    for name in runs:
        r = report[name]
        print(f"{name:<20}{r['credible']:>9.3f}{r['cites_anything']:>9.3f}{r['coverage']:>9.3f}"
              f"{r['unfaithful']:>11}{r['mean_pieces']:>7.2f}  {r['credible_by']}")
    for ex in report["examples"]:
        print(f"- {ex['item']}\n    before: {ex['before']}\n    after:  {ex['after']}")
    print(f"seconds: {timings}; written to {args.out}")


if __name__ == "__main__":
    main()
