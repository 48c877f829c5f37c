"""JSON lines files: one ``{feature: value}`` object per line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from serving.batch.rows import ID_FIELD, Row


def json_rows(lines: Iterable[bytes], first_row: int, id_name: str = ID_FIELD) -> Iterator[Row]:
    for number, line in enumerate(lines, start=first_row):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield Row(number, problem=f"not valid JSON: {error}")
            continue
        if not isinstance(record, dict):
            yield Row(number, problem="each line must be a JSON object")
            continue
        given = record.pop(id_name, None) if id_name in record else record.pop(ID_FIELD, None)
        yield Row(given or number, record)


def has_field(line: bytes, name: str) -> bool:
    """Whether a line is a JSON object with the field (a line that is neither says no)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and name in record
