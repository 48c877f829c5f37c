"""The S3 fault injector the integration tests put between the functions and S3.

``FaultProxy(upstream)`` runs mitmproxy's ``mitmdump`` in reverse-proxy mode on a free
loopback port with the ``s3_faults`` addon; a function whose ``AWS_ENDPOINT_URL_S3`` is
``proxy.endpoint`` reaches S3 through it (boto3 and the serving reader both read that
variable). ``faults(...)`` sets what goes wrong, ``report()`` says what did.

mitmproxy gets a virtual environment of its own (.local/tools/mitmproxy): its pins are
not the project's.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from infra import local_cloud

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".local" / "tools" / "mitmproxy"
MITMPROXY = "mitmproxy==12.3.1"
ADDON = Path(__file__).with_name("s3_faults.py")


def install() -> Path:
    mitmdump = VENV / "bin" / "mitmdump"
    stamp = VENV / ".installed"
    if mitmdump.exists() and stamp.exists() and stamp.read_text() == MITMPROXY:
        return mitmdump
    local_cloud.run(local_cloud.uv(), "venv", "--quiet", "--allow-existing", "--python", "3.12", str(VENV))
    local_cloud.run(local_cloud.uv(), "pip", "install", "--quiet", "--python", str(VENV / "bin" / "python"),
                    MITMPROXY)
    stamp.write_text(MITMPROXY)
    return mitmdump


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FaultProxy:
    def __init__(self, upstream: str, log: Path) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> FaultProxy:
        mitmdump = install()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                [str(mitmdump), "--mode", f"reverse:{self.upstream}", "--listen-host", "127.0.0.1",
                 "--listen-port", str(self.port), "-s", str(ADDON), "--set", "keep_host_header=true",
                 "--set", "flow_detail=0", "--set", "connection_strategy=lazy"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.report()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mitmdump did not start; its log: {self.log}") from None
                time.sleep(0.2)

    def __exit__(self, *_) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def _call(self, method: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(  # noqa: S310 - the proxy on loopback
            f"{self.endpoint}/__faults__", method=method,
            data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # nosec B310
            return json.loads(response.read())

    def faults(self, share: float, kinds=("500", "503", "reset", "stall", "truncate"), **more) -> dict:
        """From now on, this share of the matching requests fails (``more``: methods, path,
        stall_seconds, seed; see s3_faults.py)."""
        return self._call("PUT", {"share": share, "kinds": list(kinds), **more})

    def report(self) -> dict:
        return self._call("GET")
