"""A file dropped under batch/input/ in the deployed data bucket is scored by the S3-triggered function."""

import csv
import io
import time

import numpy as np
import pytest
from serving import bundle

from tests.conftest import client
from training import data as D

pytestmark = pytest.mark.integration


def wait_for(s3, bucket, key, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            time.sleep(1)
    raise AssertionError(f"s3://{bucket}/{key} did not appear in {timeout} s")


def test_a_dropped_csv_is_scored_with_errors_reported(stack, trained):
    s3 = client("s3", stack["endpoint"])
    champion = bundle.load_champion(s3, stack["model_bucket"], "breast-cancer")
    data = D.load("breast_cancer")
    rows = data.X.iloc[:200].copy().astype(object)
    rows.iloc[7, 0] = "oops"  # row id 8: mean radius
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False)
    s3.put_object(Bucket=stack["data_bucket"], Key="batch/input/sample.csv", Body=buffer.getvalue().encode())

    predictions = list(csv.DictReader(io.StringIO(
        wait_for(s3, stack["data_bucket"], "batch/output/sample.predictions.csv"))))
    errors = list(csv.DictReader(io.StringIO(
        wait_for(s3, stack["data_bucket"], "batch/output/sample.errors.csv"))))
    assert len(predictions) == 199
    assert [(e["row_id"], e["field"]) for e in errors] == [("8", "mean radius")]
    kept = [i for i in range(200) if i != 7]
    expected = bundle.served_predictions(champion.arrays,
        D.to_matrix(data.X.iloc[kept], champion.feature_schema))
    served = np.array([[float(r[f"probability_{c}"]) for c in champion.classes] for r in predictions])
    assert np.max(np.abs(served - expected)) <= 1e-12
