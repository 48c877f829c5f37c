"""Explanations through API Gateway on LocalStack equal the native SHAP values of the published model.

Three published models: breast cancer (binary, the default model, either family), penguins
(multiclass LightGBM: categoricals and missing values) and fares (regression CatBoost: a categorical
of more than 1,000 values served through target statistics, a timestamp, missing values).
"""

import json

import numpy as np
import pandas as pd
import pytest
import requests
from serving.store import bundles

from tests.conftest import client
from tests.native import native_shap
from training import data as D

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(stack, trained, trained_penguins, trained_regression):
    return stack["api_url"], {"x-api-key": stack["api_key"], "content-type": "application/json"}


def _rows(name: str, trained_regression) -> pd.DataFrame:
    if name == "fares":
        return pd.read_csv(trained_regression["csv"]).drop(columns=["fare"])
    data = D.load(name.replace("-", "_"))
    return data.X


def _served(answer: dict, classes: list[str]) -> np.ndarray:
    """One row's explanation as (outputs, columns + 1), the expected value last."""
    explanation = answer["explanation"]
    if classes and len(classes) > 2:
        return np.array([[*explanation["contributions"][c].values(), explanation["expected_value"][c]]
                         for c in classes])
    return np.array([[*explanation["contributions"].values(), explanation["expected_value"]]])


@pytest.mark.parametrize("name", ["breast-cancer", "penguins", "fares"])
def test_explanations_equal_the_native_shap_values(api, stack, trained_regression, name):
    url, headers = api
    s3 = client("s3", stack["endpoint"])
    champion = bundles.load_champion(s3, stack["model_bucket"], name)
    rows = _rows(name, trained_regression)
    with_missing = rows[rows.isna().any(axis=1)].iloc[:4]  # missing values included where the data has them
    rows = pd.concat([with_missing, rows.iloc[:10 - len(with_missing)]])
    instances = D.to_instances(rows, champion.feature_schema)
    route = "/explain" if name == "breast-cancer" else f"/models/{name}/explain"
    response = requests.post(f"{url}{route}", headers=headers, timeout=60, data=json.dumps({"instances": instances}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": name, "version": champion.version}
    served = np.stack([_served(answer, champion.classes) for answer in body["predictions"]])
    native = native_shap(champion, s3, stack["model_bucket"], rows)
    difference = np.abs(served - native)
    if champion.task == "regression":
        difference = difference / np.maximum(1, np.abs(native))
    assert difference.max() <= 1e-9
    assert champion.manifest["exactness"]["explanations"]["max_abs_difference"] <= 1e-9
    if name != "breast-cancer":
        assert len(with_missing) > 0
    if champion.task == "regression":  # the contributions add up to the answer itself
        values = [answer["prediction"] for answer in body["predictions"]]
        assert np.allclose(served.sum(axis=(1, 2)), values, rtol=1e-12)


def test_the_families_served_are_both_covered(stack, api):
    # the explanations above cover both families, alone or as an ensemble's members
    s3 = client("s3", stack["endpoint"])
    manifests = [bundles.load_champion(s3, stack["model_bucket"], name).manifest for name in ("penguins", "fares")]
    served = set()
    for manifest in manifests:
        members = (manifest.get("ensemble") or {}).get("members") or [manifest["framework"]]
        served |= {m["family"] for m in members}
    assert served == {"catboost", "lightgbm"}


def test_more_rows_than_max_explain_rows_are_refused_with_the_limit(api, trained):
    url, headers = api
    model = requests.get(f"{url}/model", timeout=30).json()
    instances = [model["examples"][0]["instance"]] * 11
    response = requests.post(f"{url}/explain", headers=headers, timeout=30, data=json.dumps({"instances": instances}))
    assert response.status_code == 413
    assert response.json() == {"error": "11 rows in one request; the limit is 10"}
    response = requests.post(f"{url}/explain", timeout=30, data=json.dumps({"instances": instances[:1]}),
                             headers={"content-type": "application/json"})
    assert response.status_code == 403  # the API key is required, as for predictions
