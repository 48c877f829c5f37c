"""Capture and drift on LocalStack: requests through API Gateway are captured to S3, the drift function
(the one the schedule runs) compares them with the champion's reference, reports and publishes metrics.

The fares model (regression: a street of 1,300 values, a distance, a timestamp) is asked rows of its
own training table, then rows with the distance shifted and most rides on one street: drift is found
on exactly those two, in `make drift`'s JSON, the S3 report and the function's EMF metrics.
"""

import json
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
import requests

from tests.conftest import client

pytestmark = pytest.mark.integration


def send(stack, rows: pd.DataFrame) -> None:
    headers = {"x-api-key": stack["api_key"], "content-type": "application/json"}
    for start in range(0, len(rows), 100):  # the test stack writes its capture buffer every 100 rows
        chunk = rows.iloc[start:start + 100]
        instances = [{"street": r.street, "km": None if pd.isna(r.km) else r.km, "start": r.start}
                     for r in chunk.itertuples()]
        response = requests.post(f"{stack['api_url']}/models/fares/predict", headers=headers, timeout=60,
                                 data=json.dumps({"instances": instances}))
        assert response.status_code == 200, response.text


def drift_now(stack, since: str) -> dict:
    from infra import drift_check

    return drift_check.run(stack, {"model": "fares", "since": since})


def test_rows_from_training_do_not_drift_and_two_shifted_columns_do(stack, trained_regression):
    started = int(time.time() * 1000)  # this test's log events only (another test may check fares first)
    table = pd.read_csv(trained_regression["csv"])
    rows = table.sample(600, random_state=1)
    since = datetime.now(UTC).isoformat()
    send(stack, rows)
    [same] = drift_now(stack, since)["models"]
    assert same["status"] == "ok" and same["rows"] == 600
    assert same["drifted_features"] == [] and same["prediction_drifted"] is False

    shifted = rows.copy()
    shifted["km"] = shifted["km"] + 8.0
    busiest = table["street"].value_counts().index[0]
    shifted.iloc[:400, shifted.columns.get_loc("street")] = busiest
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat()
    send(stack, shifted)
    [moved] = drift_now(stack, since)["models"]
    assert moved["rows"] == 600
    assert moved["drifted_features"] == ["km", "street"], json.dumps(moved)
    assert moved["psi"]["km"] > 0.2 and moved["psi"]["start.hour"] < 0.2

    s3 = client("s3", stack["endpoint"])
    key = moved["report"].split(f"{stack['model_bucket']}/", 1)[1]
    report = json.loads(s3.get_object(Bucket=stack["model_bucket"], Key=key)["Body"].read())
    assert report["drifted_features"] == ["km", "street"] and report["version"] == trained_regression["version"]
    assert set(report["pictures"]) == {"km", "street"}
    svg = s3.get_object(Bucket=stack["model_bucket"], Key=report["pictures"]["km"])["Body"].read()
    assert svg.startswith(b"<svg")
    served = requests.get(f"{stack['api_url']}/models/fares/drift", timeout=30)  # open: no key
    assert served.status_code == 200 and served.json()["report"]["drifted_features"] == ["km", "street"]
    assert served.json()["report"]["pictures"]["km"] == svg.decode()
    captured = s3.list_objects_v2(Bucket=stack["model_bucket"], Prefix="capture/fares/date=")
    assert captured["KeyCount"] >= 12  # 1,200 rows, written every 100

    # the metrics the function printed (EMF), as CloudWatch Logs received them
    logs = client("logs", stack["endpoint"])
    group = f"/aws/lambda/{stack['drift_function_name']}"
    deadline = time.monotonic() + 30
    km = []
    while time.monotonic() < deadline:
        km = []
        for event in logs.filter_log_events(logGroupName=group, startTime=started)["events"]:
            message = event["message"]
            if '"FeaturePSI"' in message and '"fares"' in message and '"km"' in message:
                value = json.loads(message[message.index("{"):])["FeaturePSI"]
                km.append(value[0] if isinstance(value, list) else value)
        if len(km) >= 2:  # both checks' metrics have arrived
            break
        time.sleep(1)
    assert km[-1] == pytest.approx(report["features"]["km"]["psi"])
    assert km[0] < 0.2 < km[-1]
