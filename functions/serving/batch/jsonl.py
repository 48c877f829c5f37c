"""JSON lines files: one ``{feature: value}`` object per line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from serving.batch.rows import ID_FIELD, Row


def json_rows(lines: Iterable[bytes], first_row: int) -> Iterator[Row]:
    for number, line in enumerate(lines, start=first_row):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield Row(number, problem=f"not valid JSON: {error}")
            continue
        if not isinstance(record, dict):
            yield Row(number, problem="each line must be a JSON object")
            continue
        yield Row(record.pop(ID_FIELD, None) or number, record)
