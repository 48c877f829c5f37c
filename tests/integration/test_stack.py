"""template.yaml deployed to LocalStack, a model trained and promoted, called over HTTP."""

import json

import numpy as np
import pytest
import requests
from serving.model.predictor import served_predictions
from serving.store import bundles

from tests.conftest import FORM_ORIGIN, client
from tests.native import native_predictions
from training import data as D
from training import job
from training.config import load as load_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(stack, trained):
    return stack["api_url"], {"x-api-key": stack["api_key"], "content-type": "application/json"}


@pytest.fixture(scope="module")
def held_out(stack, trained):
    """The held-out rows of the trained model, and its bundle loaded in-process."""
    config = load_config(None, ["tuning.cv_folds=3"])
    X_test = job.prepare(config).X_test
    s3 = client("s3", stack["endpoint"])
    champion = bundles.load_champion(s3, stack["model_bucket"], "breast-cancer")
    return X_test, champion, s3, stack["model_bucket"]


def test_the_training_job_published_and_promoted_a_bundle(trained, stack):
    assert trained["version"] == 1
    assert trained["promoted"] is True
    assert trained["bundle_uri"].startswith(f"s3://{stack['model_bucket']}/models/breast-cancer/")


def test_health_and_model_are_open(api, trained):
    url, _ = api
    health = requests.get(f"{url}/health", timeout=30)
    assert health.status_code == 200
    assert health.json()["model"] == {"name": "breast-cancer", "version": trained["version"]}
    model = requests.get(f"{url}/model", timeout=30).json()
    assert len(model["feature_schema"]) == 30
    assert model["classes"] == ["benign", "malignant"]


def test_predictions_over_http_equal_the_models_own(api, held_out):
    url, headers = api
    X_test, champion, s3, bucket = held_out
    instances = D.to_instances(X_test, champion.feature_schema)
    response = requests.post(f"{url}/predict", headers=headers,
                             data=json.dumps({"instances": instances}), timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    classes = champion.classes
    served = np.array([[p["probabilities"][c] for c in classes] for p in body["predictions"]])
    assert np.allclose(served.sum(axis=1), 1.0, atol=1e-12)
    # in-process, the bundle's served form
    in_process = served_predictions(champion.arrays, D.to_matrix(X_test, champion.feature_schema))
    assert np.max(np.abs(served - in_process)) <= 1e-12
    # and the native library, loaded from the bundle's native file
    assert np.max(np.abs(served - native_predictions(champion, s3, bucket, X_test))) <= 1e-9


def test_predict_without_or_with_a_wrong_key_is_refused(api):
    url, headers = api
    body = json.dumps({"instances": [{}]})
    no_key = requests.post(f"{url}/predict", headers={"content-type": "application/json"},
                           data=body, timeout=30)
    assert no_key.status_code == 403
    wrong = requests.post(f"{url}/predict", headers={**headers, "x-api-key": "wrong"},
                          data=body, timeout=30)
    assert wrong.status_code == 403


def test_bad_input_over_http_is_a_clear_422(api):
    url, headers = api
    response = requests.post(f"{url}/predict", headers=headers,
                             data=json.dumps({"instances": [{"mean radius": "big"}]}), timeout=30)
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert "mean radius" in fields and "worst area" in fields


def test_cors_preflight_allows_only_the_forms_origin(api):
    url, _ = api
    response = requests.options(f"{url}/predict", timeout=30, headers={
        "Origin": FORM_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == FORM_ORIGIN
    assert "X-Api-Key" in response.headers["Access-Control-Allow-Headers"]



def test_openapi_is_served_over_http(api):
    url, _ = api
    document = requests.get(f"{url}/openapi.json", timeout=30).json()
    assert set(document["paths"]) == {"/health", "/model", "/predict", "/openapi.json", "/models", "/models/{name}",
                                      "/models/{name}/predict", "/explain", "/models/{name}/explain",
                                      "/models/{name}/versions", "/models/{name}/drift",
                                      "/models/{name}/batches", "/models/{name}/batches/{id}"}
    assert len(document["components"]["schemas"]["Instance"]["required"]) == 30


def test_mlflow_artifacts_went_to_s3(stack, trained):
    s3 = client("s3", stack["endpoint"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack["model_bucket"], Prefix="mlflow/")
            .get("Contents", [])]
    names = {k.rsplit("/", 1)[-1] for k in keys}
    assert {"confusion_matrix.png", "roc_curve.png", "config.yaml", "summary.json"} <= names
