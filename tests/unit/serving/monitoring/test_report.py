"""What the drift function writes, where, and what it publishes: a hand-made reference and window,
so that each number in the report, the summary and the metrics can be checked against the comparison."""

import json
import os
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from aws_lambda_powertools import Metrics
from serving.model import bundle
from serving.monitoring import drift, report
from serving.monitoring.pictures import picture
from serving.settings import Settings
from serving.store import bundles
from serving.store.s3 import S3Reader

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.handlers.test_drift import drift_function  # noqa: F401 - a fixture

COLUMNS = [{"name": "speed/limit", "kind": "numeric"},
           {"name": "colour", "kind": "categorical", "categories": ["red", "green", "blue"]}]
SINCE = datetime(2026, 1, 2, 6, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 3, 4, 5, 6, 789012, tzinfo=UTC)


def training(n=1000, seed=0):
    """Rows of COLUMNS (a tenth of the speeds missing) and a regression's answers."""
    r = np.random.default_rng(seed)
    matrix = np.column_stack([r.normal(50, 10, n), r.integers(0, 3, n).astype(float)])
    matrix[r.random(n) < 0.1, 0] = np.nan
    return matrix, r.normal(3, 1, (n, 1))


def publish(s3, name="trips", reference=None):
    """A champion with ``reference`` as its reference profile (any small model will do: the drift
    function reads only the reference); its version and the reference."""
    if reference is None:
        matrix, answers = training()
        reference = drift.reference(matrix, COLUMNS, answers, "regression", [])
    model = case("bc-lightgbm")
    manifest = bundles.publish(s3, BUCKET, name, model.arrays, model.manifest_fields(),
                              {drift.REFERENCE_FILE: json.dumps(reference).encode()})
    bundles.set_champion(s3, BUCKET, name, manifest["version"], "test")
    return manifest["version"], reference


def write_window(s3, name, records, day):
    """Captured records, as the API writes them, under one day."""
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    s3.put_object(Bucket=BUCKET, Key=f"capture/{name}/date={day}/0.jsonl", Body=body)


def records_of(matrix, answers, version, time):
    return [{"time": time, "version": version, "row": [None if np.isnan(v) else float(v) for v in row],
             "prediction": float(p)} for row, p in zip(matrix, answers, strict=True)]


@pytest.fixture
def limits(monkeypatch):
    """Thresholds other than the defaults, as the template's parameters set them."""
    for variable, value in (("DRIFT_PSI", "0.15"), ("DRIFT_P_VALUE", "0.02"), ("DRIFT_MIN_ROWS", "30")):
        monkeypatch.setenv(variable, value)
    return {"psi": 0.15, "p_value": 0.02, "min_rows": 30}


class Function:
    """The drift function's work, called directly: its metrics are cleared after."""

    metrics = Metrics(namespace="TabularServerless", service="drift")

    def check_model(self, s3, bucket, name, since, now):
        thresholds = Settings.from_env({**os.environ, "MODEL_BUCKET": bucket}).drift_thresholds
        return report.check_model(s3, bucket, name, since, now, thresholds, self.metrics)


@pytest.fixture
def function():
    Function.metrics.clear_metrics()
    yield Function()
    Function.metrics.clear_metrics()  # Powertools keeps them across instances: not for the next test


def test_the_report_is_the_comparison_of_the_window_with_the_limits_of_the_environment(s3, limits, function):
    version, reference = publish(s3)
    matrix, answers = training(240, seed=3)
    matrix[:, 0] += 15.0  # the speed moved by one and a half spreads: drift
    answers = answers[:, 0]
    other = {"version": version, "row": [500.0, 2.0], "prediction": 9.0}
    write_window(s3, "trips", [
        {**other, "time": "2026-01-02T05:59:59.999+00:00"},  # before the window
        *records_of(matrix[:1], answers[:1], version, "2026-01-02T06:00:00.000+00:00"),  # at its start: in
        *records_of(matrix[1:150], answers[1:150], version, "2026-01-02T10:00:00.000+00:00")], "2026-01-02")
    write_window(s3, "trips", [
        *records_of(matrix[150:], answers[150:], version, "2026-01-03T01:00:00.000+00:00"),
        {**other, "version": version + 1, "time": "2026-01-03T01:00:00.000+00:00"}], "2026-01-03")
    write_window(s3, "trips", [{**other, "time": "2026-01-04T00:00:00.000+00:00"}], "2026-01-04")  # after

    summary = function.check_model(S3Reader.from_env(), BUCKET, "trips", SINCE, NOW)

    expected = drift.compare(reference, matrix, answers, limits)
    assert expected["drifted_features"] == ["speed/limit"] and expected["thresholds"] == limits
    folder = "drift/trips/20260103T040506789012Z/"  # the time of the check, to the microsecond
    assert summary == {
        "model": "trips", "version": version, "status": "ok", "rows": 240, "enough_rows": True,
        "drifted_features": ["speed/limit"], "prediction_drifted": expected["prediction_drifted"],
        "report": f"s3://{BUCKET}/{folder}report.json",
        "psi": {"speed/limit": round(expected["features"]["speed/limit"]["psi"], 4),
                "colour": round(expected["features"]["colour"]["psi"], 4)},
        "prediction_psi": round(expected["prediction"]["psi"], 4)}
    # four decimals in the summary: each PSI here has a fifth that is not 0
    assert all(round(d["psi"], 5) != round(d["psi"], 4)
               for d in [*expected["features"].values(), expected["prediction"]])

    written = s3.get_object(Bucket=BUCKET, Key=f"{folder}report.json")
    assert written["ContentType"] == "application/json"
    body = written["Body"].read()
    assert body.startswith(  # indented by one space a level
        b'{\n "model": "trips",\n "version": %d,\n "since": "2026-01-02T06:00:00.000+00:00",\n'
        b' "until": "2026-01-03T04:05:06+00:00",\n "rows": 240,' % version)
    pictures = {"speed/limit": f"{folder}speed_limit.svg"}  # a "/" in a name is not a folder
    assert json.loads(body) == json.loads(json.dumps({
        "model": "trips", "version": version, "since": "2026-01-02T06:00:00.000+00:00",
        "until": "2026-01-03T04:05:06+00:00", **expected, "pictures": pictures}))
    latest = s3.get_object(Bucket=BUCKET, Key="drift/trips/latest.json")
    assert latest["ContentType"] == "application/json" and latest["Body"].read() == body
    svg = s3.get_object(Bucket=BUCKET, Key=pictures["speed/limit"])
    assert svg["ContentType"] == "image/svg+xml"
    drawn = picture("speed/limit", json.loads(body)["features"]["speed/limit"])
    assert svg["Body"].read().decode() == drawn
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="drift/")["Contents"])
    assert keys == [f"{folder}report.json", f"{folder}speed_limit.svg", "drift/trips/latest.json"]


def emf(output):
    """The EMF documents the function printed: (directive, document) pairs."""
    documents = [json.loads(line) for line in output.splitlines()
                 if line.startswith("{") and '"_aws"' in line]
    return [(d["_aws"]["CloudWatchMetrics"], d) for d in documents]


def test_the_metrics_are_in_the_project_namespace_with_their_units_and_dimensions(
        s3, drift_function):  # noqa: F811 - the fixture imported above
    import handlers.drift

    handlers.drift.metrics.clear_metrics()  # shared by every instance: only this test's
    version, reference = publish(s3)
    matrix, answers = training(240, seed=3)
    matrix[:, 0] += 15.0
    now = datetime.now(UTC) - timedelta(minutes=5)
    records = records_of(matrix, answers[:, 0], version, now.isoformat(timespec="milliseconds"))
    write_window(s3, "trips", records, now.date().isoformat())
    [result] = drift_function({"model": "trips"})["models"]
    expected = drift.compare(reference, matrix, answers[:, 0], drift.DEFAULT_THRESHOLDS)
    assert result["drifted_features"] == expected["drifted_features"] == ["speed/limit"]
    printed = emf(drift_function.output)
    # per model and feature, without a unit: a PSI is a number, not a count
    psi = [(d["Model"], d["Feature"], d["FeaturePSI"]) for directive, d in printed if directive == [
        {"Namespace": "TabularServerless", "Dimensions": [["Model", "Feature"]],
         "Metrics": [{"Name": "FeaturePSI", "Unit": "None"}]}]]
    assert psi == [("trips", f, [d["psi"]]) for f, d in expected["features"].items()]
    # the number of drifted features: per model, and (for the template's one alarm) without the model
    drifted = [d for directive, d in printed if directive == [
        {"Namespace": "TabularServerless", "Dimensions": [["Model"]],
         "Metrics": [{"Name": "DriftedFeatures", "Unit": "Count"}]}]]
    assert [(d["Model"], d["DriftedFeatures"]) for d in drifted] == [("trips", [1.0])]
    overall = [d for directive, d in printed if directive == [
        {"Namespace": "TabularServerless", "Dimensions": [["service"]],
         "Metrics": [{"Name": "DriftedFeatures", "Unit": "Count"}]}]]
    assert [(d["service"], d["DriftedFeatures"]) for d in overall] == [("drift", [1.0])]
    assert len(printed) == 4  # nothing else


def test_the_thresholds_come_from_the_environment_else_the_defaults(monkeypatch, limits):
    def thresholds():
        return Settings.from_env({**os.environ, "MODEL_BUCKET": BUCKET}).drift_thresholds

    assert thresholds() == limits
    for variable in ("DRIFT_PSI", "DRIFT_P_VALUE", "DRIFT_MIN_ROWS"):
        monkeypatch.delenv(variable)
    defaults = thresholds()
    assert defaults == drift.DEFAULT_THRESHOLDS == {"psi": 0.2, "p_value": 0.01, "min_rows": 100}
    assert [type(v) for v in defaults.values()] == [float, float, int]


def test_a_version_without_a_reference_is_named_with_the_reason(s3, function):
    model = case("bc-lightgbm")
    version = bundles.publish(s3, BUCKET, "old", model.arrays, model.manifest_fields())["version"]
    bundles.set_champion(s3, BUCKET, "old", version, "test")
    # a manifest that lists no files at all (hand-written): the same answer, not a crash
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix("bare", 1) + bundle.MANIFEST_FILE,
                  Body=json.dumps({"format_version": 2, "name": "bare", "version": 1, "task": "binary",
                                   "classes": ["no", "yes"]}).encode())
    bundles.set_champion(s3, BUCKET, "bare", 1, "test")
    reader = S3Reader.from_env()
    reason = "this version was published without a reference profile"
    assert function.check_model(reader, BUCKET, "old", SINCE, NOW) == {
        "model": "old", "version": version, "status": "no_reference", "reason": reason}
    assert function.check_model(reader, BUCKET, "bare", SINCE, NOW) == {
        "model": "bare", "version": 1, "status": "no_reference", "reason": reason}


def test_a_manifest_changed_since_its_promotion_is_refused(s3, function):
    version, _ = publish(s3)
    key = bundle.version_prefix("trips", version) + bundle.MANIFEST_FILE
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({**manifest, "files": {}}).encode())
    with pytest.raises(bundle.BundleError, match="does not match the champion pointer"):
        function.check_model(S3Reader.from_env(), BUCKET, "trips", SINCE, NOW)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="drift/")["KeyCount"] == 0


def test_a_report_is_strict_json_or_is_not_written(s3, function):
    matrix, answers = training()
    reference = drift.reference(matrix, COLUMNS, answers, "regression", [])
    reference["columns"][0]["missing_rate"] = float("nan")
    publish(s3, "broken", reference)  # a reference with a NaN (json.dumps writes one unless told not to)
    with pytest.raises(ValueError, match="JSON compliant"):
        function.check_model(S3Reader.from_env(), BUCKET, "broken", SINCE, NOW)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="drift/")["KeyCount"] == 0


def test_the_picture_is_exactly_this_svg():

    result = {"psi": 1.23456, "test": "kolmogorov-smirnov", "p_value": 3.2e-7,
              "bins": {"labels": ["<= 1", "> 1"], "reference": [0.5, 0.5], "current": [0.2, 0.8]}}
    assert picture("km", result) == (
        '<svg xmlns="http://www.w3.org/2000/svg" width="520" height="270" font-family="sans-serif" '
        'font-size="10">'
        '<text x="10" y="14" font-size="12">km: PSI 1.235, kolmogorov-smirnov p = 3.2e-07 '
        '(grey: training, blue: now)</text>'
        '<rect x="50" y="90.0" width="14" height="100.0" fill="#9aa7b4"><title>&lt;= 1: 50.0%</title></rect>'
        '<rect x="64" y="150.0" width="14" height="40.0" fill="#1f5f9e"><title>&lt;= 1: 20.0%</title></rect>'
        '<text x="50" y="205" transform="rotate(45 50 205)">&lt;= 1</text>'
        '<rect x="88" y="90.0" width="14" height="100.0" fill="#9aa7b4"><title>&gt; 1: 50.0%</title></rect>'
        '<rect x="102" y="30.0" width="14" height="160.0" fill="#1f5f9e"><title>&gt; 1: 80.0%</title></rect>'
        '<text x="88" y="205" transform="rotate(45 88 205)">&gt; 1</text>'
        '</svg>')


def test_a_picture_of_many_bins_is_wider_and_one_of_unequal_bins_is_refused():

    labels = [f"c{i}" for i in range(20)] + ["rare", "(other)"]
    shares = [1 / 22] * 22
    svg = picture("street", {"psi": 0.5, "test": "chi-squared", "p_value": 0.001,
                             "bins": {"labels": labels, "reference": shares, "current": shares}})
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="896" height="270" ')  # 60 + 22 x 38
    assert svg.count("<rect") == 44 and svg.count("<text") == 23
    assert '<text x="848" y="205" transform="rotate(45 848 205)">(other)</text></svg>' in svg  # the last bin
    with pytest.raises(ValueError, match="zip"):  # a bin without its share would shift the others
        picture("street", {"psi": 0.5, "test": "chi-squared", "p_value": 0.001,
                           "bins": {"labels": labels, "reference": shares[:-1], "current": shares}})


def test_the_latest_report_is_read_with_its_pictures_inlined_and_none_before_the_first(s3, limits, function):
    version, _ = publish(s3)
    assert report.latest(S3Reader.from_env(), BUCKET, "trips") is None
    matrix, answers = training(240, seed=3)
    matrix[:, 0] += 15.0
    write_window(s3, "trips", records_of(matrix, answers[:, 0], version, "2026-01-02T10:00:00.000+00:00"),
                 "2026-01-02")
    function.check_model(S3Reader.from_env(), BUCKET, "trips", SINCE, NOW)
    latest = report.latest(S3Reader.from_env(), BUCKET, "trips")
    written = json.loads(s3.get_object(Bucket=BUCKET, Key="drift/trips/latest.json")["Body"].read())
    assert {k: v for k, v in latest.items() if k != "pictures"} == {k: v for k, v in written.items()
                                                                    if k != "pictures"}
    assert list(latest["pictures"]) == ["speed/limit"] == written["drifted_features"]
    key = written["pictures"]["speed/limit"]
    assert latest["pictures"]["speed/limit"] == s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert latest["pictures"]["speed/limit"].startswith("<svg")
