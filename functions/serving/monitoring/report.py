"""A model's drift report: the rows it was asked lately against what it was trained on.

For a model's champion, reads the reference (``reference.json`` in its bundle) and the rows
the API captured for that version in the window (``serving.store.capture``), compares them
(``serving.monitoring.drift``), and:
* writes the report to ``drift/<model>/<time>/report.json`` in the model bucket, with a picture
  (``serving.monitoring.pictures``) for each drifted feature, and ``drift/<model>/latest.json``;
* publishes per feature PSI (``FeaturePSI``, dimensions Model and Feature) and, per model, the
  number of drifted features (``DriftedFeatures``) as CloudWatch metrics (EMF); an alarm in the
  template fires when any model has one;
* returns a summary (what `make drift` prints).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from serving.model import bundle
from serving.monitoring import drift, pictures
from serving.store import bundles, capture
from serving.store.s3 import error_status

REPORTS = "drift/"


def latest(s3, bucket: str, name: str) -> dict | None:
    """The model's latest drift report, its pictures inlined (SVG text by feature); None before the
    first check. What ``GET /models/{name}/drift`` answers."""
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{REPORTS}{name}/latest.json")["Body"].read()
    except Exception as error:
        if error_status(error) == 404:
            return None
        raise
    document = json.loads(body)
    document["pictures"] = {
        feature: s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for feature, key in (document.get("pictures") or {}).items()
    }
    return document


def check_models(s3, bucket: str, name: str | None, since: datetime, now: datetime,
                 thresholds: dict[str, float], metrics) -> list[dict]:
    """The reports of the model named, or of every model with a champion; their summaries."""
    names = [bundle.check_name(name)] if name else [m["name"] for m in bundles.list_champions(s3, bucket)]
    return [check_model(s3, bucket, each, since, now, thresholds, metrics) for each in names]


def check_model(s3, bucket: str, name: str, since: datetime, now: datetime, thresholds: dict[str, float],
                metrics) -> dict:
    """One model's drift report, written to S3 with its pictures and published as metrics; its summary."""
    champion = bundles.read_champion(s3, bucket, name)
    if champion is None:
        return {"model": name, "status": "no_champion"}
    version = int(champion["version"])
    manifest = bundles.read_manifest(s3, bucket, name, version, champion.get("manifest_sha256"))
    if drift.REFERENCE_FILE not in manifest.get("files", {}):
        return {"model": name, "version": version, "status": "no_reference",
                "reason": "this version was published without a reference profile"}
    reference = json.loads(bundles.read_file(s3, bucket, manifest, drift.REFERENCE_FILE))
    days, day = [], since.date()
    while day <= now.date():
        days.append(day.isoformat())
        day += timedelta(days=1)
    cutoff = since.isoformat(timespec="milliseconds")
    records = [r for r in capture.read_window(s3, bucket, name, days)
               if r["version"] == version and r["time"] >= cutoff]
    width = len(reference["columns"])
    rows = np.array([[np.nan if v is None else v for v in r["row"]] for r in records], np.float64)
    rows = rows.reshape(-1, width)
    answers = np.array([r["prediction"] for r in records], np.float64)
    report = drift.compare(reference, rows, answers, thresholds)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")  # a report never replaces another
    folder = f"{REPORTS}{name}/{stamp}/"
    drawn = {}
    for feature in report["drifted_features"]:
        key = f"{folder}{feature.replace('/', '_')}.svg"
        svg = pictures.picture(feature, report["features"][feature])
        s3.put_object(Bucket=bucket, Key=key, Body=svg.encode(), ContentType="image/svg+xml")
        drawn[feature] = key
    until = now.isoformat(timespec="seconds")
    document = {"model": name, "version": version, "since": cutoff, "until": until, **report,
                "pictures": drawn}
    body = json.dumps(document, indent=1, allow_nan=False).encode()
    s3.put_object(Bucket=bucket, Key=f"{folder}report.json", Body=body, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=f"{REPORTS}{name}/latest.json", Body=body,
                  ContentType="application/json")
    _publish_metrics(name, report, metrics)
    return {"model": name, "version": version, "status": "ok", "rows": report["rows"],
            "enough_rows": report["enough_rows"], "drifted_features": report["drifted_features"],
            "prediction_drifted": report["prediction_drifted"], "report": f"s3://{bucket}/{folder}report.json",
            "psi": {f: round(d["psi"], 4) for f, d in report["features"].items()},
            "prediction_psi": round(report["prediction"]["psi"], 4)}


def _publish_metrics(name: str, report: dict, metrics) -> None:
    # a window too small to judge publishes no PSI: a graph of noise would be read as drift
    for feature, result in (report["features"].items() if report["enough_rows"] else ()):
        with single_metric(name="FeaturePSI", unit=MetricUnit.NoUnit, value=result["psi"],
                           namespace="TabularServerless") as metric:
            metric.add_dimension(name="Model", value=name)
            metric.add_dimension(name="Feature", value=feature)
    with single_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(report["drifted_features"]),
                       namespace="TabularServerless") as metric:
        metric.add_dimension(name="Model", value=name)
    # without the model's name too: one alarm in the template covers every model
    metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(report["drifted_features"]))
