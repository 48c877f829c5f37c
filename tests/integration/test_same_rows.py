"""The user's own table, both ways: a spreadsheet's CSV (semicolons, decimal commas, a row-name
column, a row counter, a constant column) trained through the CLI `make train` uses, then its own
rows sent back to the API (target removed, and kept) and as batch files (CSV and Parquet, with the
target: an evaluation)."""

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import requests
from serving.store import bundles

from tests.conftest import client, train
from tests.integration.test_batch_scoring import wait_for
from tests.native import native_predictions
from training import evaluate as training_metrics

pytestmark = pytest.mark.integration
FEATURES = ["size", "weight", "colour"]


def sheet(n: int = 300, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.normal(10, 3, n).round(2)
    weight = rng.normal(50, 10, n).round(1)
    colour = rng.choice(["red", "green", "blue"], n)
    score = size / 3 + (weight - 50) / 10 + (colour == "red") + rng.normal(0, 0.7, n)
    return pd.DataFrame({"rownames": [f"plant-{i:04d}" for i in range(n)], "counter": np.arange(1, n + 1),
                         "size": size, "weight": weight, "colour": colour, "site": "north",
                         "label": np.where(score > np.median(score), "tall", "short")})


@pytest.fixture(scope="module")
def trained_sheet(stack, mlflow_store, tmp_path_factory):
    table = sheet()
    path = tmp_path_factory.mktemp("sheet") / "plants.csv"
    table.to_csv(path, sep=";", decimal=",", index=False)  # as a spreadsheet in much of Europe writes it
    summary = train(stack, mlflow_store, f"dataset={path}", "target=label", "model_name=plants")
    s3 = client("s3", stack["endpoint"])
    return {**summary, "table": table, "champion": bundles.load_champion(s3, stack["model_bucket"], "plants")}


def post(stack, rows: list[dict]) -> requests.Response:
    return requests.post(f"{stack['api_url']}/models/plants/predict", timeout=60,
                         headers={"x-api-key": stack["api_key"], "content-type": "application/json"},
                         data=json.dumps({"instances": rows}))


def native(stack, champion, rows: pd.DataFrame) -> np.ndarray:
    return native_predictions(champion, client("s3", stack["endpoint"]), stack["model_bucket"], rows[FEATURES])


def test_the_model_records_what_it_left_out_and_the_api_says_what_it_ignores(stack, trained_sheet):
    manifest = trained_sheet["champion"].manifest
    assert [f["name"] for f in manifest["feature_schema"]] == FEATURES
    assert [d["name"] for d in manifest["dropped_columns"]] == ["rownames", "counter", "site"]
    assert (manifest["id_column"], manifest["target"]) == ("rownames", "label")
    described = requests.get(f"{stack['api_url']}/models/plants", timeout=30).json()
    assert described["ignored_columns"] == ["rownames", "counter", "site", "label"]
    assert described["id_column"] == "rownames"


def test_the_tables_own_rows_are_answered_as_the_native_model_answers_with_or_without_the_target(
        stack, trained_sheet):
    table = trained_sheet["table"].iloc[:40]
    expected = native(stack, trained_sheet["champion"], table)
    classes = trained_sheet["champion"].classes
    for rows in (table.drop(columns=["label"]), table):
        response = post(stack, json.loads(rows.to_json(orient="records")))
        assert response.status_code == 200, response.text
        served = np.array([[p["probabilities"][c] for c in classes] for p in response.json()["predictions"]])
        assert np.max(np.abs(served - expected)) <= 1e-12


def test_a_name_never_seen_at_training_is_still_refused(stack, trained_sheet):
    row = json.loads(trained_sheet["table"].iloc[:1].to_json(orient="records"))[0]
    response = post(stack, [{**row, "sizee": 3.0}])
    assert response.status_code == 422
    assert response.json()["errors"] == [{"row": 0, "field": "sizee", "message": "unknown feature"}]


@pytest.mark.parametrize("form", ["csv", "parquet"])
def test_a_labelled_batch_file_of_the_tables_rows_is_an_evaluation(stack, trained_sheet, form):
    table = trained_sheet["table"].iloc[100:220]
    s3 = client("s3", stack["endpoint"])
    buffer = io.BytesIO()
    if form == "csv":
        table.to_csv(buffer, index=False)
    else:
        table.to_parquet(buffer, index=False)
    s3.put_object(Bucket=stack["data_bucket"], Key=f"batch/input/plants/check.{form}", Body=buffer.getvalue())
    out = list(csv.DictReader(io.StringIO(
        wait_for(s3, stack["data_bucket"], "batch/output/plants/check.predictions.csv"))))
    s3.delete_object(Bucket=stack["data_bucket"], Key="batch/output/plants/check.predictions.csv")
    classes = trained_sheet["champion"].classes
    assert list(out[0]) == ["row_id", "label", *[f"probability_{c}" for c in classes], "actual"]
    assert [r["row_id"] for r in out] == table["rownames"].tolist()
    assert [r["actual"] for r in out] == table["label"].tolist()
    served = np.array([[float(r[f"probability_{c}"]) for c in classes] for r in out])
    assert np.max(np.abs(served - native(stack, trained_sheet["champion"], table))) <= 1e-12
    manifest = json.loads(wait_for(s3, stack["data_bucket"], "batch/output/plants/check.manifest.json"))
    s3.delete_object(Bucket=stack["data_bucket"], Key="batch/output/plants/check.manifest.json")
    found = manifest["evaluation"]
    assert (found["rows"], found["missing_label"], found["unknown_label"]) == (len(table), 0, 0)
    # labels as served: by the model's decision threshold when it has one
    expected = training_metrics.metrics(table["label"].to_numpy(), served, classes,
                                        trained_sheet["champion"].decision_threshold)
    for key in ("accuracy", "f1_macro", "roc_auc", "log_loss"):
        assert found["metrics"][key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
    for label, scores in expected["per_class"].items():
        assert found["metrics"]["per_class"][label] == pytest.approx(scores, rel=1e-12, abs=1e-12), label
