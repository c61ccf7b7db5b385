"""The kinds of hostile input the bad-input campaign tries (see bad_input_campaign.py).

A case starts from a small valid catalogue (items, interactions, descriptions), changes one
file and says, for every row of that file, what must happen to it: ``good`` rows are stored
exactly, ``bad`` rows are quarantined, ``maybe`` rows are stored as given or quarantined.
Whole-file problems (binary, missing column) may be refused (``refusal_ok``).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

KEYS = {
    "items": ("item_id", "title"),
    "interactions": ("user_id", "item_id", "weight", "timestamp"),
    "descriptions": ("description_id", "user_id", "item_id", "kind", "text"),
}
HEADERS = {
    "items": "item_id,title,domain",
    "interactions": "user_id,item_id,weight,timestamp",
    "descriptions": "description_id,user_id,item_id,kind,text",
}
BASE_LINES = {
    "items": ["i1,One,video", "i2,Two,audio", "i3,Three,video", "007,Bond,video", "7,Seven,audio"],
    "interactions": ["u1,i1,1,1000", "u1,i2,2,1001", "u2,i1,3,1002", "u3,007,4,1003"],
    "descriptions": ["d1,u1,i1,tag,rock", "d2,u2,i2,review,Great film"],
}
BASE_ROWS = {
    "items": [("i1", "One"), ("i2", "Two"), ("i3", "Three"), ("007", "Bond"), ("7", "Seven")],
    "interactions": [("u1", "i1", 1.0, 1000), ("u1", "i2", 2.0, 1001), ("u2", "i1", 3.0, 1002), ("u3", "007", 4.0, 1003)],
    "descriptions": [("d1", "u1", "i1", "tag", "rock"), ("d2", "u2", "i2", "review", "Great film")],
}


def padding(table: str, n: int) -> tuple[list[str], list[tuple]]:
    """n more valid rows (the campaign's --scale)."""
    if table == "items":
        return [f"x{k},Title {k},video" for k in range(n)], [(f"x{k}", f"Title {k}") for k in range(n)]
    if table == "interactions":
        return [f"s{k},i{1 + k % 3},1,{2000 + k}" for k in range(n)], [(f"s{k}", f"i{1 + k % 3}", 1.0, 2000 + k) for k in range(n)]
    return [f"e{k},s{k},i1,tag,word {k}" for k in range(n)], [(f"e{k}", f"s{k}", "i1", "tag", f"word {k}") for k in range(n)]


@dataclass
class Case:
    name: str
    table: str = "interactions"
    good: list[tuple[str, tuple]] = field(default_factory=list)  # (line, stored row)
    bad: list[str] = field(default_factory=list)
    maybe: dict[tuple, str] = field(default_factory=dict)  # stored row if kept -> line
    header: str | None = None
    base: bool = True  # keep the base rows
    transform: Callable[[bytes], bytes] | None = None  # encoding, line endings, binary ...
    raw: bytes | None = None  # the whole file, as is
    fmt: str = "csv"
    refusal_ok: bool = False
    others_may_quarantine: bool = False  # e.g. interactions of items a changed items.csv lost
    extra_files: dict[str, bytes] = field(default_factory=dict)
    replace_rows: list[tuple] | None = None  # the rows stored when not the base + good (e.g. merged duplicates)

    @property
    def file_name(self) -> str:
        return f"{self.table}.{self.fmt}" if self.fmt != "csv" else f"{self.table}.csv"

    def good_rows(self, scale: int = 0) -> list[tuple]:
        padded = padding(self.table, scale)[1] if self.raw is None else []  # a raw file is taken as it is
        if self.replace_rows is not None:
            return list(self.replace_rows) + padded
        return (list(BASE_ROWS[self.table]) if self.base else []) + [r for _, r in self.good] + padded

    def data_rows(self, scale: int = 0) -> int:
        return len(self.good_rows(scale)) + len(self.bad) + len(self.maybe)

    def content(self, scale: int = 0) -> bytes:
        if self.raw is not None:
            return self.raw
        lines = [self.header if self.header is not None else HEADERS[self.table]]
        lines += (BASE_LINES[self.table] if self.base else []) + [line for line, _ in self.good]
        lines += self.bad + list(self.maybe.values()) + padding(self.table, scale)[0]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if self.fmt == "parquet":
            data = _to_parquet(data)
        return self.transform(data) if self.transform else data

    def base_folder(self, root: Path) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        for table in HEADERS:
            (root / f"{table}.csv").write_text("\n".join([HEADERS[table], *BASE_LINES[table]]) + "\n", encoding="utf-8")
        return root

    def write(self, root: Path, scale: int = 0) -> Path:
        self.base_folder(root)
        if self.fmt != "csv":
            (root / f"{self.table}.csv").unlink()
        (root / self.file_name).write_bytes(self.content(scale))
        for name, data in self.extra_files.items():
            (root / name).write_bytes(data)
        return root

    def write_inbox_file(self, folder: Path, scale: int = 0) -> Path:
        """The inbox appends new rows: the file holds the case's own rows without the base rows."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.table}_campaign.{self.fmt}"
        path.write_bytes(dataclasses.replace(self, base=False).content(scale))
        return path


def _to_parquet(csv_bytes: bytes, **dtypes) -> bytes:
    df = pd.read_csv(io.BytesIO(csv_bytes), dtype=str, keep_default_na=False)
    for col, dtype in dtypes.items():
        df[col] = df[col].astype(dtype)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("interactions.csv", data)
    return buf.getvalue()


def _parquet_frame(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def I(line: str, row: tuple) -> tuple[str, tuple]:  # noqa: E743 - a good interaction line and its stored row
    return line, row


def _value_cases() -> list[Case]:
    """One bad (or doubtful) value in an otherwise valid interactions file."""
    cases = []
    for label, weight in [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("negative", "-1"), ("overflow", "1e400"),
                          ("text", "abc"), ("decimal comma", '"1,5"'), ("empty", ""), ("zero", "0")]:
        cases.append(Case(f"weight {label}", bad=[f"u9,i1,{weight},1000"]))
    cases.append(Case("weight padded with spaces", maybe={("u9", "i1", 3.0, 1000): "u9,i1, 3 ,1000"}))
    cases.append(Case("weight tiny", good=[I("u9,i1,1e-300,1000", ("u9", "i1", 1e-300, 1000))]))
    for label, ts in [("20 digits", "99999999999999999999"), ("1e30", "1e30"), ("-1e19", "-1e19"), ("text", "not a time"),
                      ("NaN", "NaN"), ("inf", "inf")]:
        cases.append(Case(f"timestamp {label}", bad=[f"u9,i1,1,{ts}"]))
    cases.append(Case("timestamp empty", good=[I("u9,i1,1,", ("u9", "i1", 1.0, None))]))
    cases.append(Case("timestamp ISO date", maybe={("u9", "i1", 1.0, 1546300800): "u9,i1,1,2019-01-01 00:00:00"}))
    cases.append(Case("timestamp before 1970", maybe={("u9", "i1", 1.0, -5): "u9,i1,1,-5"}))
    cases.append(Case("timestamp fractional", maybe={("u9", "i1", 1.0, 1): "u9,i1,1,1.5"}))
    cases.append(Case("timestamp in milliseconds", maybe={("u9", "i1", 1.0, 1546300800000): "u9,i1,1,1546300800000"}))
    # ids
    cases.append(Case("user id empty", bad=[",i1,1,1000"]))
    cases.append(Case("item id empty", bad=["u9,,1,1000"]))
    cases.append(Case("item unknown", bad=["u9,i99,1,1000"]))
    cases.append(Case("item id path characters, unknown", bad=["u9,../../x,1,1000"]))
    for label, uid in [("path characters", "../../x"), ("SQL", "x'; DROP TABLE items; --"), ("leading zeros", "0042"),
                       ("emoji", "🎧fan"), ("right-to-left", "مستخدم"), ("CJK", "用户七"), ("very long", "u" * 5000),
                       ("percent and braces", "%s{0}$(x)")]:
        line = f'"{uid}",i1,1,1000' if "'" in uid or "," in uid else f"{uid},i1,1,1000"
        cases.append(Case(f"user id {label}", good=[I(line, (uid, "i1", 1.0, 1000))]))
    cases.append(Case("item id leading zeros 007 vs 7", good=[I("u9,7,1,1000", ("u9", "7", 1.0, 1000))]))
    cases.append(Case("user id padded with spaces", maybe={("u9", "i1", 1.0, 1000): " u9 ,i1,1,1000"}))
    cases.append(Case("NUL byte in an unquoted id", bad=["u9\x00,i1,1,1000", "u1,i3\x00,1,1000"]))
    cases.append(Case("NUL byte in a quoted id", bad=['"u9\x00",i1,1,1000']))
    cases.append(Case("control character in an id", maybe={("u\x019", "i1", 1.0, 1000): "u\x019,i1,1,1000"}))
    cases.append(Case("quoted newline in an id", maybe={("u\n9", "i1", 1.0, 1000): '"u\n9",i1,1,1000'}))
    # row shape
    cases.append(Case("a row with an extra field", bad=["u9,i1,1,1000,surplus"]))
    cases.append(Case("a row with a missing field", bad=["u9,i1"], maybe={}))
    cases.append(Case("blank lines between rows", raw=(
        HEADERS["interactions"] + "\n\n" + "\n\n".join(BASE_LINES["interactions"]) + "\n\n").encode()))
    cases.append(Case("an exact duplicate row", replace_rows=BASE_ROWS["interactions"], good=[], bad=[],
                      raw=("\n".join([HEADERS["interactions"], *BASE_LINES["interactions"], "u1,i1,1,1000"]) + "\n").encode()))
    cases.append(Case("the same pair twice with other weights (max weight, latest time)",
                      replace_rows=[("u1", "i1", 5.0, 1500), *BASE_ROWS["interactions"][1:]],
                      raw=("\n".join([HEADERS["interactions"], *BASE_LINES["interactions"], "u1,i1,5,1500"]) + "\n").encode()))
    cases.append(Case("a comment line", bad=["# exported by tool X"]))
    return cases


def _file_cases() -> list[Case]:
    """Whole-file changes of the interactions file: encodings, line endings, headers, formats."""
    text = lambda enc: (lambda b: b.decode("utf-8").encode(enc))  # noqa: E731
    latin = [I("café,i1,1,1000", ("café", "i1", 1.0, 1000))]
    cases = [
        Case("UTF-8 with BOM", transform=lambda b: b"\xef\xbb\xbf" + b),
        Case("Latin-1 file", good=latin, transform=text("latin-1")),
        Case("cp1252 file with a euro sign", good=[I("€uro,i1,1,1000", ("€uro", "i1", 1.0, 1000))], transform=text("cp1252")),
        Case("UTF-16 with BOM", good=latin, transform=text("utf-16"), refusal_ok=True),
        Case("CRLF line endings", transform=lambda b: b.replace(b"\n", b"\r\n")),
        Case("CR-only line endings", transform=lambda b: b.replace(b"\n", b"\r"), refusal_ok=True),
        Case("mixed LF and CRLF", transform=lambda b: b.replace(b"1000\n", b"1000\r\n")),
        Case("no newline at the end", transform=lambda b: b.rstrip(b"\n")),
        Case("header only", base=False),
        Case("empty file (0 bytes)", raw=b"", refusal_ok=True),
        Case("whitespace only", raw=b"  \n \n", refusal_ok=True),
        Case("missing column item_id", raw=b"user_id,weight\nu1,1\n", refusal_ok=True),
        Case("renamed column userId", header="userId,item_id,weight,timestamp", refusal_ok=True),
        Case("column named twice", header="user_id,item_id,weight,weight", refusal_ok=True),
        Case("upper-case header", header="USER_ID,ITEM_ID,WEIGHT,TIMESTAMP", refusal_ok=True),
        Case("extra column", header="user_id,item_id,weight,timestamp,source",
             transform=lambda b: b.replace(b"\n", b",x\n").replace(b"timestamp,source,x", b"timestamp,source")),
        Case("columns in another order", raw=b"item_id,timestamp,user_id,weight\ni1,1000,u1,1\ni2,1001,u1,2\ni1,1002,u2,3\n007,1003,u3,4\n"),
        Case("semicolon delimiter", transform=lambda b: b.replace(b",", b";"), refusal_ok=True),
        Case("tab delimiter in a .csv", transform=lambda b: b.replace(b",", b"\t"), refusal_ok=True),
        Case("quoted header", header='"user_id","item_id","weight","timestamp"'),
        Case("zip file named .csv", transform=_zip, refusal_ok=True),
        Case("gzip file named .csv", transform=gzip.compress, refusal_ok=True),
        Case("random bytes named .csv", raw=bytes(range(256)) * 8, refusal_ok=True),
        Case("PNG image named .csv", raw=b"\x89PNG\r\n\x1a\n" + bytes(200), refusal_ok=True),
        Case("Parquet file named .csv", transform=_to_parquet, refusal_ok=True),
        Case("CSV file named .parquet", fmt="parquet", raw=b"user_id,item_id\nu1,i1\n", refusal_ok=True),
        Case("Parquet, all strings", fmt="parquet"),
        Case("Parquet, numeric user ids", fmt="parquet", replace_rows=[("11", "i1", 1.0, 1000)],
             raw=_parquet_frame(pd.DataFrame({"user_id": [11], "item_id": ["i1"], "weight": [1.0], "timestamp": [1000]}))),
        Case("Parquet, weight as text with a bad value", fmt="parquet", bad=["u9,i1,abc,1000"]),
        Case("Parquet, datetime timestamps (stored as seconds)", fmt="parquet", replace_rows=[("u1", "i1", 1.0, 1546300800)],
             raw=_parquet_frame(pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "weight": [1.0],
                                              "timestamp": pd.to_datetime(["2019-01-01"])}))),
        Case("Parquet, null user id", fmt="parquet", replace_rows=[("u1", "i1", 1.0, 1000)],
             raw=_parquet_frame(pd.DataFrame({"user_id": ["u1", None], "item_id": ["i1", "i2"], "weight": [1.0, 2.0], "timestamp": [1000, 1001]})),
             maybe={}, bad=["(null user)"]),
        Case("Parquet, NaN and inf weights", fmt="parquet", replace_rows=[("u1", "i1", 1.0, 1000)], bad=["nan", "inf"],
             raw=_parquet_frame(pd.DataFrame({"user_id": ["u1", "u2", "u3"], "item_id": ["i1"] * 3,
                                              "weight": [1.0, float("nan"), float("inf")], "timestamp": [1000] * 3}))),
        Case("interactions.csv and interactions.parquet both present", extra_files={"interactions.parquet": b"PAR1"}, refusal_ok=True),
        Case("a field over 131,072 characters", table="descriptions",
             good=[(f"d9,u1,i1,review,{'x' * 200_000}", ("d9", "u1", "i1", "review", "x" * 200_000))]),
        Case("a 1 MB review", table="descriptions",
             good=[(f"d9,u1,i1,review,{'long ' * 200_000}", ("d9", "u1", "i1", "review", ("long " * 200_000).strip()))]),
    ]
    return cases


def _other_table_cases() -> list[Case]:
    """Items and descriptions."""
    D = lambda line, row: (line, row)  # noqa: E731
    return [
        Case("items: duplicate item id (first kept)", table="items", bad=["i1,Another one,video"]),
        Case("items: unknown domain", table="items", bad=["i8,Eight,radio"]),
        Case("items: empty title", table="items", maybe={("i8", ""): "i8,,video"}),
        Case("items: empty item id", table="items", bad=[",Nameless,video"]),
        Case("items: NUL in an item id", table="items", bad=["i8\x00,Eight,video"]),
        Case("items: id with path characters", table="items", good=[D("../../x,Escape,video", ("../../x", "Escape"))]),
        Case("items: title with quotes, commas and a newline", table="items",
             good=[D('i8,"A ""quoted"", multi\nline title",video', ("i8", 'A "quoted", multi\nline title'))]),
        Case("items: a Latin-1 byte beside valid UTF-8 in a title", table="items",
             good=[D("i8,Caf@E9@ 日本,video", ("i8", "Café 日本"))], transform=lambda b: b.replace(b"@E9@", b"\xe9")),
        Case("items: missing domain column", table="items", raw=b"item_id,title\ni1,One\n", refusal_ok=True),
        Case("items: only items and interactions (no descriptions file)", table="items"),
        Case("items: an item removed that interactions use", table="items", base=False, others_may_quarantine=True,
             good=[D(line, row) for line, row in zip(BASE_LINES["items"][1:], BASE_ROWS["items"][1:])]),
        Case("descriptions: unknown kind", table="descriptions", bad=["d9,u1,i1,rant,boo"]),
        Case("descriptions: unknown item", table="descriptions", bad=["d9,u1,i99,tag,x"]),
        Case("descriptions: empty text", table="descriptions", maybe={("d9", "u1", "i1", "tag", ""): "d9,u1,i1,tag,"}),
        Case("descriptions: duplicate description id", table="descriptions", bad=["d1,u3,i3,tag,jazz"]),
        Case("descriptions: a profile without an item", table="descriptions", good=[D("d9,u1,,profile,likes jazz", ("d9", "u1", None, "profile", "likes jazz"))]),
        Case("descriptions: Chinese review with emoji", table="descriptions",
             good=[D("d9,u1,i1,review,电池续航能力强🔋", ("d9", "u1", "i1", "review", "电池续航能力强🔋"))]),
        Case("descriptions: right-to-left text", table="descriptions", good=[D("d9,u1,i1,tag,موسيقى", ("d9", "u1", "i1", "tag", "موسيقى"))]),
        Case("descriptions: text that looks like SQL", table="descriptions",
             good=[D("d9,u1,i1,tag,'); DROP TABLE descriptions; --", ("d9", "u1", "i1", "tag", "'); DROP TABLE descriptions; --"))]),
        Case("descriptions: missing text column", table="descriptions", raw=b"description_id,user_id,item_id,kind\nd1,u1,i1,tag\n", refusal_ok=True),
        Case("descriptions: NUL inside the text", table="descriptions", bad=['d9,u1,i1,tag,"ro\x00ck"']),
    ]


FILE_CASES: list[Case] = _value_cases() + _file_cases() + _other_table_cases()
_INBOX_NAMES = {"weight nan", "weight negative", "weight text", "timestamp 1e30", "timestamp 20 digits", "item unknown",
                "user id path characters", "user id SQL", "NUL byte in an unquoted id", "a row with an extra field",
                "UTF-8 with BOM", "Latin-1 file", "CRLF line endings", "header only", "empty file (0 bytes)",
                "missing column item_id", "zip file named .csv", "Parquet, all strings", "Parquet, NaN and inf weights",
                "descriptions: duplicate description id", "descriptions: unknown kind", "a field over 131,072 characters"}
INBOX_CASES: list[Case] = [c for c in FILE_CASES if c.name in _INBOX_NAMES]


def CLI_CASES(home: Path) -> list[tuple[list[str], str]]:  # noqa: N802 - a table, built per home
    """(arguments, 'error' | 'ok') for the CLI contract on a home with a finished demo run."""
    user = _a_user(home)
    export = Path(tempfile.mkdtemp(prefix="campaign-", dir=home)) / "export"  # new each time: the first export must succeed
    (home / "not-empty").mkdir(exist_ok=True)
    (home / "not-empty" / "keep.txt").write_text("mine")
    return [
        (["recommend", "--user", user, "-k", "0"], "error"),
        (["recommend", "--user", user, "-k", "-5"], "error"),
        (["recommend", "--user", user, "-k", "1000000000"], "error"),
        (["recommend", "--query", "space robots", "-k", "0"], "error"),
        (["recommend", "--query", "x" * 100_000, "--json"], "error"),
        (["recommend", "--query", "space " * 200, "--json"], "ok"),
        (["recommend", "--user", "no-such-user"], "error"),
        (["recommend", "--user", user, "--json"], "ok"),
        (["recommend", "--user", user, "--dataset", "no-such-dataset"], "error"),
        (["recommend", "--user", user, "--dataset", "/etc"], "error"),
        (["recommend", "--user", user, "--dataset", "../x"], "error"),
        (["recommend", "--query", "rock", "--encoder"], "error"),
        (["recommend", "--query", "rock", "--encoder", "no-such-encoder"], "error"),
        (["recommend"], "error"),
        (["kg", "export", "--format", "csv", "--output", str(home / "not-empty")], "error"),
        (["kg", "export", "--format", "csv", "--output", "/proc/forbidden"], "error"),
        (["kg", "export", "--format", "csv", "--output", str(export)], "ok"),
        (["kg", "export", "--format", "csv", "--output", str(export)], "error"),
        (["no-such-command"], "error"),
        (["eval", "--dataset", "no-such-dataset"], "error"),
        (["eval", "--test-fraction", "1.5"], "error"),
    ]


def _a_user(home: Path) -> str:
    import duckdb

    with duckdb.connect(str(home / "reclm.duckdb"), read_only=True) as con:
        return con.execute("SELECT user_id FROM ds_demo.recommendations LIMIT 1").fetchall()[0][0]
