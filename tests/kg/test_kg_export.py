import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from reclm_dagster import settings, store
from reclm_dagster.kg.build import build_knowledge_graph, co_consumption_triples


@pytest.fixture
def stored_graph(tmp_path, monkeypatch, items, facts, user_links):
    import duckdb

    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    settings.reclm_home().mkdir(parents=True)
    train = pd.DataFrame([("u1", "V1", 1.0), ("u1", "V2", 1.0), ("u2", "V1", 1.0), ("u2", "V2", 1.0)],
                         columns=["user_id", "item_id", "weight"])
    kg = build_knowledge_graph(items, facts, user_links, co_consumption_triples(train))
    con = duckdb.connect(str(settings.duckdb_path()))
    entities = kg.entities.assign(aliases=kg.entities["aliases"].astype(str))
    store.replace_tables(con, settings.schema_name("tiny"),
                         {"kg_entities": entities, "kg_triples": kg.triples, "kg_relations": kg.relations()})
    con.close()
    return kg


def _run(argv):
    import argparse

    from reclm_dagster.cli_kg import add_kg_parser

    parser = argparse.ArgumentParser(prog="reclm")
    add_kg_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.fn(args)


def test_graphml_export_loads_back_with_networkx(stored_graph, tmp_path, capsys):
    nx = pytest.importorskip("networkx")
    out = tmp_path / "g.graphml"
    assert _run(["kg", "export", "--dataset", "tiny", "--format", "graphml", "--output", str(out)]) == 0
    g = nx.read_graphml(out)
    assert g.number_of_nodes() == len(stored_graph.entities)
    assert g.number_of_edges() == len(stored_graph.triples)
    assert g.nodes["genre:science fiction"]["name"] == "Science-Fiction"
    assert g.nodes["item:V1"]["type"] == "item"
    rels = {d["relation"] for _, _, d in g.edges(data=True)}
    assert {"directed_by", "friend_of", "co_consumed_with"} <= rels
    assert f"{len(stored_graph.triples)} edges" in capsys.readouterr().out
    # Plain XML parse agrees.
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ET.parse(out).getroot()
    assert len(root.findall(".//g:edge", ns)) == len(stored_graph.triples)


def test_graphml_without_networkx_has_the_same_counts(stored_graph, tmp_path):
    from reclm_dagster.cli_kg import write_graphml

    out = tmp_path / "plain.graphml"
    nodes, edges = write_graphml(stored_graph.entities, stored_graph.triples, out)
    root = ET.parse(out).getroot()
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    assert len(root.findall(".//g:node", ns)) == nodes == len(stored_graph.entities)
    assert len(root.findall(".//g:edge", ns)) == edges == len(stored_graph.triples)
    nx = pytest.importorskip("networkx")
    assert nx.read_graphml(out).number_of_edges() == edges


def test_csv_export_default_location(stored_graph):
    assert _run(["kg", "export", "--dataset", "tiny", "--format", "csv"]) == 0
    folder = settings.reclm_home() / "exports" / "tiny_kg"
    assert len(pd.read_csv(folder / "triples.csv")) == len(stored_graph.triples)
    assert len(pd.read_csv(folder / "entities.csv")) == len(stored_graph.entities)
    assert (folder / "relations.csv").is_file()


def test_missing_graph_is_a_one_line_error(stored_graph):
    from reclm_dagster.serving import ReclmError

    with pytest.raises(ReclmError, match="reclm run --dataset nope"):
        _run(["kg", "export", "--dataset", "nope"])
