"""A regression model trained from a user's CSV, through API Gateway and the batch function.

The CSV has what real tables have: a row counter (left out, and recorded), a street name with
more than 1,000 distinct values (CatBoost's target statistics, served exactly) and ISO
timestamps (sent to the API as the strings they were in the file).
"""

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import requests
from serving.model.predictor import served_predictions
from serving.store import bundles

from tests.conftest import client
from tests.integration.test_batch_scoring import wait_for
from tests.native import native_predictions
from training import data as D

pytestmark = pytest.mark.integration


def _held_rows(trained_regression, count: int) -> pd.DataFrame:
    """Rows of the user's file, as read from it: strings for the timestamps."""
    return pd.read_csv(trained_regression["csv"]).iloc[:count]


def test_the_csv_trains_a_regression_model_without_its_id_column(stack, trained_regression):
    assert trained_regression["task"] == "regression" and trained_regression["metric"] == "rmse"
    assert trained_regression["promoted"] is True
    champion = bundles.load_champion(client("s3", stack["endpoint"]), stack["model_bucket"], "fares")
    manifest = champion.manifest
    assert [d["name"] for d in manifest["dropped_columns"]] == ["ride_id"]
    assert "row counter" in manifest["dropped_columns"][0]["reason"]
    types = {f["name"]: f for f in manifest["feature_schema"]}
    assert set(types) == {"street", "km", "start"}
    assert types["start"]["type"] == "datetime" and types["street"]["type"] == "categorical"
    assert len(types["street"]["categories"]) > 1000
    # a CatBoost model (alone, or an ensemble's member) reads the 1,200-value street through its CTRs
    ctr_keys = [len(keys) for name, keys in champion.arrays.items() if name.rsplit(".", 1)[-1] == "ctr_keys"]
    assert max(ctr_keys) > 1000
    assert manifest["exactness"]["max_abs_difference"] <= 1e-9 and "max(1" in manifest["exactness"]["measured_as"]


def test_the_regression_model_is_listed_described_and_answers_its_native_values(stack, trained_regression):
    url = stack["api_url"]
    listed = {m["name"]: m for m in requests.get(f"{url}/models", timeout=30).json()["models"]}
    assert listed["fares"]["task"] == "regression" and listed["fares"]["classes"] == []
    assert set(listed["fares"]["metrics"]) >= {"rmse", "mae", "r2"}
    described = requests.get(f"{url}/models/fares", timeout=30).json()
    assert described["task"] == "regression" and described["target"] == "fare"
    s3 = client("s3", stack["endpoint"])
    champion = bundles.load_champion(s3, stack["model_bucket"], "fares")
    rows = _held_rows(trained_regression, 120)
    instances = [{"street": r.street, "km": None if pd.isna(r.km) else r.km, "start": r.start}
                 for r in rows.itertuples()]
    assert all(isinstance(i["start"], str) for i in instances)
    response = requests.post(f"{url}/models/fares/predict", timeout=30,
                             headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                             data=json.dumps({"instances": instances}))
    assert response.status_code == 200, response.text
    served = np.array([[p["prediction"]] for p in response.json()["predictions"]])
    native = native_predictions(champion, s3, stack["model_bucket"],
                                D.screen(D.Dataset("fares", rows.drop(columns=["ride_id", "fare"]),
                                                   rows["fare"], "", "regression", "fare")).X)
    assert np.max(np.abs(served - native) / np.maximum(1, np.abs(native))) <= 1e-9
    assert np.std(served) > 1  # a model that answers, not a constant


def test_a_timestamp_that_does_not_parse_is_named(stack, trained_regression):
    response = requests.post(f"{stack['api_url']}/models/fares/predict", timeout=30,
                             headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                             data=json.dumps({"instances": [{"street": "street-1", "km": 3.0,
                                                             "start": "03/01/2024 10:00"}]}))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["start"]


def test_batch_scoring_of_a_regression_model_writes_a_prediction_column(stack, trained_regression):
    s3 = client("s3", stack["endpoint"])
    rows = _held_rows(trained_regression, 30).drop(columns=["fare"]).rename(columns={"ride_id": "id"})
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False)
    s3.put_object(Bucket=stack["data_bucket"], Key="batch/input/fares/week.csv", Body=buffer.getvalue().encode())
    out = list(csv.DictReader(io.StringIO(
        wait_for(s3, stack["data_bucket"], "batch/output/fares/week.predictions.csv"))))
    assert list(out[0]) == ["row_id", "prediction"] and [r["row_id"] for r in out] == [str(i) for i in rows["id"]]
    champion = bundles.load_champion(s3, stack["model_bucket"], "fares")
    features = rows.drop(columns=["id"])
    expected = served_predictions(champion.arrays, D.to_matrix(features, champion.feature_schema))[:, 0]
    assert np.max(np.abs(np.array([float(r["prediction"]) for r in out]) - expected)) <= 1e-12
