"""The console's other pages in a real browser against the deployed local stack: the catalogue
(every model, its metrics, versions and promotions), a model's drift report with its pictures, and
the API reference (Swagger UI on the live /openapi.json, "try it" with the key). On every page:
axe-core finds nothing serious, the page works at 375 px, and the console logs no error."""

import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import requests
from sklearn.datasets import load_breast_cancer

from tests.conftest import FORM_PORT
from tests.e2e.conftest import axe, configure

pytestmark = pytest.mark.e2e
CONSOLE = f"http://127.0.0.1:{FORM_PORT}"


@pytest.fixture
def open_page(browser, site, stack):
    """A page of the console at a width; on closing, no script error and no console error."""
    configure(site, stack)
    contexts, errors = [], []

    def open_at(path: str, width: int = 1280):
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{path}: {error}"))
        page.on("console", lambda message: message.type == "error" and errors.append(f"{path}: {message.text}"))
        page.goto(f"{CONSOLE}/{path}")
        return page

    allowed: list[str] = []
    open_at.allow = allowed.append  # an error a test causes on purpose (a refused sign-in is a 400)
    yield open_at
    for context in contexts:
        context.close()
    unexpected = [e for e in errors if not any(a in e for a in allowed)]
    assert not unexpected, unexpected


def test_the_catalogue_shows_every_model_with_its_metrics_versions_and_promotions(open_page, stack, artifacts):
    listing = requests.get(f"{stack['api_url']}/models", timeout=30).json()
    page = open_page("models.html")
    page.wait_for_selector("#model-list .model-button")
    shown = page.eval_on_selector_all("#model-list .model-name", "names => names.map(n => n.textContent)")
    assert shown == [m["name"] for m in listing["models"]]
    assert f"the default is {listing['default_model']}" in page.inner_text("#catalogue-line")

    penguins = next(m for m in listing["models"] if m["name"] == "penguins")
    page.click("#model-list .model-button:has-text('penguins')")
    page.wait_for_selector("#detail-title:text-is('penguins')")
    page.wait_for_selector("#detail-body table")
    history = requests.get(f"{stack['api_url']}/models/penguins/versions", timeout=30).json()
    facts = dict(zip(page.eval_on_selector_all(".facts dt", "d => d.map(x => x.textContent)"),
                     page.eval_on_selector_all(".facts dd", "d => d.map(x => x.textContent)"), strict=True))
    serving = next(v for v in history["versions"] if v["version"] == penguins["version"])
    assert facts["Rows"] == f"{serving['rows_train']} trained on, of {serving['rows']}"
    assert serving["data_sha256"][:16] in facts["Data"]
    assert facts["Task"].startswith("multiclass: ") and facts["Ignores"]
    metrics = dict(page.eval_on_selector_all(
        "#detail-body [aria-label='Held-out metrics of the serving version'] tbody tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"))
    assert set(metrics) == {k for k in penguins["metrics"] if k != "rows"}
    assert float(metrics["f1_macro"]) == pytest.approx(penguins["metrics"]["f1_macro"], rel=1e-3)
    versions = page.locator("table", has=page.locator("caption", has_text="Versions"))
    assert versions.locator("tbody tr").count() == len(history["versions"])
    assert "serving" in versions.locator("tbody tr", has_text=f"v{penguins['version']}").inner_text()
    promotions = page.locator("table", has=page.locator("caption", has_text="Promotions"))
    assert promotions.locator("tbody tr").count() == len(history["promotions"]) >= 1
    assert history["promotions"][0]["reason"] in promotions.locator("tbody tr").first.inner_text()
    page.screenshot(path=str(artifacts / "console-catalogue.png"), full_page=True)
    assert axe(page) == []


def test_a_models_drift_report_is_read_with_its_pictures(open_page, stack, trained_regression, artifacts):
    from tests.integration.test_drift import drift_now, send

    table = pd.read_csv(trained_regression["csv"])
    rows = table.sample(300, random_state=2)
    rows["km"] = rows["km"] + 8.0
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat()
    send(stack, rows)
    [report] = drift_now(stack, since)["models"]
    assert "km" in report["drifted_features"]

    page = open_page("models.html#fares")
    page.wait_for_selector("#drift-body table")
    line = page.inner_text("#drift-line")
    assert "300 rows" in line and f"drifted: {', '.join(report['drifted_features'])}" in line
    drifted = page.eval_on_selector_all(
        "#drift-body tbody tr", "rows => rows.filter(r => r.cells[4].textContent === 'yes').map(r => r.cells[0].textContent)")
    assert set(report["drifted_features"]) <= set(drifted)
    pictures = page.locator("#drift-body .picture img")
    assert pictures.count() == len(report["drifted_features"])
    for i in range(pictures.count()):  # each SVG drawn as an image, with a text alternative
        image = pictures.nth(i)
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        assert "distribution in training and in the window" in image.get_attribute("alt")
    page.screenshot(path=str(artifacts / "console-drift.png"), full_page=True)
    assert axe(page) == []


def test_the_api_reference_renders_the_live_document_and_tries_a_route_with_the_key(open_page, stack, artifacts):
    page = open_page("api.html")
    page.wait_for_selector(".swagger-ui .opblock")
    document = requests.get(f"{stack['api_url']}/openapi.json", timeout=30).json()
    paths = page.eval_on_selector_all(".opblock-summary-path", "ps => ps.map(p => p.getAttribute('data-path'))")
    assert set(paths) == set(document["paths"])
    assert "with the console's key" in page.inner_text("#reference-line")
    health = page.locator(".opblock", has=page.locator(".opblock-summary-path[data-path='/health']"))
    health.locator(".opblock-summary").click()
    health.locator("button.try-out__btn").click()
    health.locator("button.execute").click()
    status = health.locator(".live-responses-table tbody td.response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert stack["api_url"] in health.locator(".request-url").inner_text()
    # the answer's code blocks scroll when long: each is reached with the keyboard
    assert page.eval_on_selector_all(".swagger-ui pre", "blocks => blocks.length > 0 && blocks.every(b => b.tabIndex === 0)")
    page.screenshot(path=str(artifacts / "console-api-reference.png"), full_page=False)
    found = axe(page)
    assert found == [], "\n".join(map(str, found))


def test_a_signed_in_user_scores_a_csv_and_downloads_the_results(open_page, stack, issuer, artifacts, tmp_path):
    pool = issuer.pool()
    issuer.add_user(pool, "analyst", "Analyst-pass-123")
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(120)
    rows["mean radius"] = rows["mean radius"].astype(object)
    rows.loc[3, "mean radius"] = "wide"  # one row the model cannot read: reported, not lost
    path = tmp_path / "cells.csv"
    rows.to_csv(path, index=False)

    page = open_page("batch.html")
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.is_hidden("#score")  # nothing to do before signing in
    assert axe(page) == []
    page.fill("#username", "analyst")
    open_page.allow("batch.html: Failed to load resource: the server responded with a status of 400")
    page.fill("#password", "not the password")
    page.click("#sign-in-form button")
    page.wait_for_selector("#sign-in-line:has-text('Not signed in')")
    assert page.inner_text("#sign-in-line") == "Not signed in: Incorrect username or password."
    page.fill("#password", "Analyst-pass-123")
    page.keyboard.press("Enter")
    page.wait_for_selector("#who:has-text('Signed in as analyst')")
    assert page.is_hidden("#sign-in")
    page.wait_for_selector("#batch-model option[value='penguins']", state="attached")
    page.select_option("#batch-model", "breast-cancer")
    page.set_input_files("#batch-file", str(path))
    page.click("#score-form button")
    page.wait_for_selector("#batch-line:has-text('Done:')", timeout=180_000)
    assert page.inner_text("#batch-line") == "Done: 119 of 120 rows predicted, 1 invalid."
    assert page.get_attribute("#batch-progress", "value") == "100"
    page.screenshot(path=str(artifacts / "console-batch.png"), full_page=True)
    assert axe(page) == []
    with page.expect_download() as downloading:
        page.click("a:has-text('Predictions (CSV)')")
    download = downloading.value
    assert download.suggested_filename == "cells.predictions.csv"
    scored = pd.read_csv(download.path())
    assert len(scored) == 119 and 4 not in scored["row_id"].tolist()
    with page.expect_download() as downloading:
        page.click("a:has-text('Errors (CSV)')")
    assert "mean radius" in Path(downloading.value.path()).read_text()
    page.click("#sign-out")
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.is_hidden("#score")


@pytest.mark.parametrize("path", ["index.html", "models.html", "api.html", "batch.html"])
def test_every_page_works_at_phone_width_and_by_keyboard(open_page, path, artifacts):
    page = open_page(path, width=375)
    page.wait_for_selector({"index.html": "#submit:not([disabled])", "models.html": "#detail-body table",
                            "api.html": ".swagger-ui .opblock", "batch.html": "#sign-in:not([hidden])"}[path])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "no horizontal scrolling at 375 px"
    # the navigation is reached with the keyboard: the first Tab is the skip link or the first link
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused in ("Skip to the model", "Skip to the reference", "Predict")
    page.screenshot(path=str(artifacts / f"console-phone-{path.split('.')[0]}.png"), full_page=False)
    assert axe(page) == []
