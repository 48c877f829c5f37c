"""The Lambda Runtime API (version 2018-06-01), served to one execution environment.

In AWS and in LocalStack's Docker executor this API is served by the runtime
interface emulator, a Go binary inside the container. There is no Python
library that serves it, so this module does, with the standard library only:
the function process runs AWS's own runtime client (``awslambdaric``), which
polls ``/invocation/next`` and posts ``/response`` or ``/error`` here.

Only what the runtime client calls is implemented:
  GET  /2018-06-01/runtime/invocation/next
  POST /2018-06-01/runtime/invocation/{request_id}/response
  POST /2018-06-01/runtime/invocation/{request_id}/error
  POST /2018-06-01/runtime/init/error
"""

from __future__ import annotations

import json
import queue
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
_RESULT_PATH = re.compile(rf"^{PREFIX}/invocation/(?P<request_id>[^/]+)/(?P<kind>response|error)$")


@dataclass(frozen=True)
class PendingInvocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str


@dataclass(frozen=True)
class RuntimeResult:
    payload: bytes
    is_error: bool


class RuntimeApiServer:
    """Serves the Runtime API on 127.0.0.1 on a free port until ``stop``."""

    def __init__(self) -> None:
        self._pending: queue.Queue[PendingInvocation | None] = queue.Queue()
        self._results: dict[str, Future[RuntimeResult]] = {}
        self._lock = threading.Lock()
        # set when the runtime first asks for work (its init is done) or reports an init error
        self.init_done = threading.Event()
        self.init_error: bytes | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lambda-runtime-api", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._pending.put(None)  # wakes a runtime blocked in /next
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for future in self._results.values():
                if not future.done():
                    future.cancel()

    def submit(self, invocation: PendingInvocation) -> Future[RuntimeResult]:
        future: Future[RuntimeResult] = Future()
        with self._lock:
            self._results[invocation.request_id] = future
        self._pending.put(invocation)
        return future

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._results.pop(request_id, None)

    def _complete(self, request_id: str, payload: bytes, is_error: bool) -> bool:
        with self._lock:
            future = self._results.pop(request_id, None)
        if future is None or future.done():
            return False
        future.set_result(RuntimeResult(payload=payload, is_error=is_error))
        return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - silence per-request logging
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self._answer(404, b'{"errorType":"NotFound"}')
                api.init_done.set()
                invocation = api._pending.get()
                if invocation is None:  # shutting down
                    api._pending.put(None)
                    return self._answer(410, b'{"errorType":"Shutdown"}')
                self._answer(
                    200,
                    invocation.payload,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                        "Lambda-Runtime-Trace-Id": invocation.trace_id,
                    },
                )

            def do_POST(self):
                body = self._body()
                if self.path == f"{PREFIX}/init/error":
                    api.init_error = body or json.dumps(
                        {"errorType": "Runtime.InitError", "errorMessage": "init failed"}
                    ).encode()
                    api.init_done.set()
                    return self._answer(202, b'{"status":"OK"}')
                match = _RESULT_PATH.match(self.path)
                if not match:
                    return self._answer(404, b'{"errorType":"NotFound"}')
                accepted = api._complete(
                    match["request_id"], body, is_error=match["kind"] == "error"
                )
                if not accepted:
                    return self._answer(400, b'{"errorType":"InvalidRequestID"}')
                return self._answer(202, b'{"status":"OK"}')

        return Handler
