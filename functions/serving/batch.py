"""Score a file of rows in bounded memory: every row ends up predicted or reported.

Input: CSV with a header of feature names, or JSON lines of ``{feature: value}``;
an ``id`` column/field, when present, is the row id, else the row's number
(1-based, blank lines not counted). A file is read line by line, so a row is one
line: a quoted CSV value cannot hold a line break. Whatever is wrong with a line
(bytes that are not UTF-8, broken quoting, too few or too many values, JSON that
does not parse) makes that row invalid, never the file. Files as spreadsheets
write them are read as meant: a byte-order mark, CRLF line ends, quoted header
names, padded numbers, and empty, ``nan``, ``NA`` or ``null`` cells as missing
values.

Rows are read and scored CHUNK_ROWS at a time, so memory does not grow with the
file. Output: one predictions CSV (row id, then label and one probability column
per class, or the predicted value) and an errors CSV (row id, field, message).
"""

from __future__ import annotations

import contextlib
import csv
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import orjson

from serving.predictor import Predictor
from serving.schema import RequestError

CHUNK_ROWS = 5000
ID_FIELD = "id"
MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none"})  # a missing cell, in any case
FORMATS = (".csv", ".jsonl", ".ndjson")


@dataclass
class BatchResult:
    rows: int = 0
    predicted: int = 0
    invalid: int = 0


@dataclass
class Row:
    """One line of the input: its id and values, or what is wrong with it."""

    id: Any
    values: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


class UnsupportedFile(ValueError):
    """The file cannot be read as a table at all (its type, or its header)."""


def read_rows(lines: Iterable[bytes], name: str) -> Iterator[Row]:
    """The rows of a CSV or JSON-lines file given as its lines of bytes, read lazily."""
    if name.endswith(".csv"):
        return _csv_rows(lines)
    if name.endswith((".jsonl", ".ndjson")):
        return _json_rows(lines)
    raise UnsupportedFile(f"{name}: use {', '.join(FORMATS)} (CSV with a header, or JSON lines)")


def _lines(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The non-blank lines; a byte-order mark is dropped from the start of the file only.

    Line ends are left on: the CSV reader and the JSON parser both ignore them.
    """
    lines = iter(lines)
    first = next(lines, b"").removeprefix(b"\xef\xbb\xbf")
    for line in itertools.chain([first], lines):
        if line.strip():
            yield line


def _csv_rows(source: Iterable[bytes]) -> Iterator[Row]:
    lines = _lines(source)
    header_line = next(lines, None)
    if header_line is None:
        raise UnsupportedFile("the file is empty: a CSV needs a header of feature names")
    try:
        header = [name.strip() for name in next(csv.reader([header_line.decode()], strict=True))]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UnsupportedFile(f"the header cannot be read: {error}") from None
    if len(set(header)) != len(header):
        raise UnsupportedFile("the header repeats a column name")
    id_column = header.index(ID_FIELD) if ID_FIELD in header else None
    for number, line in enumerate(lines, start=1):
        try:
            values = next(csv.reader([line.decode()], strict=True))
        except UnicodeDecodeError:
            yield Row(number, problem="the line is not valid UTF-8")
            continue
        except csv.Error as error:
            yield Row(number, problem=f"the line is not valid CSV: {error}")
            continue
        given_id = values[id_column].strip() if id_column is not None and id_column < len(values) else ""
        row_id = given_id or number
        if len(values) != len(header):
            yield Row(row_id, problem=f"{len(values)} values, but the header has {len(header)} columns")
            continue
        record = dict(zip(header, values, strict=True))
        record.pop(ID_FIELD, None)
        yield Row(row_id, record)


def _json_rows(source: Iterable[bytes]) -> Iterator[Row]:
    for number, line in enumerate(_lines(source), start=1):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield Row(number, problem=f"not valid JSON: {error}")
            continue
        if not isinstance(record, dict):
            yield Row(number, problem="each line must be a JSON object")
            continue
        yield Row(record.pop(ID_FIELD, None) or number, record)


def _from_csv_text(record: dict[str, Any], schema: list[dict[str, Any]]) -> dict[str, Any]:
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


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def output_header(predictor: Predictor) -> list[str]:
    """row_id, then the label and a probability per class, or the predicted value."""
    if predictor.task == "regression":
        return ["row_id", "prediction"]
    return ["row_id", "label", *[f"probability_{c}" for c in predictor.classes]]


def output_rows(predictor: Predictor, output: np.ndarray) -> list[list]:
    if predictor.task == "regression":
        return output.tolist()
    labels = [str(c) for c in predictor.classes]
    return [[labels[k], *row] for k, row in zip(output.argmax(axis=1).tolist(), output.tolist(), strict=True)]


def score(
    rows: Iterable[Row],
    predictor: Predictor,
    predictions_out: IO[str],
    errors_out: IO[str],
    csv_text: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> BatchResult:
    schema = predictor.schema
    predictions = csv.writer(predictions_out, lineterminator="\n")
    predictions.writerow(output_header(predictor))
    errors = csv.writer(errors_out, lineterminator="\n")
    errors.writerow(["row_id", "field", "message"])
    result = BatchResult()
    for chunk in _chunks(rows, chunk_rows):
        result.rows += len(chunk)
        ids, records = [], []
        for row in chunk:
            if row.problem is not None:
                errors.writerow([row.id, "", row.problem])
                result.invalid += 1
            else:
                ids.append(row.id)
                records.append(_from_csv_text(row.values, schema.features) if csv_text else row.values)
        if not records:
            continue
        X, keep = _validate(schema, records, ids, errors)
        result.invalid += len(records) - len(keep)
        if keep:
            answers = output_rows(predictor, predictor.predict_matrix(X))
            for i, answer in zip(keep, answers, strict=True):
                predictions.writerow([ids[i], *answer])
            result.predicted += len(keep)
    return result


def _validate(schema, records, ids, errors) -> tuple[np.ndarray, list[int]]:
    """The chunk's valid rows as a matrix and their positions; invalid rows reported, a line per problem."""
    try:
        return schema.rows(records), list(range(len(records)))
    except RequestError:
        pass  # some row is invalid: check them one by one
    keep, matrix = [], []
    for i, record in enumerate(records):
        try:
            matrix.append(schema.rows([record])[0])
            keep.append(i)
        except RequestError as error:
            for problem in error.errors:
                errors.writerow([ids[i], problem["field"], problem["message"]])
    return np.array(matrix), keep
