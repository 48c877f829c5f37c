"""Fakes the unit tests share: a Lambda context, API Gateway events as `sam local generate-event`
makes them, the metrics a function printed, a clock that moves when told."""

import base64
import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@dataclass
class Context:
    function_name: str = "PredictFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:PredictFunction"
    aws_request_id: str = "req-1"


def event(name: str, body=None, headers=None, path=None, raw_body=None, base64_encoded=True) -> dict:
    e = json.loads((EVENTS / f"{name}.json").read_text())
    if body is not None:
        raw = body if isinstance(body, str) else json.dumps(body)
        e["body"] = base64.b64encode(raw.encode()).decode() if base64_encoded else raw
        e["isBase64Encoded"] = base64_encoded
    if raw_body is not None:
        e["body"] = base64.b64encode(raw_body).decode()
        e["isBase64Encoded"] = True
    for key, value in (headers or {}).items():  # API Gateway sends both forms
        e["headers"][key] = value
        e["multiValueHeaders"][key] = [value]
    if path:
        e["path"] = e["requestContext"]["path"] = path
        e["resource"] = e["requestContext"]["resourcePath"] = path
        if path.startswith("/models/"):
            name = path.split("/")[2]
            e["pathParameters"] = {"name": name}
            e["resource"] = e["requestContext"]["resourcePath"] = path.replace(f"/{name}", "/{name}", 1)
    return e


def metrics_of(output: str) -> dict:
    """The EMF metrics (name → values) the handler printed; units and dimensions under "_units"/"_dims"."""
    found: dict = {"_units": {}, "_dims": {}}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            directive = document["_aws"]["CloudWatchMetrics"][0]
            for definition in directive["Metrics"]:
                value = document[definition["Name"]]
                found[definition["Name"]] = value if isinstance(value, list) else [value]
                found["_units"][definition["Name"]] = definition["Unit"]
            for dimension in directive["Dimensions"][0]:
                found["_dims"][dimension] = document[dimension]
    return found


class Clock:
    """A monotonic clock that stands still until a test moves ``now``."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
