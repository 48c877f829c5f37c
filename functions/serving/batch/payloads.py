"""The payloads the batch-scoring state machine passes between its steps (serving.batch.steps).

Step Functions carries them as JSON; these types name their keys. ``Plan`` is the
output of ``plan`` that every later state receives as ``plan``; ``Part`` is one
entry of ``parts.json``, the Map states' items; ``PartRecord`` is what ``score``
writes last for a part, and what ``assemble`` accounts for.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Part(TypedDict):
    index: int
    start: int  # a byte offset (CSV, JSON lines) or a row group (Parquet), inclusive
    end: int  # exclusive
    first_row: int  # the row number of the part's first row in the whole file, from 1
    counted: NotRequired[int]  # its rows, when they were counted before scoring


class Plan(TypedDict):
    done: bool  # True: nothing to score (the file got an errors file saying why)
    bucket: str
    key: str  # the input object
    name: str  # the file's name
    model: str
    stem: str  # the outputs' common prefix: <stem>.predictions.csv, .errors.csv, .manifest.json
    size: int  # what the parts must cover, in `unit`
    bytes: int  # the object's size
    header: list[str] | None  # a CSV file's header
    unit: str  # "bytes" or "row groups"
    model_version: int  # the champion's version, pinned for every part
    manifest_sha256: str | None
    work: str  # the execution's work prefix
    parts: int
    count: bool  # whether the parts' rows are counted and numbered before scoring
    concurrency: int  # parts scored at once
    fault: dict[str, Any] | None  # asked for by a test: {"part": i, "attempts": n, "hang_seconds": s}
    started: float
    labelled: bool  # the file carries the model's target: actual values are written and evaluated


class Timings(TypedDict):
    model_s: float  # loading the model (once per container)
    read_wait_s: float  # the scoring's waits for the download
    upload_s: float  # the uploads of the part's outputs


class PartRecord(TypedDict):
    index: int
    start: int
    end: int
    bytes_read: int  # in the plan's unit
    first_row: int
    rows: int
    predicted: int
    invalid: int
    model_version: int
    attempt: int
    predictions_bytes: int
    errors_bytes: int
    output_header: list[str]
    seconds: float
    peak_rss_mb: float
    timings: Timings
    finished: float
    labelled: NotRequired[int]  # a labelled file's rows predicted, kept with their answers to evaluate
    unknown_labels: NotRequired[list[str]]  # some labels the model does not know
    unknown_label_rows: NotRequired[int]


class Totals(TypedDict):
    rows: int
    predicted: int
    invalid: int
