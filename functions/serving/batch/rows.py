"""Rows of a batch file, whatever its format: every row ends up predicted or reported.

A row is one line of a text file (CSV, JSON lines) or one row of a Parquet file. Its id is the
``id`` column or field when the file has one, else its number in the file (from 1, blank lines
not counted). Whatever is wrong with a row makes that row invalid, never the file. Rows are
checked and scored CHUNK_ROWS at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.model.features import RequestError

if TYPE_CHECKING:
    from serving.batch.writer import Writer


CHUNK_ROWS = 5000


ID_FIELD = "id"  # the row ids' column, unless the model names one (id_field)


MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none"})  # a missing cell, in any case


FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
# Where batch files are in the data bucket: dropped (batch/input/[<model>/]), scored (batch/output/),
# and the parts of an execution in progress (batch/work/<execution>/)
INPUT_PREFIX, OUTPUT_PREFIX, WORK_PREFIX = "batch/input/", "batch/output/", "batch/work/"


PARQUET = ".parquet"


BOM = b"\xef\xbb\xbf"


@dataclass
class BatchResult:
    rows: int = 0
    predicted: int = 0
    invalid: int = 0
    row_groups: int = 0  # of a Parquet file: read to their end
    evaluated: tuple | None = None  # a labelled file's (actual values, answers) of the rows predicted


@dataclass
class Row:
    """One line of the input: its id and values, or what is wrong with it."""

    id: Any
    values: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


class UnsupportedFile(ValueError):
    """The file cannot be read as a table at all (its type, or its header)."""


def id_field(predictor, names: Iterable[str] | None = None) -> str:
    """The column that gives a file's row ids: the one that named the rows the model was trained
    on (declared, or found ID-like) when the file has it (``names``: its columns), else ``id``."""
    own = predictor.bundle.id_column
    return own if own is not None and (names is None or own in names) else ID_FIELD


def check_format(name: str) -> None:
    """Refuses a file that is neither CSV nor JSON lines, saying which types are."""
    if not name.endswith(FORMATS):
        raise UnsupportedFile(f"{name}: use {', '.join(FORMATS)} (CSV with a header, JSON lines or Parquet)")


def data_lines(lines: Iterable[bytes], *, at_file_start: bool = True) -> Iterator[bytes]:
    """The non-blank lines; a byte-order mark is dropped from the start of the file only.

    Line ends are left on: the CSV reader and the JSON parser both ignore them.
    """
    lines = iter(lines)
    if at_file_start:
        first = next(lines, None)
        if first is None:
            return iter(())
        lines = itertools.chain([first.removeprefix(BOM)], lines)
    return filter(bytes.strip, lines)  # in C: a blank line strips to nothing


def count_rows(lines: Iterable[bytes], *, at_file_start: bool = True) -> int:
    """How many rows some lines hold (blank lines are not rows): what numbers the next part's rows."""
    return sum(1 for _ in data_lines(lines, at_file_start=at_file_start))


def from_csv_text(record: dict[str, Any], schema: list[dict[str, Any]]) -> dict[str, Any]:
    """CSV cells are text: missing-value words become null, numbers and booleans are parsed."""
    out = dict(record)
    for feature in schema:
        name = feature["name"]
        value = record.get(name)
        if value is None:
            continue
        if value.strip().lower() in MISSING_TEXT:
            out[name] = None
        elif feature["type"] == "numeric":
            with contextlib.suppress(ValueError):  # left as text: validation names the field
                out[name] = float(value)
        elif feature["type"] == "boolean" and value.strip().lower() in ("true", "false", "1", "0"):
            out[name] = value.strip().lower() in ("true", "1")
    return out


def chunks(items: Iterable, size: int) -> Iterator[tuple]:
    return itertools.batched(items, size)


def score_rows(rows: Iterable[Row], writer: Writer, csv_text: bool, chunk_rows: int) -> None:
    schema, target = writer.predictor.schema, writer.target
    for chunk in chunks(rows, chunk_rows):
        kept, X, errors = check_rows(schema, chunk, csv_text)
        actuals = [chunk[i].values.get(target) for i in kept] if target is not None else None
        writer.chunk(len(chunk), [chunk[i].id for i in kept], X, errors, actuals)


def check_rows(schema, rows: list[Row], csv_text: bool) -> tuple[list[int], np.ndarray, list[list]]:
    """Rows → the positions and matrix of the valid ones, and an error line per problem of the others."""
    at, records, problems = [], [], []
    for i, row in enumerate(rows):
        if row.problem is not None:
            problems.append((i, [row.id, "", row.problem]))
        else:
            at.append(i)
            records.append(from_csv_text(row.values, schema.features) if csv_text else row.values)
    try:
        X = schema.rows(records) if records else np.empty((0, schema.width))
        return at, X, [line for _, line in problems]
    except RequestError:
        pass  # some row is invalid: check them one by one
    kept, matrix = [], []
    for i, record in zip(at, records, strict=True):
        try:
            matrix.append(schema.rows([record])[0])
            kept.append(i)
        except RequestError as error:
            problems += [(i, [rows[i].id, p["field"], p["message"]]) for p in error.errors]
    problems.sort(key=lambda problem: problem[0])  # stable: a row's own lines keep their order
    return kept, np.array(matrix).reshape(len(kept), schema.width), [line for _, line in problems]
