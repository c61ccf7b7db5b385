"""Writers of one small raw dataset in every layout reclm reads, for the leakage canary.

Each writer takes the same synthetic content — interactions ``(user, item, timestamp)``
and users' tags ``(user, item, text, timestamp)`` (item None: words about no item) — and
writes it in its layout's own files, so the loader does whatever it does with users'
words (aggregate them into facts, decode them, key them…) exactly as on real data.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

N_USERS, N_ITEMS, PER_USER = 40, 16, 10
# Genre-like tags, each given to several items, so a tag is a feature EASE and the KG keep.
VOCAB = ("ambient", "punk", "baroque", "dubstep")
T0 = 1_200_000_000


@dataclass
class Content:
    interactions: list[tuple[str, str, int]]
    tags: list[tuple[str, str | None, str, int]] = field(default_factory=list)

    def with_tags(self, extra) -> "Content":
        return Content(self.interactions, self.tags + list(extra))

    def without_pairs(self, pairs: set[tuple[str, str]]) -> "Content":
        """The same content with every tag on one of ``pairs`` deleted from the raw data."""
        return Content(self.interactions, [t for t in self.tags if (t[0], t[1]) not in pairs])


def synthetic(seed: int = 0) -> Content:
    """Users with 10 of 16 items each, every pair tagged with its item's genre word."""
    rng = np.random.default_rng(seed)
    inter, tags = [], []
    clock = T0
    for u in range(1, N_USERS + 1):
        for j in sorted(rng.choice(N_ITEMS, size=PER_USER, replace=False)):
            clock += 3600
            inter.append((str(u), str(j + 1), clock))
            tags.append((str(u), str(j + 1), VOCAB[j % len(VOCAB)], clock + 60))
    return Content(inter, tags)


def md5(user: str) -> str:
    return hashlib.md5(user.encode()).hexdigest()


def _write_rows(path: Path, header: list[str] | None, rows, delimiter: str = ",", quoting=csv.QUOTE_MINIMAL) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter, quoting=quoting, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)


def _item_tags(c: Content):
    return [t for t in c.tags if t[1] is not None]


def write_lastfm(folder: Path, c: Content) -> None:
    folder.mkdir(parents=True)
    _write_rows(folder / "artists.dat", ["id", "name", "url", "pictureURL"],
                [(str(j), f"Artist {j}", "", "") for j in range(1, N_ITEMS + 1)], "\t", csv.QUOTE_NONE)
    _write_rows(folder / "user_artists.dat", ["userID", "artistID", "weight"],
                [(u, i, 10 + k % 7) for k, (u, i, _) in enumerate(c.interactions)], "\t", csv.QUOTE_NONE)
    names = list(dict.fromkeys(t[2] for t in _item_tags(c)))
    tag_id = {n: k + 1 for k, n in enumerate(names)}
    _write_rows(folder / "tags.dat", ["tagID", "tagValue"], [(tag_id[n], n) for n in names], "\t", csv.QUOTE_NONE)
    rows = []
    for u, i, text, ts in _item_tags(c):
        d = pd.Timestamp(ts, unit="s")
        rows.append((u, i, tag_id[text], d.day, d.month, d.year))
    _write_rows(folder / "user_taggedartists.dat", ["userID", "artistID", "tagID", "day", "month", "year"], rows, "\t", csv.QUOTE_NONE)
    _write_rows(folder / "user_friends.dat", ["userID", "friendID"], [("1", "2"), ("2", "1")], "\t", csv.QUOTE_NONE)


def write_movielens_csv(folder: Path, c: Content) -> None:
    folder.mkdir(parents=True)
    _write_rows(folder / "movies.csv", ["movieId", "title", "genres"],
                [(str(j), f"Film {j} (2001)", "Drama|Comedy" if j % 2 else "Horror") for j in range(1, N_ITEMS + 1)])
    _write_rows(folder / "ratings.csv", ["userId", "movieId", "rating", "timestamp"],
                [(u, i, 4.0, ts) for u, i, ts in c.interactions])
    _write_rows(folder / "tags.csv", ["userId", "movieId", "tag", "timestamp"], [(u, i, t, ts) for u, i, t, ts in _item_tags(c)])


def write_movielens_10m(folder: Path, c: Content) -> None:
    folder.mkdir(parents=True)
    lines = lambda rows: "".join("::".join(map(str, r)) + "\n" for r in rows)  # noqa: E731
    (folder / "movies.dat").write_text(lines((j, f"Film {j} (2001)", "Drama|Comedy") for j in range(1, N_ITEMS + 1)))
    (folder / "ratings.dat").write_text(lines((u, i, 4, ts) for u, i, ts in c.interactions))
    (folder / "tags.dat").write_text(lines((u, i, t, ts) for u, i, t, ts in _item_tags(c)))


def write_movielens_100k(folder: Path, c: Content) -> None:
    """ml-100k has no users' words at all: tags cannot be written in this layout."""
    folder.mkdir(parents=True)
    (folder / "u.genre").write_text("unknown|0\nDrama|1\n\n")
    (folder / "u.item").write_text("".join(f"{j}|Film {j} (2001)|01-Jan-2001|||0|1\n" for j in range(1, N_ITEMS + 1)))
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t4\t{ts}\n" for u, i, ts in c.interactions))


def write_douban(folder: Path, c: Content) -> None:
    folder.mkdir(parents=True)
    header = ["MOVIE_ID", "NAME", "ALIAS", "ACTORS", "DIRECTORS", "GENRES", "IMDB_ID", "LANGUAGES", "REGIONS",
              "STORYLINE", "TAGS", "YEAR"]
    _write_rows(folder / "movies.csv", header, [(str(j), f"电影{j}", "", "演员甲", "导演乙", "剧情", "", "汉语普通话",
                                                 "中国大陆", "一个故事。", "经典", "2001") for j in range(1, N_ITEMS + 1)],
                quoting=csv.QUOTE_ALL)
    when = lambda ts: pd.Timestamp(ts, unit="s").strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    _write_rows(folder / "ratings.csv", ["RATING_ID", "USER_MD5", "MOVIE_ID", "RATING", "RATING_TIME"],
                [(k + 1, md5(u), i, 4, when(ts)) for k, (u, i, ts) in enumerate(c.interactions)], quoting=csv.QUOTE_ALL)
    _write_rows(folder / "comments.csv", ["comment_time", "content", "douban_id", "rating", "user_md5"],
                [(when(ts), t, i, 4, md5(u)) for u, i, t, ts in _item_tags(c)], quoting=csv.QUOTE_ALL)


def write_folder(folder: Path, c: Content) -> None:
    folder.mkdir(parents=True)
    _write_rows(folder / "items.csv", ["item_id", "title", "domain"], [(str(j), f"Show {j}", "video") for j in range(1, N_ITEMS + 1)])
    _write_rows(folder / "interactions.csv", ["user_id", "item_id", "weight", "timestamp"], [(u, i, 1, ts) for u, i, ts in c.interactions])
    _write_rows(folder / "descriptions.csv", ["description_id", "user_id", "item_id", "kind", "text", "timestamp"],
                [(f"d{k}", u, i or "", "tag" if i else "request", t, ts) for k, (u, i, t, ts) in enumerate(c.tags)])
    _write_rows(folder / "facts.csv", ["item_id", "relation", "entity"], [(str(j), "has_genre", "drama") for j in range(1, N_ITEMS + 1)])


# layout -> (writer, user id as the loader keys it, has users' words)
LAYOUTS = {
    "lastfm": (write_lastfm, str, True),
    "movielens-csv": (write_movielens_csv, str, True),
    "movielens-10m": (write_movielens_10m, str, True),
    "movielens-100k": (write_movielens_100k, str, False),
    "douban": (write_douban, md5, True),
    "folder": (write_folder, str, True),
}
