"""Batch scoring: every row of a dropped file is predicted or explained."""

import csv
import importlib
import io
import json

import numpy as np
import pytest
from serving import batch, bundle
from serving.predictor import Predictor

from tests.unit.conftest import BUCKET, trained
from training import data as D


@pytest.fixture
def predictor():
    model = trained("penguins", "lightgbm")
    manifest_fields = model.manifest_fields()
    loaded = bundle.Bundle(manifest={**manifest_fields, "name": "p", "version": 1}, arrays=model.arrays)
    return model, Predictor(loaded)


def run(predictor, text: str, name: str, chunk_rows=3):
    predictions, errors = io.StringIO(), io.StringIO()
    records = batch.read_records(io.BytesIO(text.encode()), name)
    result = batch.score(records, predictor, predictions, errors, csv_text=name.endswith(".csv"),
                         chunk_rows=chunk_rows)
    predictions.seek(0)
    errors.seek(0)
    return result, list(csv.DictReader(predictions)), list(csv.DictReader(errors))


def csv_text(frame):
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue()


def test_a_csv_is_scored_exactly_with_invalid_rows_reported(predictor):
    model, p = predictor
    X = model.X_test.iloc[:10].copy()
    text = csv_text(X.astype(object))
    lines = text.splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], "not-a-number", 1)  # row 3: bill_length_mm
    result, predictions, errors = run(p, "\n".join(lines) + "\n", "in.csv")
    assert (result.rows, result.predicted, result.invalid) == (10, 9, 1)
    assert [e["row_id"] for e in errors] == ["3"]
    assert errors[0]["field"] == "bill_length_mm"
    kept = [i for i in range(10) if i != 2]
    served = np.array([[float(r[f"probability_{c}"]) for c in model.classes] for r in predictions])
    assert np.max(np.abs(served - model.native[kept])) <= 1e-9
    assert [r["row_id"] for r in predictions] == [str(i + 1) for i in kept]


def test_json_lines_with_ids_and_a_broken_line(predictor):
    model, p = predictor
    instances = D.to_instances(model.X_test.iloc[:4], model.schema)
    lines = [json.dumps({"id": f"r{i}", **row}) for i, row in enumerate(instances)]
    lines.insert(2, "{broken")
    result, predictions, errors = run(p, "\n".join(lines), "in.jsonl")
    assert (result.rows, result.predicted, result.invalid) == (5, 4, 1)
    assert [r["row_id"] for r in predictions] == ["r0", "r1", "r2", "r3"]
    assert "not valid JSON" in errors[0]["message"]


def test_an_unsupported_file_type_is_refused():
    with pytest.raises(batch.UnsupportedFile, match=".csv or .jsonl"):
        next(batch.read_records(io.BytesIO(b"x"), "in.xlsx"))


def test_the_handler_writes_outputs_next_to_the_input(s3, monkeypatch):
    model = trained()
    manifest = bundle.publish(s3, BUCKET, "breast-cancer", model.arrays, model.manifest_fields())
    bundle.set_champion(s3, BUCKET, "breast-cancer", manifest["version"], "test")
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    import handlers.batch

    module = importlib.reload(handlers.batch)
    rows = model.X_test.iloc[:5].copy()
    text = csv_text(rows)
    s3.put_object(Bucket=BUCKET, Key="batch/input/day 1.csv", Body=text.encode())
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": BUCKET}, "object": {"key": "batch/input/day+1.csv"}}}]}

    class Context:
        function_name, memory_limit_in_mb = "batch", 1769
        invoked_function_arn, aws_request_id = "arn:aws:lambda:us-east-1:0:function:batch", "r"

    answer = module.handler(event, Context())
    assert answer["scored"][0]["predicted"] == 5
    out = s3.get_object(Bucket=BUCKET, Key="batch/output/day 1.predictions.csv")["Body"].read().decode()
    assert len(out.strip().splitlines()) == 6
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="batch/output/")["Contents"]]
    assert "batch/output/day 1.errors.csv" not in keys
