"""`reclm serve` (issue 13.6): the CLI's JSON over HTTP on 127.0.0.1, from an index built once."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_home):
    import os

    import uvicorn

    from reclm_dagster import server as srv
    from reclm_dagster.encoders.registry import dataset_encoder_spec, load_encoder

    old = os.environ.get("RECLM_HOME")
    os.environ["RECLM_HOME"] = str(demo_home)
    encoder = load_encoder(dataset_encoder_spec("demo", None), 64, "auto")
    port = _free_port()
    http = uvicorn.Server(uvicorn.Config(srv.create_app("demo", encoder), host=srv.HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=http.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not http.started and time.monotonic() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", encoder
    http.should_exit = True
    thread.join(timeout=10)
    if old is None:
        os.environ.pop("RECLM_HOME", None)
    else:
        os.environ["RECLM_HOME"] = old


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_answers_equal_the_clis_json(server, demo_home, monkeypatch):
    from reclm_dagster import cli_args, serving

    base, encoder = server
    monkeypatch.setenv("RECLM_HOME", str(demo_home))
    status, health = get(f"{base}/health")
    assert status == 200 and health["dataset"] == "demo" and health["users_with_lists"] > 100
    status, rows = get(f"{base}/recommend?user=u0001&k=5")
    assert status == 200 and rows == json.loads(json.dumps(cli_args.bound_rows(serving.recommend_for_user("demo", "u0001", 5))))
    q = "a funny space adventure with robots"
    status, rows = get(f"{base}/query?" + urllib.parse.urlencode({"q": q, "k": 7, "user": "u0001"}))
    cli = serving.recommend_for_query("demo", q, 7, encoder, user_id="u0001")
    assert status == 200 and [r["item_id"] for r in rows] == [r["item_id"] for r in cli]
    assert rows[0]["scores"] == pytest.approx(cli[0]["scores"])


def test_a_users_mistake_is_one_line_and_4xx(server):
    base, _ = server
    status, body = get(f"{base}/recommend?user=nobody")
    assert status == 404 and body["error"].startswith("unknown user 'nobody'") and "\n" not in body["error"]
    status, body = get(f"{base}/recommend?user=u0001&k=0")
    assert status == 400 and "from 1 to" in body["error"]
    status, body = get(f"{base}/query?" + urllib.parse.urlencode({"q": "x" * 5000}))
    assert status == 400 and "the limit is" in body["error"]
    status, body = get(f"{base}/query?q=%20")
    assert status == 400 and body["error"].startswith("empty query")


def test_it_listens_on_loopback_only(server):
    from reclm_dagster import server as srv

    port = int(server[0].rsplit(":", 1)[1])
    assert srv.HOST == "127.0.0.1"
    addresses = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1", "127.0.1.1"}
    for address in addresses:  # another interface of this machine is refused
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((address, port)) != 0
