"""`reclm kg ...`: the stored knowledge graph of a dataset outside reclm.

    reclm kg export --dataset NAME --format graphml|csv [--output PATH] [--force]

GraphML (one file; networkx, Gephi, yEd, Cytoscape read it): a directed multigraph, nodes
with ``type``, ``name``, ``aliases``, ``domain``; edges with ``relation``, ``weight``,
``provenance``. CSV (a folder): ``entities.csv``, ``triples.csv``, ``relations.csv`` and, when
linked, ``mentions.csv``. Reads the DuckDB tables written by ``reclm run``.

An export never overwrites or deletes what it did not write: it is written beside the target
and renamed into place; an existing target is refused unless ``--force`` is given and the
target is an earlier reclm export (a GraphML file that starts with ``MARK``, or a folder with a
``.reclm-export`` marker and only the files an export writes). The default location, under
RECLM_HOME, replaces an earlier export there without ``--force``.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pandas as pd

from reclm_dagster import settings, store
from reclm_dagster.cli_args import dataset_arg

FORMATS = ("graphml", "csv")
MARK = "<!-- written by reclm kg export -->"
MARKER_FILE = ".reclm-export"
CSV_FILES = {"kg_entities": "entities.csv", "kg_triples": "triples.csv", "kg_relations": "relations.csv", "kg_mentions": "mentions.csv"}


class KGExportError(Exception):
    """A one-line, user-facing problem (reported with exit code 2)."""


def _error_class():
    try:
        from reclm_dagster.serving import ReclmError

        return ReclmError
    except Exception:  # pragma: no cover - serving is always importable in reclm
        return KGExportError


def read_graph_tables(dataset: str) -> dict[str, pd.DataFrame]:
    """kg_entities, kg_triples (and kg_relations, kg_mentions when stored) of one dataset."""
    err = _error_class()
    path = settings.duckdb_path()
    schema = settings.schema_name(dataset)
    if not path.exists():
        raise err(f"no reclm store at {path}: run `reclm run --dataset {dataset}` first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        if not (store.table_exists(con, schema, "kg_entities") and store.table_exists(con, schema, "kg_triples")):
            raise err(f"dataset '{dataset}' has no knowledge graph in {path}: run `reclm run --dataset {dataset}` first")
        tables = {name: store.read_df(con, schema, name) for name in ("kg_entities", "kg_triples")}
        for name in ("kg_relations", "kg_mentions"):
            if store.table_exists(con, schema, name):
                tables[name] = store.read_df(con, schema, name)
        return tables
    finally:
        con.close()


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def write_graphml(entities: pd.DataFrame, triples: pd.DataFrame, path: Path) -> tuple[int, int]:
    """GraphML of the graph; networkx when installed, else xml.etree. Returns (nodes, edges)."""
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx is in reclm's environment
        nx = None
    if nx is not None:
        g = nx.MultiDiGraph(name="reclm knowledge graph")
        for eid, etype, name, aliases, domain in zip(entities["entity_id"], entities["entity_type"], entities["name"],
                                                     entities["aliases"], entities["domain"]):
            g.add_node(str(eid), type=_text(etype), name=_text(name), aliases=_text(aliases), domain=_text(domain))
        for h, r, t, w, p in zip(triples["head"], triples["relation"], triples["tail"], triples["weight"], triples["provenance"]):
            g.add_edge(str(h), str(t), relation=_text(r), weight=float(w), provenance=_text(p))
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(_graphml_head())
            for line in nx.generate_graphml(g):
                fh.write(line + "\n")
        return g.number_of_nodes(), g.number_of_edges()
    ns = "http://graphml.graphdrawing.org/xmlns"
    root = ET.Element("graphml", xmlns=ns)
    keys = [("d0", "node", "type", "string"), ("d1", "node", "name", "string"), ("d2", "node", "aliases", "string"),
            ("d3", "node", "domain", "string"), ("d4", "edge", "relation", "string"), ("d5", "edge", "weight", "double"),
            ("d6", "edge", "provenance", "string")]
    for kid, for_, name, typ in keys:
        ET.SubElement(root, "key", {"id": kid, "for": for_, "attr.name": name, "attr.type": typ})
    graph = ET.SubElement(root, "graph", id="G", edgedefault="directed")
    nodes = set()
    for eid, etype, name, aliases, domain in zip(entities["entity_id"], entities["entity_type"], entities["name"],
                                                 entities["aliases"], entities["domain"]):
        node = ET.SubElement(graph, "node", id=str(eid))
        nodes.add(str(eid))
        for kid, value in zip(("d0", "d1", "d2", "d3"), (etype, name, aliases, domain)):
            ET.SubElement(node, "data", key=kid).text = _text(value)
    n_edges = 0
    for n, (h, r, t, w, p) in enumerate(zip(triples["head"], triples["relation"], triples["tail"], triples["weight"], triples["provenance"])):
        for end in (str(h), str(t)):
            if end not in nodes:
                ET.SubElement(graph, "node", id=end)
                nodes.add(end)
        edge = ET.SubElement(graph, "edge", id=f"e{n}", source=str(h), target=str(t))
        for kid, value in zip(("d4", "d5", "d6"), (r, float(w), p)):
            ET.SubElement(edge, "data", key=kid).text = _text(value)
        n_edges += 1
    with open(path, "wb") as fh:
        fh.write(_graphml_head().encode("utf-8"))
        ET.ElementTree(root).write(fh, encoding="utf-8", xml_declaration=False)
    return len(nodes), n_edges


def _graphml_head() -> str:
    # The marker comment right after the declaration is how --force knows the file is ours.
    return f"<?xml version='1.0' encoding='utf-8'?>\n{MARK}\n"


def export_graph(dataset: str, fmt: str, output: Path | None = None, force: bool = False) -> dict[str, object]:
    """Write the dataset's stored graph; returns {path, format, nodes, edges}."""
    err = _error_class()
    if fmt not in FORMATS:
        raise err(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
    default = settings.reclm_home() / "exports" / (f"{dataset}_kg.graphml" if fmt == "graphml" else f"{dataset}_kg")
    # abspath, not resolve(): a symlinked --output is refused as a link, never followed.
    target = Path(os.path.abspath(output)) if output else default
    replace = _may_replace(target, fmt, force or not output)
    tables = read_graph_tables(dataset)
    entities, triples = tables["kg_entities"], tables["kg_triples"]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".reclm-kg-", dir=target.parent))
    except OSError as exc:
        raise err(f"cannot write the export to {target}: {exc.strerror or exc}") from None
    try:
        if fmt == "graphml":
            written = tmp / target.name
            nodes, edges = write_graphml(entities, triples, written)
        else:
            written = tmp / "export"
            written.mkdir()
            for table, filename in CSV_FILES.items():
                if table in tables:
                    tables[table].to_csv(written / filename, index=False)
            (written / MARKER_FILE).write_text(f"reclm kg export\ndataset: {dataset}\n", encoding="utf-8")
            nodes = len(set(entities["entity_id"]) | set(triples["head"]) | set(triples["tail"]))
            edges = len(triples)
        _move_into_place(written, target, replace, tmp)
    except OSError as exc:
        raise err(f"cannot write the export to {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only our staging folder (and a replaced earlier export)
    return {"path": str(target), "format": fmt, "nodes": int(nodes), "edges": int(edges)}


def _may_replace(target: Path, fmt: str, allowed: bool) -> bool:
    """False when the target is free; True when it is an earlier export we may replace; else a one-line refusal."""
    if not target.exists() and not target.is_symlink():
        return False
    why = _not_an_export(target, fmt)
    if allowed and why is None:
        return True
    hint = "pass --force to replace it" if why is None else f"it {why}, so reclm will not replace it; choose a new --output"
    raise _error_class()(f"{target} already exists: {hint}")


def _not_an_export(target: Path, fmt: str) -> str | None:
    """None when target is an earlier reclm export of this format, else why it is not."""
    if target.is_symlink():
        return "is a symbolic link"
    if fmt == "graphml":
        if not target.is_file():
            return "is not a file"
        with open(target, "rb") as fh:
            head = fh.read(512).decode("utf-8", errors="replace")
        ours = MARK in head.split("\n")[:2] and "<graphml" in head
        return None if ours else "is not a GraphML file written by reclm"
    if not target.is_dir():
        return "is not a folder"
    marker = target / MARKER_FILE
    if not marker.is_file() or not marker.read_text(encoding="utf-8", errors="replace").startswith("reclm kg export"):
        return f"has no {MARKER_FILE} marker (not a reclm export)"
    foreign = sorted(p.name for p in target.iterdir() if p.name not in {*CSV_FILES.values(), MARKER_FILE} or not p.is_file())
    return f"holds files reclm did not write ({', '.join(foreign[:3])})" if foreign else None


def _move_into_place(written: Path, target: Path, replace: bool, tmp: Path) -> None:
    """Rename the staged export onto target; an earlier export goes into the staging folder to be removed."""
    if replace:
        if written.is_dir():  # a folder cannot be renamed over a non-empty one: move the old aside first
            os.rename(target, tmp / "previous")
            try:
                os.rename(written, target)
            except OSError:
                os.rename(tmp / "previous", target)
                raise
        else:
            os.replace(written, target)
        return
    # No-clobber, even if something appeared at target since the check: rename() of a folder
    # fails on an existing non-empty folder or a file, link() fails on anything existing.
    try:
        if written.is_dir():
            os.rename(written, target)
        else:
            try:
                os.link(written, target)
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: check, then rename
                if target.exists() or target.is_symlink():
                    raise FileExistsError(target) from None
                os.rename(written, target)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise _error_class()(f"{target} already exists: choose a new --output") from None
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise _error_class()(f"{target} already exists: choose a new --output") from None
        raise


def cmd_kg_export(args: argparse.Namespace) -> int:
    out = export_graph(args.dataset, args.format, Path(args.output) if args.output else None, force=args.force)
    print(f"knowledge graph of '{args.dataset}': {out['nodes']} nodes, {out['edges']} edges -> {out['path']} ({out['format']})")
    return 0


def add_kg_parser(subparsers) -> argparse.ArgumentParser:
    """Add `kg` (with `kg export`) to reclm's sub-commands."""
    p = subparsers.add_parser("kg", help="the stored knowledge graph: export it")
    kg_sub = p.add_subparsers(dest="kg_command", required=True)
    e = kg_sub.add_parser("export", help="write the dataset's knowledge graph as GraphML or CSV")
    e.add_argument("--dataset", type=dataset_arg, default=settings.DEFAULT_DATASET,
                   help="dataset name: 'demo' (bundled) or a folder under RECLM_DATA_DIR")
    e.add_argument("--format", choices=FORMATS, default="graphml", help="graphml (one file) or csv (a folder of tables)")
    e.add_argument("--output", default=None, help="file (graphml) or folder (csv); default $RECLM_HOME/exports/<dataset>_kg[.graphml]")
    e.add_argument("--force", action="store_true", help="replace an earlier reclm export at --output (nothing else)")
    e.set_defaults(fn=cmd_kg_export)
    return p
