"""Headless Chromium logs in to both servers, opens the Prefect UI page of a blocked flow run (its
gate task Blocked), its gate report artifact, the MLflow run list (the run Failed) and run page,
checks the verdict is shown, and saves the screenshots (under docs/ with GATES_UPDATE_SCREENSHOTS=1,
so a test run does not rewrite the tracked images; in the test's temp dir otherwise)."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.server_stack import drop_partition, servers  # noqa: F401 - the session's server stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("servers")]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
DOCS = REPO / "docs"


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make system-deps)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _page_shows(driver, url: str, texts: list[str], shot: Path, timeout: float = 60) -> str:
    driver.get(url)
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts):
            time.sleep(0.5)  # let the last fonts and charts paint
            driver.save_screenshot(str(shot))
            return body
        time.sleep(0.5)
    driver.save_screenshot(str(shot.with_suffix(".failed.png")))
    pytest.fail(f"{url} did not show {texts} in {timeout} s; it showed:\n{body[:2000]}")


def test_blocked_run_report_is_shown_in_prefect_and_mlflow_uis(servers, browser, data_dir, tmp_path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    day = drop_partition(data_dir)
    out = tmp_path / "summary.json"
    done = servers.gates_run(servers.config(tmp_path, data_dir), out)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    summary = servers.summary(out)
    blocking = [r["name"] for r in summary["report"]["results"] if r["status"] in ("fail", "error")]
    assert summary["verdict"] == "blocked" and blocking

    mlflow = MlflowClient(servers.mlflow_uri, servers.mlflow_uri)
    run = mlflow.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FAILED"
    flow_run_id = run.data.tags["prefect.flow_run_id"]
    ui = servers.prefect_api.removesuffix("/api")
    shots = DOCS if os.environ.get("GATES_UPDATE_SCREENSHOTS") == "1" else tmp_path / "screenshots"
    shots.mkdir(exist_ok=True)

    _log_in_to_prefect(browser, ui, servers.logins["PREFECT_API_AUTH_STRING"])
    _page_shows(browser, f"{ui}/runs/flow-run/{flow_run_id}", ["Failed", "Blocked"],
                shots / "prefect-blocked-run.png")
    artifact = _artifact_id(servers, flow_run_id)
    report = _page_shows(browser, f"{ui}/artifacts/artifact/{artifact}", [blocking[0], "blocked"],
                         shots / "prefect-gate-report.png")
    assert day in report, "the report names the missing partition"
    _log_in_to_mlflow(browser, servers.logins["MLFLOW_TRACKING_USERNAME"],
                      servers.logins["MLFLOW_TRACKING_PASSWORD"])
    _page_shows(browser, f"{servers.mlflow_uri}/#/experiments/{run.info.experiment_id}/runs",
                [run.info.run_name], shots / "mlflow-run-list.png")
    _page_shows(browser, f"{servers.mlflow_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
                ["gates.verdict", "blocked", "Failed"], shots / "mlflow-blocked-run.png")


def _log_in_to_prefect(driver, ui: str, auth_string: str) -> None:
    """What Prefect's login page does with the auth string: keep it in localStorage, base64."""
    driver.get(f"{ui}/login")
    token = base64.b64encode(auth_string.encode()).decode()
    driver.execute_script("localStorage.setItem('prefect-password', arguments[0])", token)


def _log_in_to_mlflow(driver, user: str, password: str) -> None:
    """MLflow's basic-auth app: every request carries the Authorization header (as after the
    browser's login prompt)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})


def _artifact_id(servers, flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    with servers.prefect():
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["churn-demo-gate-report"])))
    (artifact,) = [a for a in found if str(a.flow_run_id) == flow_run_id]
    return str(artifact.id)
