"""Drift detection: the rows a model was asked lately against what it was trained on.

Runs on a schedule (an EventBridge rule in template.yaml) and on demand (`make drift`, or an
invocation with ``{"model": name, "since": ISO time}``). For each model with a champion (or the
one named), it reads the champion's reference (``reference.json`` in its bundle) and the rows the
API captured for that version in the window (``serving.capture``), compares them
(``serving.drift``), and:
* writes the report to ``drift/<model>/<time>/report.json`` in the model bucket, with a picture
  (SVG: reference vs current shares per bin) for each drifted feature, and ``drift/<model>/latest.json``;
* publishes per feature PSI (``FeaturePSI``, dimensions Model and Feature) and, per model, the
  number of drifted features (``DriftedFeatures``) as CloudWatch metrics (EMF); an alarm in the
  template fires when any model has one;
* returns a summary (what `make drift` prints).
Thin on purpose: the statistics are in ``serving.drift``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from html import escape

import numpy as np
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from serving.model import bundle
from serving.monitoring import drift
from serving.store import bundles, capture
from serving.store.s3 import S3Reader

logger = Logger(service="drift")
metrics = Metrics(namespace="TabularServerless", service="drift")
BUCKET = os.environ.get("MODEL_BUCKET", "")
REPORTS = "drift/"


def thresholds() -> dict[str, float]:
    """The drift thresholds from the environment (the template's parameters)."""
    env = os.environ
    return {"psi": float(env.get("DRIFT_PSI", drift.DEFAULT_THRESHOLDS["psi"])),
            "p_value": float(env.get("DRIFT_P_VALUE", drift.DEFAULT_THRESHOLDS["p_value"])),
            "min_rows": int(env.get("DRIFT_MIN_ROWS", drift.DEFAULT_THRESHOLDS["min_rows"]))}


def check_model(s3, bucket: str, name: str, since: datetime, now: datetime) -> dict:
    """One model's drift report, written to S3; its summary."""
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
    report = drift.compare(reference, rows, answers, thresholds())
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")  # a report never replaces another
    folder = f"{REPORTS}{name}/{stamp}/"
    pictures = {}
    for feature in report["drifted_features"]:
        key = f"{folder}{feature.replace('/', '_')}.svg"
        svg = picture(feature, report["features"][feature])
        s3.put_object(Bucket=bucket, Key=key, Body=svg.encode(), ContentType="image/svg+xml")
        pictures[feature] = key
    until = now.isoformat(timespec="seconds")
    document = {"model": name, "version": version, "since": cutoff, "until": until, **report,
                "pictures": pictures}
    body = json.dumps(document, indent=1, allow_nan=False).encode()
    s3.put_object(Bucket=bucket, Key=f"{folder}report.json", Body=body, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=f"{REPORTS}{name}/latest.json", Body=body,
                  ContentType="application/json")
    _publish_metrics(name, report)
    return {"model": name, "version": version, "status": "ok", "rows": report["rows"],
            "enough_rows": report["enough_rows"], "drifted_features": report["drifted_features"],
            "prediction_drifted": report["prediction_drifted"], "report": f"s3://{bucket}/{folder}report.json",
            "psi": {f: round(d["psi"], 4) for f, d in report["features"].items()},
            "prediction_psi": round(report["prediction"]["psi"], 4)}


def _publish_metrics(name: str, report: dict) -> None:
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


def picture(feature: str, result: dict) -> str:
    """Reference vs current shares per bin as an SVG bar chart (no plotting library in a function)."""
    bins = result["bins"]
    top = max([*bins["reference"], *bins["current"], 1e-9])
    bar, gap, height = 14, 10, 160
    width = 60 + len(bins["labels"]) * (2 * bar + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(width, 520)}" height="{height + 110}" '
             f'font-family="sans-serif" font-size="10">',
             f'<text x="10" y="14" font-size="12">{escape(feature)}: PSI {result["psi"]:.3f}, '
             f'{escape(result["test"])} p = {result["p_value"]:.2g} (grey: training, blue: now)</text>']
    for i, (label, r, c) in enumerate(zip(bins["labels"], bins["reference"], bins["current"], strict=True)):
        x = 50 + i * (2 * bar + gap)
        for offset, share, colour in ((0, r, "#9aa7b4"), (bar, c, "#1f5f9e")):
            h = share / top * height
            parts.append(f'<rect x="{x + offset}" y="{30 + height - h:.1f}" width="{bar}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{escape(str(label))}: {share:.1%}</title></rect>')
        parts.append(f'<text x="{x}" y="{height + 45}" transform="rotate(45 {x} {height + 45})">'
                     f'{escape(str(label))}</text>')
    parts.append("</svg>")
    return "".join(parts)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    s3 = S3Reader.from_env()
    now = datetime.now(UTC)
    event = event if isinstance(event, dict) else {}
    since = (datetime.fromisoformat(event["since"]) if event.get("since")
             else now - timedelta(hours=float(os.environ.get("DRIFT_WINDOW_HOURS", "24"))))
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    names = [event["model"]] if event.get("model") else [m["name"] for m in bundles.list_champions(s3, BUCKET)]
    results = []
    for name in names:
        bundle.check_name(name)
        result = check_model(s3, BUCKET, name, since, now)
        logger.info("drift", extra=result)
        results.append(result)
    return {"checked_at": now.isoformat(timespec="seconds"), "models": results}
