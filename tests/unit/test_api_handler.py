"""The API handler, called with API Gateway events as `sam local generate-event` makes them."""

import base64
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from serving import bundle
from serving.bundle import decode_arrays

from tests.unit.conftest import BUCKET, trained

EVENTS = Path(__file__).resolve().parents[2] / "events"


@dataclass
class Context:
    function_name: str = "PredictFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:PredictFunction"
    aws_request_id: str = "req-1"


def event(name: str, body=None, headers=None) -> dict:
    e = json.loads((EVENTS / f"{name}.json").read_text())
    if body is not None:
        raw = body if isinstance(body, str) else json.dumps(body)
        e["body"] = base64.b64encode(raw.encode()).decode()
        e["isBase64Encoded"] = True
    for key, value in (headers or {}).items():  # API Gateway sends both forms
        e["headers"][key] = value
        e["multiValueHeaders"][key] = [value]
    return e


@pytest.fixture
def api(s3, monkeypatch):
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("MODEL_NAME", "breast-cancer")
    monkeypatch.setenv("CHAMPION_REFRESH_SECONDS", "0")
    monkeypatch.setenv("MAX_ROWS", "200")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    monkeypatch.setenv("ALLOWED_ORIGIN", "http://127.0.0.1:8765")
    import handlers.api

    module = importlib.reload(handlers.api)

    def call(e):
        response = module.handler(e, Context())
        return response["statusCode"], json.loads(response["body"]), response

    call.module = module
    return call


def publish(s3, model, promote=True):
    manifest = bundle.publish(s3, BUCKET, "breast-cancer", model.arrays, model.manifest_fields())
    if promote:
        bundle.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "test")
    return manifest


def test_without_a_champion_predict_is_503_and_health_says_why(api):
    status, body, _ = api(event("health"))
    assert status == 503
    assert body["status"] == "no_model"
    assert "no champion" in body["reason"]
    status, body, _ = api(event("predict"))
    assert status == 503
    assert "no champion" in body["error"]


def test_predict_answers_label_probabilities_and_version(api, s3):
    model = trained()
    publish(s3, model)
    status, body, response = api(event("predict", headers={"Origin": "http://127.0.0.1:8765"}))
    assert status == 200, body
    assert body["model"] == {"name": "breast-cancer", "version": 1}
    [prediction] = body["predictions"]
    assert set(prediction["probabilities"]) == set(model.classes)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-12)
    assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert response["multiValueHeaders"]["Access-Control-Allow-Origin"] == ["http://127.0.0.1:8765"]


def test_cors_is_granted_only_to_the_forms_origin(api, s3):
    publish(s3, trained())
    _, _, response = api(event("predict", headers={"Origin": "https://evil.example"}))
    assert "Access-Control-Allow-Origin" not in response["multiValueHeaders"]


def test_predictions_equal_the_native_model_for_many_rows(api, s3):
    model = trained()
    publish(s3, model)
    from training import data as D

    instances = D.to_instances(model.X_test, model.schema)
    status, body, _ = api(event("predict", {"instances": instances}))
    assert status == 200
    served = np.array([[p["probabilities"][c] for c in model.classes] for p in body["predictions"]])
    assert np.max(np.abs(served - model.native)) <= 1e-9


def test_the_positional_form_gives_the_same_answer(api, s3):
    publish(s3, trained())
    _, named, _ = api(event("predict"))
    status, positional, _ = api(event("predict-positional"))
    assert status == 200
    assert positional == named


def test_invalid_values_get_422_with_the_field(api, s3):
    publish(s3, trained())
    status, body, _ = api(event("predict-invalid"))
    assert status == 422
    assert body["errors"] == [{"row": 0, "field": "mean radius", "message": "must be a number, got str"}]


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        ('{"instances": [', None, 400, "not valid JSON"),
        ('{"instances": [{"mean radius": NaN}]}', None, 400, "not valid JSON"),
        ('{"instances": [{"mean radius": Infinity}]}', None, 400, "not valid JSON"),
        ('{"instances": []}', None, 400, "non-empty"),
        (None, {"Content-Type": "text/plain"}, 415, "application/json"),
    ],
)
def test_bad_requests_get_a_clear_4xx(api, s3, body, headers, status, words):
    publish(s3, trained())
    code, answer, _ = api(event("predict", body=body, headers=headers))
    assert code == status
    assert words in answer["error"]


def test_too_many_rows_is_413(api, s3):
    publish(s3, trained())
    row = json.loads(base64.b64decode(event("predict")["body"]))["instances"][0]
    status, body, _ = api(event("predict", {"instances": [row] * 201}))
    assert status == 413
    assert "limit is 200" in body["error"]


def test_unknown_routes_are_404_json(api):
    e = event("health")
    e["path"] = e["resource"] = "/nope"
    status, body, _ = api(e)
    assert status == 404
    assert body == {"error": "no route GET /nope"}


def test_model_describes_schema_classes_metrics_and_examples(api, s3):
    model = trained()
    publish(s3, model)
    status, body, _ = api(event("model"))
    assert status == 200
    assert [f["name"] for f in body["feature_schema"]] == [f["name"] for f in model.schema]
    assert body["classes"] == model.classes
    assert body["examples"][0]["instance"]
    assert body["version"] == 1


def test_a_new_champion_is_swapped_in_after_the_refresh(api, s3):
    first = trained()
    publish(s3, first)
    assert api(event("predict"))[1]["model"]["version"] == 1
    publish(s3, trained(rounds=10))
    status, body, _ = api(event("predict"))
    assert status == 200
    assert body["model"]["version"] == 2


def test_a_broken_champion_is_refused_and_the_last_good_model_keeps_serving(api, s3):
    publish(s3, trained())
    assert api(event("predict"))[0] == 200
    broken = publish(s3, trained(rounds=10), promote=False)
    key = bundle.version_prefix("breast-cancer", broken["version"]) + "model.npz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"corrupted")
    bundle.set_champion(s3, BUCKET, "breast-cancer", broken["version"], "bad push")
    status, body, _ = api(event("predict"))
    assert status == 200
    assert body["model"]["version"] == 1
    status, health, _ = api(event("health"))
    assert status == 200
    assert health["model"]["version"] == 1
    assert "does not match its sha256" in health["last_load_failure"]["reason"]


def test_the_served_arrays_are_loaded_without_pickle(s3):
    model = trained()
    manifest = publish(s3, model)
    data = bundle.read_file(s3, BUCKET, manifest, "model.npz")
    arrays = decode_arrays(data)
    assert bundle.served_predictions(arrays, model.test_matrix()).shape == model.native.shape


def test_the_handler_path_does_not_import_the_training_stack():
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'functions'); import handlers.api; "
        "bad = [m for m in ('pandas', 'sklearn', 'mlflow', 'catboost', 'lightgbm', 'optuna', "
        "'boto3', 'botocore.client', 'aws_xray_sdk') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            env={"MODEL_BUCKET": "x", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_events_are_in_the_sam_cli_shape():
    e = event("predict")
    assert e["isBase64Encoded"] is True
    assert json.loads(base64.b64decode(e["body"]))["instances"]
    assert e["requestContext"]["resourcePath"] == "/predict"


def test_openapi_describes_every_route_and_the_models_features(api, s3):
    from openapi_spec_validator import validate

    model = trained()
    publish(s3, model)
    e = event("health")
    e["path"] = e["resource"] = "/openapi.json"
    status, document, _ = api(e)
    assert status == 200
    validate(document)
    routes = {(r.method.lower(), r.path) for r in api.module.ROUTES}
    described = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert described == routes
    instance = document["components"]["schemas"]["Instance"]
    assert instance["required"] == [f["name"] for f in model.schema]
    assert document["paths"]["/predict"]["post"]["security"] == [{"ApiKey": []}]
    label = document["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]
    assert label["items"]["properties"]["label"]["enum"] == model.classes


def test_a_bundle_whose_model_and_schema_disagree_is_refused(api, s3):
    model = trained()
    publish(s3, model)
    assert api(event("predict"))[0] == 200
    wrong = dict(model.manifest_fields(), feature_schema=model.schema[:-1])
    manifest = bundle.publish(s3, BUCKET, "breast-cancer", model.arrays, wrong)
    bundle.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "mismatched")
    status, health, _ = api(event("health"))
    assert status == 200 and health["model"]["version"] == 1
    assert "reads 30 features but its schema gives 29" in health["last_load_failure"]["reason"]
