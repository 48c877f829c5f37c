"""Batch scoring: a file created under batch/input/ in the data bucket is scored
into batch/output/<name>.predictions.csv (and <name>.errors.csv for invalid rows).

Thin on purpose: the streaming and validation are in ``serving.batch``.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from pathlib import PurePosixPath

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from serving import batch
from serving.champion import ChampionCache
from serving.s3 import S3Reader
from serving.settings import Settings

settings = Settings.from_env()
logger = Logger(service="batch-score")
metrics = Metrics(namespace="TabularServerless", service="batch-score")
INPUT_PREFIX = "batch/input/"
OUTPUT_PREFIX = "batch/output/"

champion = ChampionCache(
    S3Reader.from_env, bucket=settings.model_bucket, name=settings.model_name,
    refresh_seconds=settings.refresh_seconds, unknown_category=settings.unknown_category,
)
_s3 = None


def s3():
    """boto3 here (unlike the API): streaming reads and multipart uploads of big files."""
    global _s3
    if _s3 is None:
        import boto3

        _s3 = boto3.client("s3")
    return _s3


def score_object(bucket: str, key: str) -> dict:
    name = PurePosixPath(key).name
    stem = name.rsplit(".", 1)[0]
    predictions_key = f"{OUTPUT_PREFIX}{stem}.predictions.csv"
    errors_key = f"{OUTPUT_PREFIX}{stem}.errors.csv"
    predictor = champion.current()
    if predictor is None:
        raise RuntimeError(f"no champion to score {key} with: {champion.status()['reason']}")
    body = s3().get_object(Bucket=bucket, Key=key)["Body"]
    tmp = os.environ.get("TMPDIR", tempfile.gettempdir())
    with tempfile.NamedTemporaryFile("w+", newline="", suffix=".csv", dir=tmp) as predictions, \
            tempfile.NamedTemporaryFile("w+", newline="", suffix=".csv", dir=tmp) as errors:
        unsupported = False
        try:
            records = batch.read_records(body, name)
            result = batch.score(records, predictor, predictions, errors,
                                 csv_text=name.endswith(".csv"))
        except batch.UnsupportedFile as problem:
            errors.write(f"row_id,field,message\n,,{problem}\n")
            result, unsupported = batch.BatchResult(), True
        predictions.flush()
        errors.flush()
        if not unsupported:
            s3().upload_file(predictions.name, bucket, predictions_key)
        if result.invalid or unsupported:
            s3().upload_file(errors.name, bucket, errors_key)
    summary = {"input": key, "rows": result.rows, "predicted": result.predicted,
               "invalid": result.invalid, "model_version": predictor.version}
    logger.info("scored a file", extra=summary)
    metrics.add_metric(name="BatchRows", unit=MetricUnit.Count, value=result.rows)
    metrics.add_metric(name="BatchInvalidRows", unit=MetricUnit.Count, value=result.invalid)
    return summary


@logger.inject_lambda_context
@metrics.log_metrics
@event_source(data_class=S3Event)
def handler(event: S3Event, context):
    results = []
    for record in event.records:
        key = urllib.parse.unquote_plus(record.s3.get_object.key)
        if not key.startswith(INPUT_PREFIX):
            logger.warning("ignored an object outside batch/input/", extra={"key": key})
            continue
        results.append(score_object(record.s3.bucket.name, key))
    return {"scored": results}
