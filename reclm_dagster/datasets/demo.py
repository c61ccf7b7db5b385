"""The bundled demo: a hand-written catalogue plus users generated from stated tastes.

assets/demo/ holds ``items.csv`` and ``facts.csv`` (reclm folder format, see
datasets/README.md) and ``personas.yaml``. Users are generated, not stored:

1. Each persona's *pool* is the items whose facts match its ``likes`` plus its
   ``items``; ``favourites`` get a three times larger Dirichlet weight.
2. Each user (``u0001``... in persona order) draws n interactions, n uniform in
   ``interactions_per_user``: round(persona_share * n) from the pool without
   replacement, with the user's own Dirichlet preference over it (users of one
   persona overlap but differ); the rest is noise, drawn from the items outside
   the pool with a fixed Zipf popularity.
3. Weight is a 1-5 star rating for every domain: pool items 3.5-5, noise 1-4, so
   the weight carries signal too. Timestamps are spread over ``span_days`` from a
   per-user start, in random order, so a time split holds out persona items and
   noise alike.
4. Descriptions per user: one ``profile`` and one ``request`` (item_id None,
   cycled through the persona's lists so every text is used; the request comes
   after the user's last interaction: what they want next), 1-3 ``tag`` rows on
   consumed pool items (persona tag words or the item's own tags) and 1-2
   ``review`` rows whose stars equal the interaction's weight.
5. ``friend_of`` links: mostly within the persona.
6. Items with a ``price`` get a ``priced_at`` fact (price band).

Everything comes from one ``numpy.random.default_rng(seed)`` stream consumed in
file order (never set order), so every call returns identical frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from reclm_dagster.settings import ASSETS_DIR

from .folder import read_frames
from .schema import Dataset, DatasetError, validate

DEMO_DIR = ASSETS_DIR / "demo"
PERSONAS = "personas.yaml"
FAVOURITE_BOOST = 3.0
DAY = 86_400
# Upper bounds (exclusive) of the price bands, in yuan.
PRICE_BANDS = [(500, "under ¥500"), (2000, "¥500-2,000"), (5000, "¥2,000-5,000"), (float("inf"), "¥5,000 and up")]


@dataclass
class Generated:
    interactions: pd.DataFrame
    descriptions: pd.DataFrame
    user_links: pd.DataFrame
    personas: pd.DataFrame  # user_id, persona: ground truth, for evaluation reports only


def load(folder: Path = DEMO_DIR, name: str = "demo") -> Dataset:
    """The demo dataset: catalogue from the folder, users generated from personas.yaml."""
    folder = Path(folder)
    frames, read_quarantine = read_frames(folder, kinds=("items", "facts"))
    if frames["items"] is None:
        raise DatasetError(f"{folder}: demo catalogue items.csv is missing")
    catalogue = validate(Dataset(name=name, items=frames["items"], facts=frames["facts"], quarantine=read_quarantine))
    gen = generate(catalogue.items, catalogue.facts, read_config(folder))
    facts = pd.concat([catalogue.facts, price_facts(catalogue.items)], ignore_index=True)
    ds = Dataset(name=name, items=catalogue.items, interactions=gen.interactions, descriptions=gen.descriptions,
                 facts=facts, user_links=gen.user_links, quarantine=catalogue.quarantine)
    return validate(ds)


def user_personas(folder: Path = DEMO_DIR) -> pd.DataFrame:
    """user_id -> persona id of the generated users (not part of the Dataset: it is the answer key)."""
    folder = Path(folder)
    frames, _ = read_frames(folder, kinds=("items", "facts"))
    catalogue = validate(Dataset(name="demo", items=frames["items"], facts=frames["facts"]))
    return generate(catalogue.items, catalogue.facts, read_config(folder)).personas


def read_config(folder: Path) -> dict:
    """personas.yaml, with each persona's line number kept for provenance."""
    path = Path(folder) / PERSONAS
    text = path.read_text(encoding="utf-8")
    cfg = yaml.safe_load(text)
    if not isinstance(cfg, dict) or not cfg.get("personas"):
        raise DatasetError(f"{path}: no 'personas' list")
    node = yaml.compose(text)
    seq = next(v for k, v in node.value if k.value == "personas")
    for persona, pnode in zip(cfg["personas"], seq.value):
        persona["_line"] = pnode.start_mark.line + 1
    return cfg


def price_facts(items: pd.DataFrame) -> pd.DataFrame:
    """A 'priced_at' fact per item with a numeric price (lets the graph say 'same price range')."""
    if "price" not in items:
        return pd.DataFrame(columns=["item_id", "relation", "entity_type", "entity", "weight", "source"])
    price = pd.to_numeric(items["price"], errors="coerce")
    has = price.notna()
    bands = price[has].map(lambda p: next(label for top, label in PRICE_BANDS if p < top))
    return pd.DataFrame({"item_id": items.loc[has, "item_id"], "relation": "priced_at", "entity_type": "price_band",
                         "entity": bands, "weight": 1.0, "source": "items.csv:price"})


def persona_pool(persona: dict, items: pd.DataFrame, facts: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Items of a persona in catalogue order, and their Dirichlet weights."""
    liked = {(etype, entity) for etype, names in (persona.get("likes") or {}).items() for entity in names}
    by_fact = facts[[(t, e) in liked for t, e in zip(facts["entity_type"], facts["entity"])]]["item_id"]
    wanted = set(by_fact) | set(persona.get("items") or []) | set(persona.get("favourites") or [])
    unknown = sorted(wanted - set(items["item_id"]))
    if unknown:
        raise DatasetError(f"{PERSONAS}:{persona['_line']}: persona {persona['id']!r} names unknown items {unknown}")
    pool = [i for i in items["item_id"] if i in wanted]  # catalogue order: deterministic
    if len(pool) < 2:
        raise DatasetError(f"{PERSONAS}:{persona['_line']}: persona {persona['id']!r} matches fewer than 2 items")
    favs = set(persona.get("favourites") or [])
    base = float(persona.get("dirichlet_alpha", 1.0))
    alpha = np.array([base * (FAVOURITE_BOOST if i in favs else 1.0) for i in pool])
    return pool, alpha


def generate(items: pd.DataFrame, facts: pd.DataFrame, cfg: dict) -> Generated:
    """Users, interactions, descriptions and friend links, deterministically from cfg['seed']."""
    rng = np.random.default_rng(int(cfg["seed"]))
    all_items = list(items["item_id"])
    ctx = {
        "cfg": cfg,
        "all_items": all_items,
        "titles": dict(zip(items["item_id"], items["title"])),
        "own_tags": facts[facts["relation"] == "tagged_as"].groupby("item_id", sort=False)["entity"].agg(list).to_dict(),
        "popularity": 1.0 / (rng.permutation(len(all_items)) + 1.0) ** float(cfg.get("noise_popularity_exponent", 0.8)),
        "start": int(pd.Timestamp(cfg["start"], tz="UTC").timestamp()),
    }
    inter, desc, who = [], [], []
    for persona in cfg["personas"]:
        pool, alpha = persona_pool({"dirichlet_alpha": cfg.get("dirichlet_alpha", 1.0), **persona}, items, facts)
        prov = {"_source": PERSONAS, "_line": persona["_line"]}
        for j in range(int(persona["users"])):
            uid = f"u{len(who) + 1:04d}"
            who.append((uid, persona["id"]))
            rows, texts = _draw_user(rng, j, persona, pool, alpha, ctx)
            inter += [dict(user_id=uid, item_id=i, weight=w, timestamp=t, **prov) for i, w, t in rows]
            desc += [dict(description_id=f"demo-{uid}-{n}", user_id=uid, kind=kind, text=text, item_id=item,
                          rating=rating, timestamp=ts, **prov)
                     for n, (kind, text, item, rating, ts) in enumerate(texts, start=1)]
    personas = pd.DataFrame(who, columns=["user_id", "persona"])
    return Generated(
        interactions=pd.DataFrame(inter),
        descriptions=pd.DataFrame(desc),
        user_links=_friends(rng, personas, cfg),
        personas=personas,
    )


def _draw_user(rng: np.random.Generator, j: int, persona: dict, pool: list[str], alpha: np.ndarray, ctx: dict):
    """One user's (item, stars, time) rows and (kind, text, item, rating, time) descriptions."""
    cfg, all_items = ctx["cfg"], ctx["all_items"]
    lo, hi = cfg["interactions_per_user"]
    n = int(rng.integers(lo, hi + 1))
    k = min(len(pool), int(round(cfg["persona_share"] * n)))
    liked = [str(i) for i in rng.choice(pool, size=k, replace=False, p=rng.dirichlet(alpha))]
    in_pool = set(pool)
    outside = [x for x, i in enumerate(all_items) if i not in in_pool]
    weights = ctx["popularity"][outside] / ctx["popularity"][outside].sum()
    noise = [all_items[x] for x in rng.choice(outside, size=n - k, replace=False, p=weights)]
    stars = list(rng.choice([3.5, 4.0, 4.5, 5.0], size=k, p=[0.1, 0.25, 0.3, 0.35]))
    stars += list(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], size=n - k, p=[0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1]))
    t0 = ctx["start"] + int(rng.integers(0, 60 * DAY))
    times = np.sort(rng.integers(t0, t0 + int(cfg["span_days"]) * DAY, size=n))
    chosen = liked + noise
    order = rng.permutation(n)  # which draw happens at which time
    rows = [(chosen[o], float(stars[o]), int(times[r])) for r, o in enumerate(order)]
    when = {i: t for i, _, t in rows}
    rated = {i: w for i, w, _ in rows}

    texts = [
        ("profile", persona["profile"][j % len(persona["profile"])], None, None, t0),
        # what they want next: after the last interaction, so it can drive a held-out evaluation
        ("request", persona["requests"][j % len(persona["requests"])], None, None, int(times[-1]) + 3600),
    ]
    n_tags = min(k, int(rng.integers(cfg["tags_per_user"][0], cfg["tags_per_user"][1] + 1)))
    for item in map(str, rng.choice(liked, size=n_tags, replace=False)):
        words = list(persona["tags"]) + ctx["own_tags"].get(item, [])
        texts.append(("tag", str(rng.choice(words)), item, None, when[item] + 600))
    templates = cfg["review_templates"][persona.get("language", "en")]
    n_rev = int(rng.integers(cfg["reviews_per_user"][0], cfg["reviews_per_user"][1] + 1))
    for item in map(str, rng.choice(chosen, size=n_rev, replace=False)):
        mood = "good" if rated[item] >= 4 else "ok" if rated[item] >= 3 else "bad"
        line = str(rng.choice(templates[mood])).format(title=ctx["titles"][item])
        texts.append(("review", line, item, rated[item], when[item] + 1800))
    return rows, texts


def _friends(rng: np.random.Generator, personas: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    users = personas["user_id"].to_numpy()
    groups = personas.groupby("persona", sort=False)["user_id"].agg(list).to_dict()
    links = []
    for uid, pid in personas.itertuples(index=False):
        for _ in range(int(cfg["friends_per_user"])):
            same = rng.random() < float(cfg["friends_same_persona"])
            other = str(rng.choice(groups[pid] if same else users))
            if other != uid:
                links += [(uid, other), (other, uid)]
    df = pd.DataFrame(links, columns=["user_id", "other_user_id"]).drop_duplicates()
    return df.assign(relation="friend_of", _source=PERSONAS, _line=0)
