"""`reclm kg ...`: the stored knowledge graph of a dataset outside reclm.

    reclm kg export --dataset NAME --format graphml|csv [--output PATH]

GraphML (one file; networkx, Gephi, yEd, Cytoscape read it): a directed multigraph, nodes
with ``type``, ``name``, ``aliases``, ``domain``; edges with ``relation``, ``weight``,
``provenance``. CSV (a folder): ``entities.csv``, ``triples.csv``, ``relations.csv`` and, when
linked, ``mentions.csv``. Reads the DuckDB tables written by ``reclm run``; writes atomically.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pandas as pd

from reclm_dagster import settings, store

FORMATS = ("graphml", "csv")


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
        nx.write_graphml(g, path, encoding="utf-8")
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
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return len(nodes), n_edges


def export_graph(dataset: str, fmt: str, output: Path | None = None) -> dict[str, object]:
    """Write the dataset's stored graph; returns {path, format, nodes, edges}."""
    if fmt not in FORMATS:
        raise _error_class()(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
    tables = read_graph_tables(dataset)
    entities, triples = tables["kg_entities"], tables["kg_triples"]
    default_dir = settings.reclm_home() / "exports"
    if fmt == "graphml":
        target = Path(output) if output else default_dir / f"{dataset}_kg.graphml"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kg-", suffix=".graphml", dir=target.parent)
        os.close(fd)
        try:
            nodes, edges = write_graphml(entities, triples, Path(tmp))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        target = Path(output) if output else default_dir / f"{dataset}_kg"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".kg-", dir=target.parent))
        try:
            names = {"kg_entities": "entities.csv", "kg_triples": "triples.csv",
                     "kg_relations": "relations.csv", "kg_mentions": "mentions.csv"}
            for table, filename in names.items():
                if table in tables:
                    tables[table].to_csv(tmp / filename, index=False)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        nodes = len(set(entities["entity_id"]) | set(triples["head"]) | set(triples["tail"]))
        edges = len(triples)
    return {"path": str(target), "format": fmt, "nodes": int(nodes), "edges": int(edges)}


def cmd_kg_export(args: argparse.Namespace) -> int:
    out = export_graph(args.dataset, args.format, Path(args.output) if args.output else None)
    print(f"knowledge graph of '{args.dataset}': {out['nodes']} nodes, {out['edges']} edges -> {out['path']} ({out['format']})")
    return 0


def add_kg_parser(subparsers) -> argparse.ArgumentParser:
    """Add `kg` (with `kg export`) to reclm's sub-commands."""
    p = subparsers.add_parser("kg", help="the stored knowledge graph: export it")
    kg_sub = p.add_subparsers(dest="kg_command", required=True)
    e = kg_sub.add_parser("export", help="write the dataset's knowledge graph as GraphML or CSV")
    e.add_argument("--dataset", default=settings.DEFAULT_DATASET, help="dataset name: 'demo' (bundled) or a folder under RECLM_DATA_DIR")
    e.add_argument("--format", choices=FORMATS, default="graphml", help="graphml (one file) or csv (a folder of tables)")
    e.add_argument("--output", default=None, help="file (graphml) or folder (csv); default $RECLM_HOME/exports/<dataset>_kg[.graphml]")
    e.set_defaults(fn=cmd_kg_export)
    return p
