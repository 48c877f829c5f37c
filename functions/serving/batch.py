"""Score a file of rows in bounded memory: every row ends up predicted or explained.

Input: CSV with a header of feature names, or JSON lines of ``{feature: value}``;
an ``id`` column/field, when present, is the row id, else the 1-based row number.
Rows are read and scored CHUNK_ROWS at a time, so memory does not grow with
the file. Output: one predictions CSV (row id, label, one probability column
per class) and, when some rows are invalid, an errors CSV (row id, field,
message). Valid rows are scored even when others in the same chunk are not.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import orjson

from serving.predictor import Predictor
from serving.schema import RequestError

CHUNK_ROWS = 5000
ID_FIELD = "id"


@dataclass
class BatchResult:
    rows: int = 0
    predicted: int = 0
    invalid: int = 0


class UnsupportedFile(ValueError):
    pass


def read_records(stream: IO[bytes], name: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(row id, record) pairs from a CSV or JSON-lines stream, read lazily."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    if name.endswith(".csv"):
        reader = csv.DictReader(text)
        for number, record in enumerate(reader, start=1):
            row_id = record.pop(ID_FIELD, None) or number
            yield row_id, record
    elif name.endswith((".jsonl", ".ndjson")):
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                yield number, {"__error__": f"not valid JSON: {error}"}
                continue
            if not isinstance(record, dict):
                yield number, {"__error__": "each line must be a JSON object"}
                continue
            yield record.pop(ID_FIELD, None) or number, record
    else:
        raise UnsupportedFile(f"{name}: use .csv or .jsonl (JSON lines)")


def _from_csv_text(record: dict[str, Any], schema: list[dict[str, Any]]) -> dict[str, Any]:
    """CSV cells are text: "" is a missing value, numbers and booleans are parsed."""
    out = dict(record)
    for feature in schema:
        name = feature["name"]
        value = record.get(name)
        if not isinstance(value, str):
            continue
        if value == "":
            out[name] = None
        elif feature["type"] == "numeric":
            with contextlib.suppress(ValueError):  # left as text: validation names the field
                out[name] = float(value)
        elif feature["type"] == "boolean" and value.lower() in ("true", "false", "1", "0"):
            out[name] = value.lower() in ("true", "1")
    return out


def _chunks(records: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in records:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score(
    records: Iterable[tuple[Any, dict[str, Any]]],
    predictor: Predictor,
    predictions_out: IO[str],
    errors_out: IO[str],
    csv_text: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> BatchResult:
    schema = predictor.schema
    features = schema.features
    predictions = csv.writer(predictions_out)
    predictions.writerow(output_header(predictor))
    errors = csv.writer(errors_out)
    errors.writerow(["row_id", "field", "message"])
    result = BatchResult()
    for chunk in _chunks(records, chunk_rows):
        ids, valid_rows = [], []
        for row_id, record in chunk:
            result.rows += 1
            if "__error__" in record:
                errors.writerow([row_id, "", record["__error__"]])
                result.invalid += 1
                continue
            if csv_text:
                record = _from_csv_text(record, features)
            ids.append(row_id)
            valid_rows.append(record)
        X, keep = _validate(schema, valid_rows, ids, errors, result)
        if not keep:
            continue
        kept_ids = [ids[i] for i in keep]
        for row_id, row in zip(kept_ids, output_rows(predictor, predictor.predict_matrix(X)), strict=True):
            predictions.writerow([row_id, *row])
        result.predicted += len(keep)
    return result


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


def _validate(schema, rows, ids, errors, result) -> tuple[np.ndarray, list[int]]:
    """The chunk's valid rows as a matrix; invalid rows reported, one line per field."""
    if not rows:
        return np.empty((0, len(schema.features))), []
    try:
        return schema.matrix({"instances": rows}, max_rows=len(rows)), list(range(len(rows)))
    except RequestError:
        pass
    keep, matrix = [], []
    for i, row in enumerate(rows):
        try:
            matrix.append(schema.matrix({"instances": [row]}, max_rows=1)[0])
            keep.append(i)
        except RequestError as error:
            result.invalid += 1
            for problem in error.errors or [{"field": "", "message": error.message}]:
                errors.writerow([ids[i], problem.get("field") or "", problem["message"]])
    return (np.array(matrix) if matrix else np.empty((0, len(schema.features)))), keep
