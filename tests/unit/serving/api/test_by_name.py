"""Models served by name side by side; explanations; the requests kept for drift monitoring."""

import json

import jsonschema
import numpy as np
import pytest
from serving.api import app as app_module
from serving.model import bundle
from serving.store import bundles

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.fakes import Context, event, metrics_of
from tests.unit.serving.api.conftest import fresh_container, publish


def test_every_model_with_a_champion_is_served_by_name(api, s3):
    publish(s3)
    publish(s3, "penguins-catboost", model_name="penguins")
    publish(s3, "digits-lightgbm", promote=False, model_name="digits")  # published, never promoted
    status, listing, _ = api(event("health", path="/models"))
    assert status == 200
    assert listing["default_model"] == "breast-cancer"
    assert [(m["name"], m["version"], m["task"]) for m in listing["models"]] == [
        ("breast-cancer", 1, "binary"), ("penguins", 1, "multiclass")]
    penguins = case("penguins-catboost")
    assert listing["models"][1]["classes"] == penguins.classes
    status, described, _ = api(event("health", path="/models/penguins"))
    assert (status, described["name"], described["feature_schema"]) == (200, "penguins", penguins.schema)
    status, answer, _ = api(event("predict", {"instances": penguins.instances}, path="/models/penguins/predict"))
    assert status == 200 and answer["model"] == {"name": "penguins", "version": 1}
    served = np.array([[p["probabilities"][c] for c in penguins.classes] for p in answer["predictions"]])
    assert np.max(np.abs(served - penguins.native)) <= 1e-12
    assert api.metrics["_dims"]["Model"] == "penguins"
    # the default model's routes are unchanged
    assert api(event("predict"))[1]["model"] == {"name": "breast-cancer", "version": 1}
    health = api(event("health"))[1]
    assert set(health["models"]) == {"breast-cancer", "penguins"}


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/models/nope", 404, "no model named 'nope' has been published"),
    ("/models/nope/predict", 404, "no model named 'nope' has been published"),
    ("/models/digits", 503, f"no champion has been promoted for model 'digits' in {BUCKET}"),
    ("/models/Bad..Name/predict", 400, "model name 'Bad..Name' is not valid: 1-64 characters: lowercase letters, "
                                       "digits, '.', '_' and '-', starting and ending alphanumeric"),
    ("/models/a%2F..%2Fb", 400, "model name 'a%2F..%2Fb' is not valid"),
])
def test_an_unknown_or_invalid_name_is_refused_and_says_why(api, s3, path, status, error):
    publish(s3)
    publish(s3, "digits-lightgbm", promote=False, model_name="digits")
    e = event("predict", path=path) if path.endswith("/predict") else event("health", path=path)
    code, body, _ = api(e)
    assert code == status
    assert body["error"].startswith(error)


def test_one_models_promotion_or_broken_bundle_leaves_the_other_serving(api, s3):
    publish(s3)
    publish(s3, "penguins-lightgbm", model_name="penguins")
    penguins_path = "/models/penguins/predict"
    row = {"instances": case("penguins-lightgbm").instances[:1]}
    assert api(event("predict", row, path=penguins_path))[1]["model"]["version"] == 1
    assert api(event("predict"))[1]["model"]["version"] == 1
    publish(s3, "bc-lightgbm-short")  # breast-cancer v2 promoted
    assert api(event("predict"))[1]["model"]["version"] == 2
    assert api(event("predict", row, path=penguins_path))[1]["model"]["version"] == 1
    broken = publish(s3, "penguins-catboost", promote=False, model_name="penguins")
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix("penguins", broken["version"]) + "model.npz", Body=b"x")
    bundles.set_champion(s3, BUCKET, "penguins", broken["version"], "bad push")
    assert api(event("predict", row, path=penguins_path))[1]["model"]["version"] == 1  # the last good one
    health = api(event("health"))[1]
    assert "does not match its sha256" in health["models"]["penguins"]["last_load_failure"]["reason"]
    assert health["models"]["breast-cancer"] == {"status": "ok", "model": {"name": "breast-cancer", "version": 2}}
    assert api(event("predict"))[1]["model"]["version"] == 2


def test_a_container_keeps_at_most_max_models_in_memory(api, s3, monkeypatch):
    monkeypatch.setenv("MAX_MODELS_IN_MEMORY", "2")
    module = fresh_container()
    for name in ("a", "b", "c"):
        publish(s3, model_name=name)
    for name in ("a", "b", "c", "a"):
        response = module.handler(event("predict", path=f"/models/{name}/predict"), Context())
        assert response["statusCode"] == 200
    assert list(module.registry.loaded()) == ["c", "a"]  # b was least recently used


def test_a_regression_model_with_a_timestamp_answers_values_and_names_a_bad_date(api, s3):
    rides = case("rides-catboost")
    publish(s3)
    publish(s3, "rides-catboost", model_name="rides")
    status, body, _ = api(event("predict", {"instances": rides.instances[:150]}, path="/models/rides/predict"))
    assert status == 200
    served = np.array([[p["prediction"]] for p in body["predictions"]])
    native = rides.native[:150]
    assert np.max(np.abs(served - native) / np.maximum(1, np.abs(native))) <= 1e-12
    assert set(body["predictions"][0]) == {"prediction"}
    bad = dict(rides.instances[0], start="next tuesday")
    status, body, _ = api(event("predict", {"instances": [bad]}, path="/models/rides/predict"))
    assert status == 422
    assert body["errors"][0]["field"] == "start"
    assert body["errors"][0]["message"].startswith("not an ISO 8601 date or timestamp")
    described = api(event("health", path="/models/rides"))[1]
    assert described["task"] == "regression" and described["classes"] == []


def _columns(model) -> list[str]:
    return [name for f in model.schema for name in
            ([f"{f['name']}.{p}" for p in f["parts"]] if f["type"] == "datetime" else [f["name"]])]


def test_explain_answers_each_features_shap_value_equal_to_the_native_libraries(api, s3):
    bc = case("bc-catboost")
    publish(s3, "bc-catboost")
    status, body, _ = api(event("predict", {"instances": bc.instances[:10]}, path="/explain"))
    assert status == 200, body
    assert body["explains"].startswith(f"the log-odds of {bc.classes[1]!r}")
    assert api.metrics["Explanations"] == [10.0] and api.metrics["_units"]["ExplainLatency"] == "Milliseconds"
    columns = _columns(bc)
    for answer, native in zip(body["predictions"], bc.native_shap[:10], strict=True):
        explanation = answer["explanation"]
        assert list(explanation["contributions"]) == columns
        served = [*explanation["contributions"].values(), explanation["expected_value"]]
        assert np.max(np.abs(np.array(served) - native[0])) <= 1e-9
        p1 = 1 / (1 + np.exp(-sum(served)))  # the contributions add up to the log-odds answered
        assert abs(p1 - answer["probabilities"][bc.classes[1]]) <= 1e-12


@pytest.mark.parametrize("name", ["penguins-lightgbm", "rides-catboost"])
def test_explain_by_name_for_multiclass_and_regression(api, s3, name):
    model = case(name)
    publish(s3)
    publish(s3, name, model_name="other")
    status, body, _ = api(event("predict", {"instances": model.instances[:3]}, path="/models/other/explain"))
    assert status == 200, body
    columns = _columns(model)
    for answer, native in zip(body["predictions"], model.native_shap[:3], strict=True):
        explanation = answer["explanation"]
        if model.task == "multiclass":
            assert list(explanation["contributions"]) == model.classes
            served = np.array([[*explanation["contributions"][c].values(), explanation["expected_value"][c]]
                               for c in model.classes])
            assert list(explanation["contributions"][model.classes[0]]) == columns
        else:
            assert set(answer) == {"prediction", "explanation"}
            served = np.array([[*explanation["contributions"].values(), explanation["expected_value"]]])
            assert served.sum() == pytest.approx(answer["prediction"], rel=1e-12)
        assert np.max(np.abs(served - native) / np.maximum(1, np.abs(native))) <= 1e-9


def test_explain_takes_at_most_max_explain_rows_and_refuses_bad_input_like_predict(api, s3, monkeypatch):
    monkeypatch.setenv("MAX_EXPLAIN_ROWS", "3")
    module = fresh_container()
    publish(s3)
    rows = case("bc-lightgbm").instances
    response = module.handler(event("predict", {"instances": rows[:4]}, path="/explain"), Context())
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["error"] == "4 rows in one request; the limit is 3"
    assert module.handler(event("predict", {"instances": rows[:3]}, path="/explain"), Context())["statusCode"] == 200
    bad = dict(rows[0], **{next(iter(rows[0])): "many"})
    response = module.handler(event("predict", {"instances": [bad]}, path="/explain"), Context())
    assert response["statusCode"] == 422
    response = module.handler(event("predict", {"instances": rows[:1]}, path="/models/nope/explain"), Context())
    assert response["statusCode"] == 404


def test_captured_rows_keep_the_answer_a_drift_monitor_compares(api, s3, monkeypatch):
    # a binary model's captured prediction is P(the second class), as answered; not the label's code
    from datetime import UTC, datetime

    from serving.store.capture import read_window

    monkeypatch.setenv("CAPTURE_RATE", "1")
    monkeypatch.setenv("CAPTURE_FLUSH_ROWS", "1")
    module = fresh_container()
    model = case("bc-lightgbm")
    publish(s3)
    days = [datetime.now(UTC).strftime("%Y-%m-%d")]
    response = module.handler(event("predict", {"instances": model.instances[:5]}), Context())
    assert response["statusCode"] == 200
    days = sorted({*days, datetime.now(UTC).strftime("%Y-%m-%d")})  # a request across midnight
    answered = [p["probabilities"][model.classes[1]] for p in json.loads(response["body"])["predictions"]]
    records = read_window(s3, BUCKET, "breast-cancer", days)
    assert [r["version"] for r in records] == [1] * 5
    assert [r["prediction"] for r in records] == pytest.approx(answered, abs=1e-12)
    assert any(0 < p < 1 for p in answered)  # probabilities, not 0/1 label codes


def test_without_capture_the_values_it_would_keep_are_not_worked_out(api, s3, monkeypatch):
    publish(s3)
    assert api.module.capture.rate == 0  # the default
    worked_out = []
    monkeypatch.setattr(app_module.drift, "prediction_values", lambda *args: worked_out.append(args))
    status, _, _ = api(event("predict", {"instances": case("bc-lightgbm").instances[:3]}))
    assert status == 200 and worked_out == []


def test_a_capture_write_that_fails_is_logged_and_counted_and_the_answer_is_still_given(
        api, s3, monkeypatch, capsys, caplog):
    monkeypatch.setenv("CAPTURE_RATE", "1")
    monkeypatch.setenv("CAPTURE_FLUSH_ROWS", "1")
    module = fresh_container()
    module.capture.bucket = "no-such-bucket"  # every write is refused by S3
    model = case("bc-lightgbm")
    publish(s3)
    capsys.readouterr()
    response = module.handler(event("predict", {"instances": model.instances[:3]}), Context())
    assert response["statusCode"] == 200
    assert len(json.loads(response["body"])["predictions"]) == 3
    found = metrics_of(capsys.readouterr().out)
    assert found["CaptureWriteFailures"] == [1.0]
    assert found["_units"]["CaptureWriteFailures"] == "Count"
    [logged] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert logged.getMessage() == "captured rows not written"
    assert (logged.model, logged.rows) == ("breast-cancer", 3)
    assert "NoSuchBucket" in logged.error  # what S3 said (its exact wording: tests/unit/serving/store/test_s3.py)


def test_the_served_openapi_document_names_the_published_models_and_the_explain_limit(api, s3, monkeypatch):
    monkeypatch.setenv("MAX_EXPLAIN_ROWS", "3")
    module = fresh_container()
    publish(s3)
    publish(s3, "penguins-lightgbm", model_name="penguins")
    response = module.handler(event("health", path="/openapi.json"), Context())
    assert response["statusCode"] == 200
    document = json.loads(response["body"])
    for path, method in (("/models/{name}", "get"), ("/models/{name}/predict", "post"),
                         ("/models/{name}/explain", "post")):
        [parameter] = document["paths"][path][method]["parameters"]
        assert parameter["schema"] == {"type": "string", "enum": ["breast-cancer", "penguins"]}
    schemas = document["components"]["schemas"]
    assert schemas["ExplainRequest"]["oneOf"][0]["properties"]["instances"]["maxItems"] == 3
    assert schemas["AnyExplainRequest"]["oneOf"][1]["properties"]["features"]["maxItems"] == 3
    assert schemas["PredictRequest"]["oneOf"][0]["properties"]["instances"]["maxItems"] == 200


BAD_NAMES = ["..", "..%2Fbreast-cancer", "a%2F..%2Fb", "%2e%2e", "a%252Fb", "breast-cancer%00",
             "\u0440enguins",  # a Cyrillic "р": looks like penguins
             "\uff50enguins",  # a fullwidth "ｐ"
             "penguins\u200b",  # a zero-width space
             "Penguins", "x" * 65, "-penguins", "penguins."]


@pytest.mark.parametrize("route", ["/models/{}", "/models/{}/predict", "/models/{}/explain", "/models/{}/versions",
                                   "/models/{}/drift"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_could_leave_its_prefix_or_pass_for_another_is_400_on_every_route(api, s3, route, name):
    publish(s3, "penguins-lightgbm", model_name="penguins")
    path = route.format(name)
    kind = "predict" if route.endswith(("/predict", "/explain")) else "health"
    e = event(kind, path=path)
    if route.endswith("/explain"):
        e["resource"] = "/models/{name}/explain"
    code, body, _ = api(e)
    assert code == 400, (path, body)
    assert body["error"].startswith(f"model name {name!r} is not valid")


def test_a_models_versions_and_promotions_are_open_and_newest_first(api, s3):
    publish(s3, "penguins-lightgbm", model_name="penguins")
    publish(s3, "penguins-catboost", model_name="penguins")
    e = event("health", path="/models/penguins/versions")
    e["headers"].pop("x-api-key", None)
    status, body, _ = api(e)
    assert status == 200 and body["name"] == "penguins"
    assert [v["version"] for v in body["versions"]] == [2, 1]
    assert [(p["version"], p["previous_version"]) for p in body["promotions"]] == [(2, 1), (1, None)]
    assert body["versions"][0]["metrics"] == bundle.summary(bundles.read_manifest(s3, BUCKET, "penguins", 2))[
        "metrics"] and body["versions"][0]["task"] == "multiclass"
    assert api(event("health", path="/models/nobody/versions"))[:2] == (
        404, {"error": "no model named 'nobody' has been published"})
    document = api(event("health", path="/openapi.json"))[1]  # the answer is what the document says
    jsonschema.validate(body, {"$ref": "#/components/schemas/Versions", "components": document["components"]})
    assert isinstance(body["versions"][0]["framework"], dict)


def test_a_models_drift_report_is_open_with_its_pictures_or_says_there_is_none_yet(api, s3):
    publish(s3, "penguins-lightgbm", model_name="penguins")
    status, body, _ = api(event("health", path="/models/penguins/drift"))
    assert status == 200 and body["model"] == "penguins" and body["report"] is None
    assert body["reason"] == ("no drift check has run for this model yet (DriftFunction runs on its schedule; "
                              "`make drift` runs one now)")
    report = {"model": "penguins", "version": 1, "rows": 500, "drifted_features": ["bill_length_mm"],
              "pictures": {"bill_length_mm": "drift/penguins/t/bill_length_mm.svg"}}
    s3.put_object(Bucket=BUCKET, Key="drift/penguins/t/bill_length_mm.svg", Body=b"<svg>drawn</svg>")
    s3.put_object(Bucket=BUCKET, Key="drift/penguins/latest.json", Body=json.dumps(report).encode())
    status, body, _ = api(event("health", path="/models/penguins/drift"))  # (the fixture re-reads: interval 0)
    assert status == 200 and body["report"] == {**report, "pictures": {"bill_length_mm": "<svg>drawn</svg>"}}
    document = api(event("health", path="/openapi.json"))[1]
    jsonschema.validate(body, {"$ref": "#/components/schemas/DriftReport", "components": document["components"]})
    assert api(event("health", path="/models/nobody/drift"))[0] == 404


def test_with_s3_down_versions_and_drift_answer_503_naming_the_cause(api, s3):
    publish(s3, "penguins-lightgbm", model_name="penguins")
    s3.down = True
    for what in ("versions", "drift"):
        status, body, _ = api(event("health", path=f"/models/penguins/{what}"))
        assert status == 503 and "the model store did not answer for model 'penguins'" in body["error"]


@pytest.mark.parametrize(("policy", "status"), [("reject", 422), ("missing", 200)])
def test_an_unknown_category_is_handled_as_the_settings_say(api, s3, monkeypatch, policy, status):
    publish(s3, "penguins-catboost", model_name="penguins")
    monkeypatch.setenv("UNKNOWN_CATEGORY", policy)
    module = fresh_container()
    row = {**case("penguins-catboost").instances[0], "island": "Atlantis"}
    response = module.handler(event("predict", {"instances": [row]}, path="/models/penguins/predict"), Context())
    assert response["statusCode"] == status, response["body"]
    assert (status == 422) == ("island" in response["body"])
