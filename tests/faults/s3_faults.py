"""A mitmproxy addon: an S3 endpoint that misbehaves on a chosen share of requests.

Run by ``tests/faults/proxy.py`` as ``mitmdump --mode reverse:<S3 endpoint> -s s3_faults.py``;
the functions' S3 endpoint (``AWS_ENDPOINT_URL_S3``) points at the proxy. What goes wrong is
set while it runs, with ``PUT /__faults__`` (JSON, answered by the proxy itself):

    {"share": 0.1,                      # of the requests that match, this share gets a fault
     "kinds": ["500", "503", "reset", "stall", "truncate"],   # one picked at random per fault
     "methods": ["GET", "PUT"],         # which requests may fail (all when absent)
     "path": "regex",                   # ... and on which paths (re.search on the path)
     "stall_seconds": 15, "seed": 1}

``GET /__faults__`` answers the setting and what was done: requests seen, faults by kind.

The kinds: ``500`` S3's InternalError and ``503`` its SlowDown (XML error documents, as S3
sends them); ``reset`` closes the client's connection without an answer; ``stall`` holds
the request ``stall_seconds`` (past the client's timeout), then closes; ``truncate`` lets
the request through and sends half of the answer's body under its full Content-Length,
then closes the connection (an answer without a body is let through, and not counted).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading

from mitmproxy import http

CONTROL = "/__faults__"
KINDS = ("500", "503", "reset", "stall", "truncate")
ERRORS = {
    "500": ("InternalError", "We encountered an internal error. Please try again."),
    "503": ("SlowDown", "Please reduce your request rate."),
}


class S3Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.setting: dict = {"share": 0.0, "kinds": list(KINDS)}
        self.random = random.Random(0)
        self.seen = 0
        self.done: dict[str, int] = {}

    def set_faults(self, setting: dict) -> None:
        kinds = setting.get("kinds", list(KINDS))
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not 0 <= float(setting.get("share", 0)) <= 1:
            raise ValueError(f"share must be in [0, 1] and kinds among {KINDS}; not {unknown}")
        with self.lock:
            self.setting = {"share": float(setting.get("share", 0)), "kinds": kinds,
                            "methods": setting.get("methods"), "path": setting.get("path"),
                            "stall_seconds": float(setting.get("stall_seconds", 15))}
            self.random = random.Random(setting.get("seed", 0))
            self.seen, self.done = 0, {}

    def report(self) -> dict:
        with self.lock:
            return {"setting": self.setting, "requests": self.seen, "faults": dict(self.done)}

    def pick(self, flow: http.HTTPFlow) -> str | None:
        """The fault this request gets, if any."""
        with self.lock:
            setting = self.setting
            methods, path = setting.get("methods"), setting.get("path")
            if methods and flow.request.method not in methods:
                return None
            if path and not re.search(path, flow.request.path):
                return None
            self.seen += 1
            if self.random.random() >= setting["share"]:
                return None
            kind = self.random.choice(setting["kinds"])
            if kind != "truncate":  # (counted when there is a body to cut: see response)
                self.done[kind] = self.done.get(kind, 0) + 1
            return kind

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.startswith(CONTROL):
            self.control(flow)
            return
        kind = self.pick(flow)
        flow.metadata["fault"] = kind
        if kind in ERRORS:
            code, message = ERRORS[kind]
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{message}</Message></Error>").encode()
            flow.response = http.Response.make(int(kind), body, {"Content-Type": "application/xml"})
        elif kind == "reset":
            flow.kill()
        elif kind == "stall":
            await asyncio.sleep(self.setting["stall_seconds"])
            flow.kill()

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("fault") != "truncate" or flow.response is None:
            return
        body = flow.response.raw_content or b""
        if not body:  # a 304, a PUT's answer: nothing to cut
            return
        with self.lock:
            self.done["truncate"] = self.done.get("truncate", 0) + 1
        # raw_content does not touch Content-Length: the client is promised the whole body
        flow.response.raw_content = body[: len(body) // 2]
        flow.response.headers["connection"] = "close"

    def control(self, flow: http.HTTPFlow) -> None:
        status = 200
        if flow.request.method == "PUT":
            try:
                self.set_faults(json.loads(flow.request.content or b"{}"))
            except (ValueError, TypeError) as error:
                status = 400
                answer = {"error": str(error)}
        if status == 200:
            answer = self.report()
        flow.response = http.Response.make(status, json.dumps(answer).encode(),
                                           {"Content-Type": "application/json"})


addons = [S3Faults()]
