"""Both UIs in a real browser (Playwright driving Debian's /usr/bin/chromium) against the local stack.

Prefect: open the `retrain-adhoc` deployment, start a run with Run -> Quick run, see it reach Completed, its
task runs and its report artifact. MLflow: open the experiment, find the run, see its metrics and artifacts,
and the registered model with its `champion` alias. The links both ways: the Prefect run's link artifact to its
MLflow run, the night report, the registered version, and the run's description back to the flow run.
Screenshots go to test-artifacts/ops/browser/; with STAIRWAYS_DOCS_SCREENSHOTS=1 (`make screenshots`) the
README images in docs/ are re-taken as well.
"""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from ops.stack import LocalStack
from tests.ops.support import (
    EXPERIMENT_NAME,
    FINAL_STATES,
    MODEL_NAME,
    PROMOTABLE_PARAMETERS,
    REPO,
    REPORT_ARTIFACT_KEYS,
    SMALL_PARAMETERS,
    TEST_ARTIFACTS,
    alias_version,
    parent_runs,
    versions_of_run,
)

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = TEST_ARTIFACTS / "browser"
DOCS = REPO / "docs"
DOCS_LIMIT_BYTES = 300_000
RUN_TIMEOUT = 600.0
# MLflow UI one-time pop-ups (registry promo modal, assistant panel) would cover the pages in screenshots.
MLFLOW_QUIET_UI = """
try {
  localStorage.setItem('_mlflow_model_registry_promo_modal_dismissed_v1', 'true');
  localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
  localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
} catch (error) {}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing and could not be installed (`make browsers` apt-installs chromium)"
        )
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except sync_api.Error as error:
            pytest.skip(f"chromium at {CHROMIUM} does not start: {error}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(MLFLOW_QUIET_UI)
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    yield opened
    context.close()


def _shot(page: Any, name: str, *, docs_name: str | None = None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    if docs_name and os.environ.get("STAIRWAYS_DOCS_SCREENSHOTS") == "1":
        _save_for_docs(path, DOCS / docs_name)
    return path


def _save_for_docs(source: Path, target: Path) -> None:
    """A README copy: 256-colour palette PNG (a UI screenshot stays sharp), under the size limit."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    if target.stat().st_size > DOCS_LIMIT_BYTES:
        with Image.open(source) as image:
            smaller = image.convert("RGB").resize(
                (image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS
            )
            smaller.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    assert target.stat().st_size <= DOCS_LIMIT_BYTES, f"{target} is {target.stat().st_size} bytes"


class _RetryUnavailable(httpx.HTTPTransport):
    """Retries a 503, as Prefect's own client does: the server answers 503 while its SQLite database is busy
    (right after `prefect deploy`, the scheduler is writing the nightly deployment's runs)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(6):
            response = super().handle_request(request)
            if response.status_code != 503 or attempt == 5:
                return response
            response.close()
            time.sleep(0.5 * 2**attempt)
        return response


def _api(stack: LocalStack) -> httpx.Client:
    return httpx.Client(base_url=stack.prefect_api_url, timeout=30.0, transport=_RetryUnavailable())


def _wait_for_flow_run(api: httpx.Client, flow_run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        flow_run = api.get(f"/flow_runs/{flow_run_id}").raise_for_status().json()
        if flow_run["state_type"] in FINAL_STATES:
            return flow_run
        time.sleep(1.0)
    msg = f"flow run {flow_run_id} not finished after {RUN_TIMEOUT:.0f} s"
    raise TimeoutError(msg)


def test_prefect_ui_quick_run_of_the_adhoc_deployment(local_stack: LocalStack, page: Any) -> None:
    api = _api(local_stack)
    deployment = api.get("/deployments/name/nightly-retrain/retrain-adhoc").raise_for_status().json()
    # Quick run uses the deployment's parameters: make them the small run for the test, restore them after.
    api.patch(f"/deployments/{deployment['id']}", json={"parameters": SMALL_PARAMETERS}).raise_for_status()
    try:
        page.goto(f"{local_stack.prefect_url}/deployments", wait_until="networkidle")
        page.get_by_role("link", name="retrain-adhoc", exact=True).first.click()
        page.wait_for_url(f"**/deployments/deployment/{deployment['id']}")
        page.get_by_text("flows/retrain.py:nightly_retrain").wait_for()
        _shot(page, "prefect-01-deployment")

        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Quick run", exact=True).click()
        # The UI mounts its toast container twice; the topmost copy takes the click.
        view_run = page.get_by_role("button", name="View run").last
        run_name = page.locator(".toast-flow-run-create__message--emphasized").first.inner_text()
        view_run.click()
        page.wait_for_url("**/runs/flow-run/**")
        flow_run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        _shot(page, "prefect-02-run-started")

        flow_run = _wait_for_flow_run(api, flow_run_id)
        assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
        assert flow_run["deployment_id"] == deployment["id"]
        assert flow_run["parameters"] == SMALL_PARAMETERS
        assert flow_run["name"] == run_name
        # The page polls the API; the header badge turns Completed without a reload.
        header_badge = page.locator(".state-badge").first
        header_badge.filter(has_text="Completed").wait_for(timeout=60_000)
        page.get_by_text(flow_run["name"]).first.wait_for()
        page.reload(wait_until="networkidle")  # redraw the run graph from the finished run, not the live one

        task_runs = api.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}).json()
        page.get_by_text("Task Runs", exact=True).first.click()
        page.get_by_text(f"{len(task_runs)} Task runs").first.wait_for()
        page.get_by_text(re.compile(r"^close-tracking-run-")).first.wait_for()
        page.wait_for_timeout(1500)  # let the graph settle
        _shot(page, "prefect-03-task-runs", docs_name="prefect-flow-run.png")

        artifacts = api.post("/artifacts/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}).json()
        by_key = {artifact["key"]: artifact for artifact in artifacts if artifact.get("key")}
        key = next(key for key in REPORT_ARTIFACT_KEYS if key in by_key)
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text(key, exact=True).first.click()
        page.wait_for_url("**/artifacts/artifact/**")
        heading = next(
            line.lstrip("#").strip() for line in str(by_key[key]["data"]).splitlines() if line.strip()
        )
        page.get_by_text(heading).first.wait_for()
        _shot(page, "prefect-04-report-artifact")
    finally:
        api.patch(f"/deployments/{deployment['id']}", json={"parameters": {}}).raise_for_status()


@pytest.fixture(scope="module")
def tracked_run(local_stack: LocalStack) -> dict[str, str]:
    """A completed adhoc run (lenient gate: promotable while there is no champion) and its MLflow run."""
    api = _api(local_stack)
    deployment = api.get("/deployments/name/nightly-retrain/retrain-adhoc").raise_for_status().json()
    created = (
        api.post(
            f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": PROMOTABLE_PARAMETERS}
        )
        .raise_for_status()
        .json()
    )
    flow_run = _wait_for_flow_run(api, created["id"])
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    mlflow = MlflowClient(tracking_uri=local_stack.mlflow_url)
    (parent,) = parent_runs(mlflow, created["id"])
    return {"flow_run_name": flow_run["name"], "run_id": parent.info.run_id, "run_name": parent.info.run_name}


def test_mlflow_ui_run_metrics_artifacts_and_champion(
    local_stack: LocalStack, tracked_run: dict[str, str], page: Any
) -> None:
    mlflow = MlflowClient(tracking_uri=local_stack.mlflow_url)
    run = mlflow.get_run(tracked_run["run_id"])

    page.goto(f"{local_stack.mlflow_url}/#/experiments", wait_until="load")
    page.get_by_text(EXPERIMENT_NAME, exact=True).first.wait_for()
    page.get_by_text("Model training", exact=True).first.click()
    page.get_by_text(EXPERIMENT_NAME, exact=True).first.click()
    page.get_by_text(tracked_run["run_name"], exact=True).first.wait_for()
    _shot(page, "mlflow-01-experiment-runs")

    page.get_by_text(tracked_run["run_name"], exact=True).first.click()
    page.wait_for_url(f"**/runs/{tracked_run['run_id']}**")
    for metric in ("qc.success_percent", "cycle.score"):
        assert metric in run.data.metrics
        page.get_by_text(metric, exact=True).first.wait_for()
    _shot(page, "mlflow-02-run-overview", docs_name="mlflow-run.png")

    page.get_by_role("tab", name="Artifacts").click()
    top_level = {item.path for item in mlflow.list_artifacts(run.info.run_id)}
    assert {"qc", "labels", "config"} <= top_level
    for folder in sorted(top_level):
        page.get_by_text(folder, exact=True).first.wait_for()
    page.get_by_text("qc", exact=True).first.click()
    page.get_by_text("report.md", exact=True).first.click()
    page.get_by_text("expect_column_values_to_not_be_null").first.wait_for()
    _shot(page, "mlflow-03-qc-report")
    page.get_by_text("labels", exact=True).first.click()
    page.get_by_text("report.png", exact=True).first.click()
    page.locator("img[src^='blob:']").first.wait_for()
    _shot(page, "mlflow-04-label-report")

    champion = alias_version(mlflow, "champion")
    own_versions = versions_of_run(mlflow, run.info.run_id)
    if champion is None and not own_versions:
        return  # no registry stage in this flow: nothing registered to show
    page.goto(f"{local_stack.mlflow_url}/#/models/{MODEL_NAME}", wait_until="load")
    for version in own_versions:
        page.get_by_text(f"Version {version.version}", exact=True).first.wait_for()
    if champion is not None:
        row = (
            page.locator("tr, [role=row]").filter(has_text=f"Version {champion}").filter(has_text="champion")
        )
        row.first.wait_for()
    _shot(page, "mlflow-05-registered-model")


def test_click_through_prefect_run_to_mlflow_report_and_model_and_back(
    local_stack: LocalStack, tracked_run: dict[str, str], page: Any
) -> None:
    """The links both ways, followed in the browser as a user would: the Prefect run's link artifact to its
    MLflow run, the night report, the registered version it produced, and the run's description back to
    the Prefect flow run."""
    mlflow = MlflowClient(tracking_uri=local_stack.mlflow_url)
    run = mlflow.get_run(tracked_run["run_id"])
    flow_run_id = run.data.tags["prefect.flow_run_id"]
    run_page = f"{local_stack.mlflow_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"

    # Prefect flow run -> Artifacts -> the MLflow run link
    page.goto(f"{local_stack.prefect_url}/runs/flow-run/{flow_run_id}", wait_until="networkidle")
    page.get_by_text(tracked_run["flow_run_name"]).first.wait_for()
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("mlflow-run", exact=True).first.click()
    page.wait_for_url("**/artifacts/artifact/**")
    link = page.get_by_role("link", name=f"MLflow run {run.info.run_id}").first
    assert link.get_attribute("href") == run_page
    _shot(page, "links-01-prefect-mlflow-link")

    # ... to the MLflow run, whose description links back to the flow run
    page.goto(run_page, wait_until="load")
    page.get_by_text(tracked_run["run_name"], exact=True).first.wait_for()
    back = page.get_by_role("link", name="Prefect flow run").first
    back.wait_for()
    prefect_link = back.get_attribute("href")
    assert prefect_link == run.data.tags["prefect.flow_run_url"]
    assert flow_run_id in prefect_link
    _shot(page, "links-02-mlflow-run-description")

    # the night report, from the Prefect artifact to MLflow's artifact view of the HTML page
    page.goto(f"{local_stack.prefect_url}/runs/flow-run/{flow_run_id}", wait_until="networkidle")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("night-report", exact=True).first.click()
    page.wait_for_url("**/artifacts/artifact/**")
    report_link = page.get_by_role("link", name="Night report (MLflow)").first.get_attribute("href")
    assert report_link == f"{run_page}/artifacts/report/night.html"
    page.goto(report_link, wait_until="load")
    frame = page.frame_locator("iframe").first
    frame.get_by_text("Night report:", exact=False).first.wait_for()
    frame.get_by_text("Transaction costs", exact=False).first.wait_for()
    _shot(page, "links-03-night-report", docs_name="night-report.png")

    # the registered version this run produced, and from it back to the run
    (version,) = versions_of_run(mlflow, run.info.run_id)
    page.goto(f"{local_stack.mlflow_url}/#/models/{MODEL_NAME}/versions/{version.version}", wait_until="load")
    page.get_by_text(f"Version {version.version}", exact=False).first.wait_for()
    page.get_by_text("gate.verdict", exact=True).first.wait_for()
    _shot(page, "links-04-model-version")
    page.get_by_role("link", name=tracked_run["run_name"]).first.click()
    page.wait_for_url(f"**/runs/{run.info.run_id}**")

    # and back to Prefect by the description's link
    page.get_by_role("link", name="Prefect flow run").first.wait_for()
    page.goto(prefect_link, wait_until="networkidle")
    page.get_by_text(tracked_run["flow_run_name"]).first.wait_for()
    _shot(page, "links-05-back-in-prefect")
