"""`reclm ui` in a real browser: Dagster lists every asset, MLflow lists the evaluation runs.

Needs Debian's chromium and chromium-driver (.ci/run installs them); screenshots are saved
under test-artifacts/ for people to look at.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ASSETS = [
    "items", "interactions", "descriptions", "catalogue_facts", "user_links", "quarantine",
    "text_tokens", "text_embeddings", "item_similarity", "user_item_scores",
    "kg_entities", "kg_triples", "recommendations", "evaluation",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@pytest.fixture(scope="module")
def ui(demo_home):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them (make browser-deps): never skip silently there
        pytest.skip(message)
    dagster_port, mlflow_port = _free_port(), _free_port()
    env = {**os.environ, "RECLM_HOME": str(demo_home)}
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "reclm"), "ui", "--port", str(dagster_port), "--mlflow-port", str(mlflow_port)],
        env=env, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180)
        _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120)
        yield f"http://127.0.0.1:{dagster_port}", f"http://127.0.0.1:{mlflow_port}"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1600,2400"):  # tall: the asset list renders only the rows in view
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait_for_text(driver, needles, timeout=90) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element("tag name", "body").text
        if all(n in text for n in needles):
            return text
        time.sleep(1)
    missing = [n for n in needles if n not in text]
    raise AssertionError(f"page never showed {missing}; it showed: {text[:500]!r}")


def test_dagster_ui_lists_every_asset(ui, browser):
    dagster_url, _ = ui
    browser.get(f"{dagster_url}/assets")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _wait_for_text(browser, ASSETS)
    finally:
        browser.save_screenshot(str(ARTIFACTS / "dagster-assets.png"))


def test_mlflow_ui_lists_the_evaluation_runs(ui, browser):
    from mlflow.tracking import MlflowClient

    _, mlflow_url = ui
    client = MlflowClient(tracking_uri=mlflow_url)
    experiment = client.get_experiment_by_name("demo")
    assert experiment is not None
    runs = {r.data.tags["model"]: r for r in client.search_runs([experiment.experiment_id])}
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(f"{mlflow_url}/#/experiments/{experiment.experiment_id}/runs")
    try:
        _wait_for_text(browser, [f"{model} · " for model in runs])
    finally:
        browser.save_screenshot(str(ARTIFACTS / "mlflow-runs.png"))
    # the hybrid's run page shows its metrics with the values the evaluation logged
    hybrid = runs["hybrid"]
    browser.get(f"{mlflow_url}/#/experiments/{experiment.experiment_id}/runs/{hybrid.info.run_id}")
    ndcg = hybrid.data.metrics["ndcg_at_10"]  # the UI prints the full float: compare its first digits
    try:
        text = _wait_for_text(browser, ["ndcg_at_10", "recall_at_20", repr(float(ndcg))[:6]])
    finally:
        browser.save_screenshot(str(ARTIFACTS / "mlflow-hybrid-run.png"))
    assert "encoder_version" in text
