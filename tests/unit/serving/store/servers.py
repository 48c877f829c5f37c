"""Stand-ins for S3 over HTTP that the reader's tests script: each request written down, each answer given."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder(BaseHTTPRequestHandler):
    """A stand-in for S3 that writes down each request and answers what the test scripted."""

    answers: list = []
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.answer()

    def answer(self, **noted):
        """Write the request down (before answering), then send the next scripted answer."""
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "method": self.command, "client_port": self.client_address[1], **noted})
        status, headers, body = self.answers.pop(0)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        cut = headers.pop("X-Cut-At", None)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut is not None:  # the whole length promised, part of the body sent, the connection closed
            self.wfile.write(body[:cut])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def local_server(recorder):
    """A local server answering with ``recorder`` (its script and notes emptied): (endpoint, recorder)."""
    recorder.answers, recorder.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", recorder
    server.shutdown()
    server.server_close()


class KeepAlive(Recorder):
    """HTTP/1.1: the connection stays open between requests, unless the script says to drop it."""

    protocol_version = "HTTP/1.1"
    drop_after: set = set()

    def do_GET(self):  # noqa: N802 - http.server's name
        super().do_GET()  # (what it writes down, the client's port too, is written before it answers)
        if len(self.seen) in self.drop_after:  # closed without saying so, as an idle server does
            self.close_connection = True
