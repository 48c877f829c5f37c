"""What every route answers with: JSON in an API Gateway (REST) proxy response, and the request
headers it reads."""

from __future__ import annotations

import orjson

Response = dict  # an API Gateway proxy response: statusCode, multiValueHeaders, body, isBase64Encoded


def json_response(status: int, body: dict) -> Response:
    """Every answer of the API: JSON, which a browser must not sniff into anything else."""
    headers = {"Content-Type": ["application/json"], "X-Content-Type-Options": ["nosniff"]}
    return {"statusCode": status, "multiValueHeaders": headers, "body": orjson.dumps(body).decode(),
            "isBase64Encoded": False}


def header(event: dict, name: str, usual: str) -> str | None:
    """A request header's value, whatever the case of its name (``name`` in lower case, ``usual``
    as clients mostly spell it: looked up first, as a scan of every header costs more)."""
    headers = event.get("headers") or {}
    value = headers.get(usual)
    if value is not None:
        return value
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
