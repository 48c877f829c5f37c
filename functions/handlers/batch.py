"""Batch scoring: a file created under batch/input/ in the data bucket is scored into
batch/output/: ``<name>.predictions.csv``, and ``<name>.errors.csv`` for invalid rows.

``batch/input/<file>`` is scored by the default model, ``batch/input/<model>/<file>``
by that model (its outputs go to ``batch/output/<model>/``). Thin on purpose:
the streaming and validation are in ``serving.batch``.
"""

from __future__ import annotations

import csv
import io
import tempfile
import urllib.parse
from pathlib import PurePosixPath

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from serving import batch
from serving.registry import ModelRegistry, UnknownModel
from serving.s3 import S3Reader
from serving.settings import Settings

settings = Settings.from_env()
logger = Logger(service="batch-score")
metrics = Metrics(namespace="TabularServerless", service="batch-score")
INPUT_PREFIX = "batch/input/"
OUTPUT_PREFIX = "batch/output/"
READ_BYTES = 1 << 20  # the input is streamed in chunks of this size (botocore's default is 1 KB)

registry = ModelRegistry(
    S3Reader.from_env, settings.model_bucket, refresh_seconds=settings.refresh_seconds,
    unknown_category=settings.unknown_category, max_models=settings.max_models,
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
    """Score one input file into its outputs; returns the counts, or why the file is not a table."""
    relative = PurePosixPath(key.removeprefix(INPUT_PREFIX))
    name = relative.name
    folder = f"{relative.parent}/" if relative.parent.parts else ""
    stem = f"{OUTPUT_PREFIX}{folder}{name.rsplit('.', 1)[0]}"
    model = relative.parts[0] if folder else settings.default_model
    try:
        champion = registry.champion(model)
    except (ValueError, UnknownModel) as problem:  # a folder that names no model: say so beside the outputs
        return _unreadable(bucket, key, stem, str(problem), {"input": key, "model": model})
    predictor = champion.current()
    if predictor is None:
        raise RuntimeError(f"no champion to score {key} with: {champion.status()['reason']}")
    summary = {"input": key, "model": model, "model_version": predictor.version}
    # spooled to local disk (Lambda's /tmp), so memory stays flat however big the file
    with tempfile.TemporaryFile() as predictions, tempfile.TemporaryFile() as errors:
        predictions_text, errors_text = _text(predictions), _text(errors)
        lines = s3().get_object(Bucket=bucket, Key=key)["Body"].iter_lines(READ_BYTES)
        try:
            result = batch.score(batch.read_rows(lines, name), predictor, predictions_text, errors_text,
                                 csv_text=name.endswith(".csv"))
        except batch.UnsupportedFile as problem:  # not a table at all: say why, beside the outputs
            return _unreadable(bucket, key, stem, str(problem), summary)
        _upload(predictions, bucket, f"{stem}.predictions.csv")
        if result.invalid:
            _upload(errors, bucket, f"{stem}.errors.csv")
    summary.update(rows=result.rows, predicted=result.predicted, invalid=result.invalid)
    logger.info("scored a file", extra=summary)
    metrics.add_metric(name="BatchRows", unit=MetricUnit.Count, value=result.rows)
    metrics.add_metric(name="BatchInvalidRows", unit=MetricUnit.Count, value=result.invalid)
    return summary


def _unreadable(bucket: str, key: str, stem: str, reason: str, summary: dict) -> dict:
    """A file that cannot be scored at all gets an errors file that says why."""
    with tempfile.TemporaryFile() as errors:
        text = _text(errors)  # kept: a text wrapper closes its file when it is collected
        csv.writer(text, lineterminator="\n").writerows([["row_id", "field", "message"], ["", "", reason]])
        _upload(errors, bucket, f"{stem}.errors.csv")
    logger.warning("not scored", extra={"input": key, "reason": reason})
    return {**summary, "unreadable": reason}


def _text(file) -> io.TextIOWrapper:
    return io.TextIOWrapper(file, encoding="utf-8", write_through=True)


def _upload(file, bucket: str, key: str) -> None:
    file.seek(0)
    s3().upload_fileobj(file, bucket, key)


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
