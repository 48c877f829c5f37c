"""The prediction form in a real browser (Chromium via Playwright) against the deployed local stack."""

import json
import re

import pytest
import requests

from tests.conftest import FORM_PORT
from tests.e2e.conftest import configure

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(browser, site, stack):
    configure(site, stack)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://127.0.0.1:{FORM_PORT}/")
    page.wait_for_selector("#submit:not([disabled])", timeout=30_000)
    yield page
    context.close()
    assert not errors, errors


def test_an_example_predicts_and_matches_the_api(page, stack, artifacts):
    page.click("#fill-example")
    assert "true class is" in page.inner_text("#example-note")
    page.click("#submit")
    page.wait_for_selector("#answer:not([hidden])")
    page.screenshot(path=str(artifacts / "form-prediction.png"), full_page=True)
    shown = {row.get_attribute("data-label"): float(row.get_attribute("data-probability"))
             for row in page.query_selector_all(".bar")}
    model = requests.get(f"{stack['api_url']}/model", timeout=30).json()
    instance = model["examples"][0]["instance"]
    api = requests.post(f"{stack['api_url']}/predict", timeout=30,
                        headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                        data=json.dumps({"instances": [instance]})).json()["predictions"][0]
    assert shown == api["probabilities"]
    assert page.inner_text("#predicted-label") == api["label"]
    assert "version 1" in page.inner_text("#answer-model")
    # why: the row's largest SHAP contributions, as /explain answers them, sized and signed
    explained = requests.post(f"{stack['api_url']}/explain", timeout=30,
                              headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                              data=json.dumps({"instances": [instance]})).json()["predictions"][0]
    contributions = explained["explanation"]["contributions"]
    assert why(page) == sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:8]
    assert f"{len(contributions) - 8} other features together" in page.inner_text("#why-rest")
    assert f"What moved {model['classes'][1]} (log-odds" in page.inner_text("#why-caption")
    widths = {row.get_attribute("data-feature"): row.query_selector(".fill").bounding_box()["width"]
              for row in page.query_selector_all("#why-bars .contribution")}
    largest = max(widths.values())
    for feature, value in why(page):
        assert widths[feature] == pytest.approx(largest * abs(value) / abs(why(page)[0][1]), abs=1.5)
    for row in page.query_selector_all("#why-bars .contribution"):
        assert ("up" if float(row.get_attribute("data-value")) >= 0 else "down") in row.get_attribute("class")


def why(page) -> list[tuple[str, float]]:
    """The explanation chart's rows: (feature, contribution), top to bottom."""
    return [(row.get_attribute("data-feature"), float(row.get_attribute("data-value")))
            for row in page.query_selector_all("#why-bars .contribution")]


def test_a_bad_value_is_shown_at_its_field(page, artifacts):
    page.click("#fill-example")
    page.fill("#f-mean_radius", "")
    page.click("#submit")
    field = page.locator('.field[data-feature="mean radius"]')
    field.locator(".error").wait_for()
    assert "null is not allowed" in field.locator(".error").inner_text()
    assert page.get_attribute("#f-mean_radius", "aria-invalid") == "true"
    assert "highlighted field" in page.inner_text("#message")
    page.screenshot(path=str(artifacts / "form-field-error.png"), full_page=False)


def test_without_an_api_key_the_form_says_so(browser, site, stack, artifacts):
    configure(site, stack, with_key=False)
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{FORM_PORT}/")
    page.wait_for_selector("#submit:not([disabled])")
    page.click("#fill-example")
    page.click("#submit")
    page.wait_for_selector("#message:not([hidden])")
    assert "API key" in page.inner_text("#message")
    page.screenshot(path=str(artifacts / "form-no-key.png"))
    page.close()


def test_every_input_has_a_label_and_the_form_works_at_phone_width(browser, site, stack, artifacts):
    configure(site, stack)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"http://127.0.0.1:{FORM_PORT}/")
    page.wait_for_selector("#submit:not([disabled])")
    inputs = page.query_selector_all(".field input, .field select")
    assert len(inputs) == 30
    for element in inputs:
        assert page.query_selector(f'label[for="{element.get_attribute("id")}"]')
    # keyboard only: tab to "Fill with an example", press Enter, then submit with Enter
    page.focus("#fill-example")
    page.keyboard.press("Enter")
    page.focus("#submit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer:not([hidden])")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no horizontal scrolling at phone width"
    page.screenshot(path=str(artifacts / "form-phone.png"), full_page=False)
    page.close()


def test_the_picker_switches_models_and_rebuilds_the_fields(page, stack, artifacts):
    options = page.eval_on_selector_all("#model-picker option", "os => os.map(o => o.value)")
    # the models published so far (other test modules may add one), in name order
    assert {"breast-cancer", "penguins"} <= set(options) and options == sorted(options)
    assert page.input_value("#model-picker") == "breast-cancer"
    page.select_option("#model-picker", "penguins")
    page.wait_for_function("document.querySelectorAll('.field').length === 7")
    assert page.query_selector('.field[data-feature="island"] select') is not None
    assert "penguins v" in page.inner_text("#model-line")
    page.click("#fill-example")
    page.click("#submit")
    page.wait_for_selector("#answer:not([hidden])")
    page.screenshot(path=str(artifacts / "form-penguins.png"), full_page=True)
    shown = {row.get_attribute("data-label"): float(row.get_attribute("data-probability"))
             for row in page.query_selector_all(".bar")}
    model = requests.get(f"{stack['api_url']}/models/penguins", timeout=30).json()
    api = requests.post(f"{stack['api_url']}/models/penguins/predict", timeout=30,
                        headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                        data=json.dumps({"instances": [model["examples"][0]["instance"]]})).json()
    assert shown == api["predictions"][0]["probabilities"]
    assert set(shown) == {"Adelie", "Chinstrap", "Gentoo"}
    label = api["predictions"][0]["label"]
    explained = requests.post(f"{stack['api_url']}/models/penguins/explain", timeout=30,
                              headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                              data=json.dumps({"instances": [model["examples"][0]["instance"]]})).json()
    contributions = explained["predictions"][0]["explanation"]["contributions"][label]  # the predicted class's
    assert why(page) == sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:8]
    assert f"the score of {label}" in page.inner_text("#why-caption")
    assert "penguins, version" in page.inner_text("#answer-model")
    page.select_option("#model-picker", "breast-cancer")
    page.wait_for_function("document.querySelectorAll('.field').length === 30")
    assert page.is_hidden("#answer")


def test_a_pasted_row_as_the_table_has_it_fills_the_form_and_predicts_as_the_api(page, stack, artifacts):
    model = requests.get(f"{stack['api_url']}/model", timeout=30).json()
    assert model["target"] in model["ignored_columns"]  # a row of the training table carries it
    instance = model["examples"][1]["instance"]
    names = ["row name", *instance, model["target"]]  # as a spreadsheet writes the table: ids, target
    values = ["patient 7", *[str(instance[n]) for n in instance], model["examples"][1]["label"]]
    page.click("#paste-box summary")
    decimal_commas = [re.sub(r"^(-?\d+)\.(\d+)$", r"\1,\2", v) for v in values]  # 3.5 written 3,5
    page.fill("#paste-text", ";".join(names) + "\n" + ";".join(decimal_commas))
    page.click("#paste-fill")
    note = page.inner_text("#paste-note")
    assert f"{len(instance)} of {len(instance)} features filled" in note
    assert f"ignored (the model does not read them): {model['target']}" in note
    assert "unknown to this model: row name" in note
    page.click("#submit")
    page.wait_for_selector("#answer:not([hidden])")
    page.screenshot(path=str(artifacts / "form-pasted-row.png"), full_page=True)
    api = requests.post(f"{stack['api_url']}/predict", timeout=30,
                        headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                        data=json.dumps({"instances": [instance]})).json()["predictions"][0]
    shown = {row.get_attribute("data-label"): float(row.get_attribute("data-probability"))
             for row in page.query_selector_all(".bar")}
    assert shown == api["probabilities"]
    page.fill("#paste-text", "a,b\n1")
    page.click("#paste-fill")
    assert "could not be read" in page.inner_text("#paste-note")
