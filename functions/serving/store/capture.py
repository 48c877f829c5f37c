"""A sample of what the API was asked and answered, kept in S3 for drift monitoring.

The predict function hands each answered request to ``Capture.add``; a sampled request's rows (as
the model read them: its columns, a date's parts, categories as codes, missing as null) and the
answer are appended to an in-memory buffer, which is written to S3 as one JSON-lines object when it
holds ``flush_rows`` rows or its oldest row is ``flush_seconds`` old, at the end of the request
that crosses the line:

    capture/<model>/date=YYYY-MM-DD/<HHMMSS>-<container>-<n>.jsonl
    {"time": "...", "version": 3, "row": [...], "prediction": 0.93}

What can be lost, and why that is acceptable: rows still in the buffer when Lambda retires a
container (at most ``flush_rows`` rows, or ``flush_seconds`` of traffic, per container), and a
buffer whose write failed (counted in the log, not kept: a request must not wait on it; the
writes of one flush, tries included, take at most ``WRITE_SECONDS``). Drift
is a statistic over thousands of rows; a lost buffer makes the window smaller, not wrong. The
buffer is never written on the request's critical path except by the request that fills it.
"""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from datetime import UTC, datetime
from time import monotonic
from typing import Any

import numpy as np
import orjson

PREFIX = "capture/"
WRITE_SECONDS = 1.0  # a flush's S3 budget: when S3 is slow or down the rows are dropped, not waited on


def window_prefix(model: str, day: str) -> str:
    """Where a model's captured rows of one day (YYYY-MM-DD) are."""
    return f"{PREFIX}{model}/date={day}/"


class Capture:
    def __init__(self, s3_factory, bucket: str, rate: float, flush_rows: int = 1000,
                 flush_seconds: float = 60.0, on_error=None) -> None:
        self._s3_factory = s3_factory
        self._s3 = None
        self.bucket = bucket
        self.rate = rate
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.on_error = on_error
        self.container = uuid.uuid4().hex[:8]
        self._written = 0
        self._buffers: dict[str, list[str]] = {}
        self._since: float | None = None
        self._rows = 0
        self._random = random.Random()  # noqa: S311 - sampling, not security  # nosec B311

    def add(self, model: str, version: int, X: np.ndarray, predictions: np.ndarray) -> None:
        """Keep this request's rows (with probability ``rate``), and write the buffer when it is due."""
        if self.rate <= 0 or (self.rate < 1 and self._random.random() >= self.rate):
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        lines = self._buffers.setdefault(model, [])
        if np.isinf(X).any() or not np.isfinite(predictions).all():  # orjson would write them as null
            # reported, not raised: capture never fails a prediction
            if self.on_error:
                self.on_error(model, len(X), ValueError(
                    "infinite values (or a NaN prediction) are not JSON compliant: not captured"))
            return
        for row, prediction in zip(X.tolist(), predictions.tolist(), strict=True):
            # orjson writes a missing value (NaN) as null, compactly: ~5x faster than json.dumps here
            record = {"time": now, "version": version, "row": row, "prediction": prediction}
            lines.append(orjson.dumps(record))
        self._rows += len(X)
        if self._since is None:
            self._since = monotonic()
        if self._rows >= self.flush_rows or monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every model's buffered rows (one object each) and empty the buffer."""
        buffers, self._buffers, self._rows, self._since = self._buffers, {}, 0, None
        now = datetime.now(UTC)
        with contextlib.ExitStack() as budget:
            budgeted = False
            for model, lines in buffers.items():
                self._written += 1
                key = (f"{window_prefix(model, now.strftime('%Y-%m-%d'))}"
                       f"{now.strftime('%H%M%S')}-{self.container}-{self._written:06d}.jsonl")
                try:
                    if self._s3 is None:
                        self._s3 = self._s3_factory()
                    if not budgeted:  # the first write starts the flush's budget
                        budget.enter_context(self._s3.within(WRITE_SECONDS))
                        budgeted = True
                    self._s3.put_object(Bucket=self.bucket, Key=key, Body=b"\n".join(lines) + b"\n",
                                        ContentType="application/x-ndjson")
                except Exception as error:  # noqa: BLE001 - a lost buffer must never fail a prediction
                    if self.on_error:
                        self.on_error(model, len(lines), error)

    @property
    def buffered_rows(self) -> int:
        return self._rows


def read_window(s3, bucket: str, model: str, days: list[str]) -> list[dict[str, Any]]:
    """Every captured record of a model on the given days (YYYY-MM-DD), read with the functions'
    S3 reader (which leaves a ContinuationToken of None out of its request)."""
    records = []
    for day in days:
        token = None
        while True:
            page = s3.list_objects_v2(Bucket=bucket, Prefix=window_prefix(model, day),
                                      ContinuationToken=token)
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                records += [json.loads(line) for line in body.splitlines() if line.strip()]
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
    return records
