"""The drift function: wiring only (serving/monitoring/report.py writes the reports).

Runs on a schedule (an EventBridge rule in template.yaml) and on demand (`make drift`, or an
invocation with ``{"model": name, "since": ISO time}``): every model with a champion, or the
one named, over the window since then (else the last DRIFT_WINDOW_HOURS).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger, Metrics
from serving.monitoring import report
from serving.settings import Settings
from serving.store.s3 import S3Reader

logger = Logger(service="drift")
metrics = Metrics(namespace="TabularServerless", service="drift")


def check(settings: Settings, event) -> dict:
    s3 = S3Reader.from_env()
    now = datetime.now(UTC)
    event = event if isinstance(event, dict) else {}
    since = (datetime.fromisoformat(event["since"]) if event.get("since")
             else now - timedelta(hours=settings.drift_window_hours))
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    results = report.check_models(s3, settings.model_bucket, event.get("model"), since, now,
                                  settings.drift_thresholds, metrics)
    for result in results:
        logger.info("drift", extra=result)
    return {"checked_at": now.isoformat(timespec="seconds"), "models": results}


def init(settings: Settings):
    """The function's handler for these settings (what a container runs; tests call it anew)."""

    @logger.inject_lambda_context
    @metrics.log_metrics
    def handle(event, context):
        return check(settings, event)

    return handle


handler = init(Settings.from_env())
