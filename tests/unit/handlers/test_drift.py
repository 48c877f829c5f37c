"""Capture in the API and the drift function, on moto's S3: what is kept, what is compared, what is written."""

import json

import numpy as np
import pytest
from serving.model.predictor import served_predictions
from serving.monitoring import drift
from serving.settings import Settings
from serving.store import bundles, capture
from serving.store.s3 import S3Reader

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.fakes import Context as ApiContext


def Context():  # noqa: N802 - the drift function's Lambda context
    return ApiContext(function_name="DriftFunction", memory_limit_in_mb=512,
                      invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:DriftFunction")


def publish_with_reference(s3, name="rides"):
    """The rides case (regression: a 300-value categorical, a number, a timestamp's parts) published with
    a reference profiled from its held-out rows."""
    model = case("rides-catboost")
    served = served_predictions(model.arrays, model.matrix)
    reference = drift.reference(model.matrix, drift.columns(model.schema), served, model.task, model.classes)
    manifest = bundles.publish(s3, BUCKET, name, model.arrays, model.manifest_fields(),
                              {drift.REFERENCE_FILE: json.dumps(reference).encode()})
    bundles.set_champion(s3, BUCKET, name, manifest["version"], "test")
    return model, manifest


def test_capture_keeps_the_rows_and_answers_and_writes_them_when_due(s3):
    writes = []
    kept = capture.Capture(S3Reader.from_env, BUCKET, rate=1.0, flush_rows=5, flush_seconds=3600,
                           on_error=lambda *a: writes.append(a))
    X = np.array([[1.0, np.nan], [2.0, 3.0]])
    kept.add("m", 4, X, np.array([0.25, 0.75]))
    kept.add("m", 4, X, np.array([0.5, 0.5]))
    assert kept.buffered_rows == 4
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/").get("KeyCount", 0) == 0  # not due yet
    kept.add("m", 4, X, np.array([0.1, 0.9]))  # 6 rows >= 5: written
    assert kept.buffered_rows == 0 and writes == []
    [record, *rest] = capture.read_window(s3, BUCKET, "m", [__import__("datetime").date.today().isoformat()])
    assert len(rest) == 5
    assert record["version"] == 4 and record["row"] == [1.0, None] and record["prediction"] == 0.25
    [item] = s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/m/date=")["Contents"]
    assert item["Key"].endswith(".jsonl") and f"-{kept.container}-000001" in item["Key"]


def test_capture_samples_at_its_rate_and_a_failed_write_never_raises(s3):
    none = capture.Capture(S3Reader.from_env, BUCKET, rate=0.0, flush_rows=1)
    none.add("m", 1, np.ones((3, 2)), np.ones(3))
    assert none.buffered_rows == 0
    some = capture.Capture(S3Reader.from_env, BUCKET, rate=0.3, flush_rows=10**9)
    some._random.seed(1)
    for _ in range(1000):
        some.add("m", 1, np.ones((1, 2)), np.ones(1))
    assert 240 < some.buffered_rows < 360
    failures = []
    broken = capture.Capture(S3Reader.from_env, "no-such-bucket", rate=1.0, flush_rows=1,
                             on_error=lambda model, rows, error: failures.append((model, rows)))
    broken.add("m", 1, np.ones((2, 2)), np.ones(2))
    assert failures == [("m", 2)] and broken.buffered_rows == 0


@pytest.fixture
def drift_function(s3, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    monkeypatch.setenv("DRIFT_MIN_ROWS", "100")
    import handlers.drift

    handler = handlers.drift.init(Settings.from_env())

    def run(event):
        capsys.readouterr()
        result = handler(event, Context())
        run.output = capsys.readouterr().out
        return result

    return run


def test_rows_like_the_reference_do_not_drift_and_shifted_ones_drift_on_exactly_those_columns(s3, drift_function):
    model, manifest = publish_with_reference(s3)
    columns = [c["name"] for c in drift.columns(model.schema)]
    served = served_predictions(model.arrays, model.matrix)[:, 0]
    kept = capture.Capture(S3Reader.from_env, BUCKET, rate=1.0, flush_rows=10**9)
    kept.add("rides", manifest["version"], model.matrix, served)
    kept.flush()
    [result] = drift_function({"model": "rides"})["models"]
    assert result["status"] == "ok" and result["rows"] == len(model.matrix)
    assert result["drifted_features"] == [] and result["prediction_drifted"] is False

    since = __import__("datetime").datetime.now(__import__("datetime").UTC).isoformat()
    shifted = model.matrix.copy()
    km, street = columns.index("km"), columns.index("street")
    shifted[:, km] += 8.0
    seen = model.matrix[:, street]
    busiest = float(np.argmax(np.bincount(seen[~np.isnan(seen)].astype(int))))
    shifted[: len(shifted) * 2 // 3, street] = busiest  # two thirds of the rides on the busiest street
    kept.add("rides", manifest["version"], shifted, served_predictions(model.arrays, shifted)[:, 0])
    kept.flush()
    summary = drift_function({"model": "rides", "since": since})
    [result] = summary["models"]
    assert result["drifted_features"] == ["km", "street"]
    assert result["prediction_drifted"] is True
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=result["report"].split(f"{BUCKET}/", 1)[1])["Body"].read())
    assert report["rows"] == len(shifted) and report["features"]["km"]["test"] == "kolmogorov-smirnov"
    assert report["features"]["street"]["bins"]["labels"][-1] == "(other)"  # 300 values: the top 20 and the rest
    latest = json.loads(s3.get_object(Bucket=BUCKET, Key="drift/rides/latest.json")["Body"].read())
    assert latest == report
    for feature in ("km", "street"):
        svg = s3.get_object(Bucket=BUCKET, Key=report["pictures"][feature])["Body"].read().decode()
        assert svg.startswith("<svg") and f"{feature}: PSI" in svg
    metrics = [json.loads(line) for line in drift_function.output.splitlines() if '"_aws"' in line]
    psi = {m["Feature"]: m["FeaturePSI"][0] for m in metrics if "FeaturePSI" in m}
    assert set(psi) == set(columns)
    assert psi["km"] == pytest.approx(report["features"]["km"]["psi"])
    drifted = [m for m in metrics if "DriftedFeatures" in m]
    assert {m.get("Model") for m in drifted} == {"rides", None} and all(m["DriftedFeatures"] == [2.0] for m in drifted)


def test_models_without_a_reference_or_a_champion_are_reported_not_failed(s3, drift_function):
    model = case("bc-lightgbm")
    manifest = bundles.publish(s3, BUCKET, "old", model.arrays, model.manifest_fields())
    bundles.set_champion(s3, BUCKET, "old", manifest["version"], "test")
    bundles.publish(s3, BUCKET, "candidate", model.arrays, model.manifest_fields())
    result = drift_function({})
    assert [(m["model"], m["status"]) for m in result["models"]] == [("old", "no_reference")]
    assert drift_function({"model": "candidate"})["models"] == [{"model": "candidate", "status": "no_champion"}]
    with pytest.raises(ValueError, match="not valid"):
        drift_function({"model": "../x"})


def test_the_api_captures_its_answered_rows_for_drift(s3, monkeypatch):
    from tests.unit.fakes import event

    model = case("penguins-lightgbm")
    manifest = bundles.publish(s3, BUCKET, "penguins", model.arrays, model.manifest_fields())
    bundles.set_champion(s3, BUCKET, "penguins", manifest["version"], "test")
    for name, value in (("MODEL_BUCKET", BUCKET), ("DEFAULT_MODEL", "penguins"), ("CAPTURE_RATE", "1"),
                        ("CAPTURE_FLUSH_ROWS", "5"), ("POWERTOOLS_METRICS_NAMESPACE", "Test")):
        monkeypatch.setenv(name, value)
    import handlers.api

    api = handlers.api.init(Settings.from_env())
    response = api.handler(event("predict", {"instances": model.instances[:6]}), ApiContext())
    assert response["statusCode"] == 200
    records = capture.read_window(s3, BUCKET, "penguins", [__import__("datetime").date.today().isoformat()])
    assert len(records) == 6 and {r["version"] for r in records} == {manifest["version"]}
    answers = json.loads(response["body"])["predictions"]
    assert [r["prediction"] for r in records] == [float(model.classes.index(a["label"])) for a in answers]
    served = np.array([[np.nan if v is None else v for v in r["row"]] for r in records])
    assert np.array_equal(served, model.matrix[:6], equal_nan=True)  # the rows as the model read them
    # an invalid request is not captured, and explanations are not requests to monitor
    api.handler(event("predict", {"instances": [{"island": "Mars"}]}), ApiContext())
    assert api.capture.buffered_rows == 0


def test_a_window_too_small_to_judge_publishes_no_psi(s3, drift_function, monkeypatch):
    model, manifest = publish_with_reference(s3)
    kept = capture.Capture(S3Reader.from_env, BUCKET, rate=1.0, flush_rows=10**9)
    kept.add("rides", manifest["version"], model.matrix[:50], np.zeros(50))
    kept.flush()
    [result] = drift_function({"model": "rides"})["models"]
    assert (result["rows"], result["enough_rows"], result["drifted_features"]) == (50, False, [])
    assert '"FeaturePSI"' not in drift_function.output and '"DriftedFeatures"' in drift_function.output


def test_the_picture_of_a_drifted_column_shows_both_distributions_per_bin():
    import re

    from serving.monitoring.pictures import picture

    result = {"psi": 0.4567, "test": "chi-squared", "p_value": 0.00123,
              "bins": {"labels": ["a<b", "c", "(other)"], "reference": [0.5, 0.25, 0.25],
                       "current": [0.1, 0.8, 0.1]}}
    svg = picture("colour & shade", result)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and svg.endswith("</svg>")
    assert "colour &amp; shade: PSI 0.457, chi-squared p = 0.0012 (grey: training, blue: now)" in svg
    bars = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="14" height="([\d.]+)" fill="(#\w+)">'
                      r"<title>([^<]*)</title>", svg)
    assert len(bars) == 6
    heights = {(title, colour): float(h) for _x, _y, h, colour, title in bars}
    # the tallest share fills the chart's 160 px; the others in proportion; grey is training
    assert heights[("c: 80.0%", "#1f5f9e")] == 160.0
    assert heights[("a&lt;b: 50.0%", "#9aa7b4")] == 100.0
    assert heights[("(other): 10.0%", "#1f5f9e")] == 20.0
    for _x, y, h, _c, _t in bars:
        assert float(y) + float(h) == 190.0  # bars stand on one baseline
    xs = sorted({float(x) for x, *_ in bars})
    assert xs == [50.0, 64.0, 88.0, 102.0, 126.0, 140.0]
    assert svg.count("<text") == 4 and 'transform="rotate(45' in svg
    assert 'width="520" height="270"' in svg  # three bins: the minimum width


def test_the_buffer_is_written_when_its_oldest_row_is_due_one_object_per_model(s3, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(capture, "monotonic", lambda: clock[0])
    kept = capture.Capture(S3Reader.from_env, BUCKET, rate=1.0, flush_rows=10**6, flush_seconds=60)
    assert (kept.rate, kept.flush_rows, kept.flush_seconds, len(kept.container)) == (1.0, 10**6, 60, 8)
    kept.add("a", 1, np.ones((1, 2)), np.ones(1))
    clock[0] += 59.9
    kept.add("b", 2, np.zeros((1, 1)), np.zeros(1))
    assert kept.buffered_rows == 2  # the oldest row is 59.9 s old
    clock[0] += 0.1
    kept.add("b", 2, np.zeros((1, 1)), np.zeros(1))  # 60 s: written
    assert kept.buffered_rows == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/")["Contents"]]
    day = __import__("datetime").datetime.now(__import__("datetime").UTC).strftime("%Y-%m-%d")
    assert sorted(k.rsplit("/", 1)[0] for k in keys) == [f"capture/a/date={day}", f"capture/b/date={day}"]
    assert sorted(k.rsplit("-", 1)[1] for k in keys) == ["000001.jsonl", "000002.jsonl"]
    body = s3.get_object(Bucket=BUCKET, Key=next(k for k in keys if "/b/" in k))
    assert body["ContentType"] == "application/x-ndjson"
    lines = body["Body"].read().decode().split("\n")
    assert lines[-1] == "" and [json.loads(x)["version"] for x in lines[:-1]] == [2, 2]
    assert capture.window_prefix("m", "2026-01-02") == "capture/m/date=2026-01-02/"
    clock[0] += 61
    kept.add("a", 1, np.ones((1, 2)), np.ones(1))  # the clock restarts with the first row buffered
    assert kept.buffered_rows == 1


def test_a_window_spans_pages_of_keys(s3):
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"capture/m/date=2026-01-02/{i}.jsonl",
                      Body=json.dumps({"version": 1, "row": [i], "prediction": i, "time": "t"}).encode() + b"\n\n")
    reader = S3Reader.from_env()
    original = type(reader).list_objects_v2

    def small_pages(self, **kwargs):
        return original(self, **kwargs, MaxKeys=1)

    reader.list_objects_v2 = small_pages.__get__(reader)
    records = capture.read_window(reader, BUCKET, "m", ["2026-01-01", "2026-01-02"])
    assert [r["row"] for r in records] == [[0], [1], [2]]


def test_the_functions_thresholds_window_and_log_are_its_settings(s3, monkeypatch):
    """DRIFT_MIN_ROWS from the environment decides; a `since` without a zone is UTC; each model's result
    is logged as one "drift" line; any event that is not an object checks every model."""
    from datetime import UTC, datetime, timedelta

    model, manifest = publish_with_reference(s3)
    kept = capture.Capture(S3Reader.from_env, BUCKET, rate=1.0, flush_rows=10**9)
    kept.add("rides", manifest["version"], model.matrix[:50], served_predictions(model.arrays, model.matrix[:50])[:, 0])
    kept.flush()
    for name, value in (("MODEL_BUCKET", BUCKET), ("POWERTOOLS_METRICS_NAMESPACE", "Test"), ("DRIFT_MIN_ROWS", "40")):
        monkeypatch.setenv(name, value)
    import handlers.drift

    handler = handlers.drift.init(Settings.from_env())
    naive = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    logged = []
    monkeypatch.setattr(handlers.drift.logger, "info", lambda message, **fields: logged.append(
        (message, fields["extra"]["model"], fields["extra"]["rows"])))
    summary = handler({"model": "rides", "since": naive}, Context())
    [result] = summary["models"]
    assert (result["rows"], result["enough_rows"]) == (50, True)
    assert datetime.fromisoformat(summary["checked_at"]).utcoffset() == timedelta(0)
    written = json.loads(s3.get_object(Bucket=BUCKET, Key="drift/rides/latest.json")["Body"].read())
    assert written["since"] == naive[:23] + "+00:00"  # read as UTC, written with its zone
    assert logged == [("drift", "rides", 50)]
    assert [m["model"] for m in handler("not an object", Context())["models"]] == ["rides"]
