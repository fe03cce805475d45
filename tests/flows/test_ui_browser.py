"""The Prefect UI in headless Chromium: a flow run page lists every stage as a completed task run,
both deployments run when triggered (the pipeline from its page, like a user would), the `stage`
run form offers the DAG's stage names, and a stage run shows its headline metrics as an artifact."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.flows.conftest import TARGET

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1600"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        why = "needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver (.ci/run does)"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def dag(built):
    from flows.dag import read_dag
    return read_dag(built.root)


def task_runs_on_page(driver, url: str, expected: int) -> dict[str, str]:
    """Open a flow run's page, switch to its Task Runs tab, return {task run name: state shown}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(EC.element_to_be_clickable((By.ID, "task-runs"))).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".task-run-list-item")) >= expected)
    return {item.find_element(By.CSS_SELECTOR, ".state-list-item__name").text:
            item.find_element(By.CSS_SELECTOR, ".state-badge").text
            for item in driver.find_elements(By.CSS_SELECTOR, ".task-run-list-item")}


def test_flow_run_page_lists_every_stage_completed(browser, built, prefect_api, tmp_path):
    ui = prefect_api.removesuffix("/api")
    assert task_runs_on_page(browser, f"{ui}/runs/flow-run/{built.flow_run_id}", len(built.stages)) == \
        {stage: "Completed" for stage in built.stages}
    shot = tmp_path / "flow-run.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


@pytest.fixture(scope="module")
def served(built, prefect_api, tmp_path_factory):
    """`python -m flows ui --api-url ...`: both deployments served for the built project."""
    from prefect import get_client

    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [sys.executable, "-m", "flows", "ui", "--api-url", prefect_api, "--workspace", str(built.root),
           "--target", TARGET, "--no-schedule"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=os.environ | {"PREFECT_HOME": str(tmp_path_factory.mktemp("serve-home"))})
    deadline = time.monotonic() + 90
    with get_client(sync_client=True) as client:
        while True:
            try:
                ids = {name: client.read_deployment_by_name(f"{name}/{name}").id for name in ("pipeline", "stage")}
                break
            except Exception:  # not registered yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"deployments were not served:\n{log.read_text()}")
                time.sleep(1)
    yield ids
    proc.terminate()
    proc.wait(30)


def wait_for_run(deployment_id, parameters: dict | None = None, timeout: float = 180):
    """The deployment's flow run (the one with these `parameters`, when given), once it has finished."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            of_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            runs = [r for r in client.read_flow_runs(deployment_filter=of_deployment)
                    if (parameters or {}).items() <= r.parameters.items()]
            if runs and runs[0].state.is_final():
                return runs[0]
            time.sleep(1)
    pytest.fail("the triggered flow run did not finish")


def test_deployments_run_when_triggered(browser, built, served, prefect_api, tmp_path):
    from prefect.deployments import run_deployment
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    ui = prefect_api.removesuffix("/api")
    browser.get(f"{ui}/deployments/deployment/{served['pipeline']}")
    wait = WebDriverWait(browser, 60)
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Run']"))).click()
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Quick run']"))).click()
    run = wait_for_run(served["pipeline"])
    assert run.state.is_completed(), run.state.message
    assert task_runs_on_page(browser, f"{ui}/runs/flow-run/{run.id}", len(built.stages)) == \
        {stage: "Completed" for stage in built.stages}
    browser.save_screenshot(str(tmp_path / "triggered-run.png"))

    stage = run_deployment("stage/stage", parameters={"stage": "segment@scenes"}, timeout=180)
    assert stage.state.is_completed(), stage.state.message


def test_api_refuses_an_unknown_stage_listing_the_stages(dag, served, prefect_api):
    """`prefect deployment run` with a typo: one line naming the problem and the choices, no flow run."""
    res = subprocess.run([sys.executable, "-m", "prefect", "deployment", "run", "stage/stage", "-p",
                          "stage=features@scnes"], env=os.environ | {"PREFECT_API_URL": prefect_api},
                         capture_output=True, text=True, timeout=120)
    out = " ".join((res.stdout + res.stderr).split())  # the console wraps long lines
    choices = ", ".join(map(repr, dag))
    assert res.returncode == 1 and "Traceback" not in out
    assert ("Error creating flow run: Validation failed for field 'stage'. Failure reason: 'features@scnes' "
            f"is not one of [{choices}]") in out


def form_stage_select(driver, ui: str, deployment_id):
    """The `stage` field of the deployment's Custom run form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(f"{ui}/deployments/deployment/{deployment_id}")
    wait = WebDriverWait(driver, 60)
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Run']"))).click()
    wait.until(EC.element_to_be_clickable((By.XPATH, "//*[normalize-space()='Custom run']"))).click()
    field = wait.until(EC.presence_of_element_located((By.XPATH, "//div[contains(@class, 'schema-form-property')]"
                                                       "[.//span[normalize-space()='stage']]//select")))
    return Select(field)


def artifact_table(driver, ui: str, flow_run_id, key: str) -> dict[str, str]:
    """Open the flow run's Artifacts tab, then the artifact `key`: its markdown table as {first cell: second}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{ui}/runs/flow-run/{flow_run_id}")
    wait = WebDriverWait(driver, 60)
    wait.until(EC.element_to_be_clickable((By.ID, "artifacts"))).click()
    wait.until(EC.element_to_be_clickable((By.XPATH, f"//a[.//*[contains(@class, 'artifact-card__title') and "
                                                     f"normalize-space()='{key}']]"))).click()
    rows = wait.until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, ".artifact-data-markdown tbody tr")))
    return {cells[0].text: cells[1].text for cells in (r.find_elements(By.TAG_NAME, "td") for r in rows)}


def test_stage_form_offers_the_stages_and_the_run_shows_its_metrics(browser, built, dag, served, prefect_api,
                                                                   tmp_path):
    ui = prefect_api.removesuffix("/api")
    select = form_stage_select(browser, ui, served["stage"])
    assert [o.get_attribute("value") for o in select.options] == list(dag)
    select.select_by_value("backbone")
    browser.find_element("xpath", "//button[normalize-space()='Submit']").click()
    run = wait_for_run(served["stage"], {"stage": "backbone"})
    assert run.state.is_completed(), run.state.message

    shown = artifact_table(browser, ui, run.id, "metrics-backbone")
    browser.save_screenshot(str(tmp_path / "artifact.png"))
    headline = json.loads((built.root / dag["backbone"].metrics[0]).read_text())
    assert headline and shown.keys() == headline.keys()
    assert {k: float(v) for k, v in shown.items()} == pytest.approx(headline, rel=1e-3)
