"""A LocalStack ``RuntimeExecutor`` that runs a Python zip function as a local process.

One executor is one Lambda execution environment. ``start`` launches the
runtime (``python -m awslambdaric <handler>``, the function's code directory
first on ``PYTHONPATH``) and waits for its init; ``invoke`` hands the event to
the warm process through the Runtime API and waits for the answer, enforcing
what Lambda enforces:

* Timeout: past the function's Timeout the process is killed and the invoke
  fails with Lambda's ``Sandbox.Timedout`` / "Task timed out after N seconds".
* MemorySize: the process tree's resident memory is watched; over the limit the
  process is killed and the invoke fails with ``Runtime.OutOfMemory``.
* Crashes: a runtime that exits mid-invoke fails the invoke with ``Runtime.ExitError``.
After any of these the next invoke starts a fresh process (a new init), as Lambda does.

Each environment's output goes to ``<log dir>/<function>/<environment>.log``
with Lambda's START/END/REPORT lines; the same text goes back to LocalStack
with each result, which stores it in CloudWatch Logs.

Configuration (environment of the LocalStack process):
  PROCESS_EXECUTOR_RUNTIMES_DIR  folder of virtual environments named after
                                 runtimes (``python3.12/bin/python``), each with
                                 awslambdaric and boto3 as in AWS's base images.
                                 Default: the runtime's interpreter from PATH.
  PROCESS_EXECUTOR_LOG_DIR       where environment logs are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path

import psutil
from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.services.lambda_.invocation.executor_endpoint import StatusErrorException
from localstack.services.lambda_.invocation.lambda_models import (
    FunctionVersion,
    InvocationResult,
)
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from localstack_process_executor.runtime_api import PendingInvocation, RuntimeApiServer

LOG = logging.getLogger(__name__)

MEMORY_POLL_SECONDS = 0.05
# The host is the "container": both LocalStack and the function are on loopback.
LOOPBACK = "127.0.0.1"


def _log_dir() -> Path:
    default = Path(config.dirs.data or tempfile.gettempdir()) / "lambda-logs"
    return Path(os.environ.get("PROCESS_EXECUTOR_LOG_DIR") or default)


def runtime_python(runtime: str) -> str:
    """The interpreter for a Lambda runtime name such as ``python3.12``."""
    if not runtime or not runtime.startswith("python"):
        raise LambdaRuntimeException(
            f"The process executor runs Python zip functions only, not runtime {runtime!r}"
        )
    runtimes_dir = os.environ.get("PROCESS_EXECUTOR_RUNTIMES_DIR")
    if runtimes_dir:
        candidate = Path(runtimes_dir) / runtime / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    found = shutil.which(runtime)
    if not found:
        raise LambdaRuntimeException(
            f"No interpreter for {runtime}: set PROCESS_EXECUTOR_RUNTIMES_DIR "
            f"or put {runtime} on PATH"
        )
    return found


def _code_paths(function_version: FunctionVersion) -> tuple[Path, list[Path]]:
    code_dir = Path(function_version.config.code.get_unzipped_code_location())
    layer_dirs = []
    for layer in function_version.config.layers or []:
        root = Path(layer.code.get_unzipped_code_location())
        # Lambda puts layers in /opt; Python layers use /opt/python and
        # /opt/python/lib/pythonX.Y/site-packages
        version = function_version.config.runtime.removeprefix("python")
        layer_dirs += [root / "python", root / "python" / "lib" / f"python{version}" / "site-packages"]
    return code_dir, layer_dirs


def _error_payload(error_type: str, request_id: str, message: str) -> bytes:
    return json.dumps(
        {"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {message}"}
    ).encode()


class ProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.process: subprocess.Popen | None = None
        self.api: RuntimeApiServer | None = None
        self.env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._log_offset = 0
        self._init_ms: float | None = None
        name = function_version.id.function_name
        self.log_path = _log_dir() / name / f"{id}.log"
        self.tmp_dir = Path(tempfile.gettempdir()) / "lambda-tmp" / f"{name}-{id}"

    # ---- lifecycle -------------------------------------------------------
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.package_type != PackageType.Zip:
            raise LambdaRuntimeException("The process executor runs zip packages only")
        runtime_python(function_version.config.runtime)  # fail early, at create time
        function_version.config.code.prepare_for_execution()
        for layer in function_version.config.layers or []:
            layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass  # LocalStack removes the unzipped code itself

    def start(self, env_vars: dict[str, str]) -> None:
        self.env = self._process_env(env_vars)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._kill()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    # ---- addresses (the function runs on the host, next to LocalStack) -----
    def get_address(self) -> str:
        return LOOPBACK

    def get_endpoint_from_executor(self) -> str:
        return LOOPBACK

    def get_runtime_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @classmethod
    def validate_environment(cls) -> bool:
        return True

    # ---- invoke ------------------------------------------------------------
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        cfg = self.function_version.config
        with self._lock:
            if self.process is None or self.process.poll() is not None:
                self._spawn()  # a new init after a timeout, crash or OOM
            init_ms, self._init_ms = self._init_ms, None
            self._append_log(f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n")
            started = time.perf_counter()
            future = self.api.submit(
                PendingInvocation(
                    request_id=request_id,
                    payload=(payload.get("payload") or "").encode(),
                    deadline_ms=int(time.time() * 1000 + cfg.timeout * 1000),
                    function_arn=payload["invoked-function-arn"],
                    trace_id=payload.get("trace-id") or "",
                )
            )
            peak_rss, failure = self._wait(future, cfg.timeout, cfg.memory_size, request_id)
            duration_ms = (time.perf_counter() - started) * 1000
            if failure is not None:
                error_type, message = failure
                self._kill()
                self.api = None
                result_payload, is_error = _error_payload(error_type, request_id, message), True
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                self._append_log(f"{stamp} {request_id} {message}\n")
            else:
                outcome = future.result()
                result_payload, is_error = outcome.payload, outcome.is_error
            self._append_log(self._end_lines(request_id, duration_ms, peak_rss, init_ms))
            logs = self._consume_logs()
        return InvocationResult(request_id, result_payload, is_error=is_error, logs=logs)

    def _wait(self, future, timeout_s: int, memory_mb: int, request_id: str):
        """Wait for the runtime's answer; returns (peak RSS bytes, failure or None)."""
        deadline = time.monotonic() + timeout_s
        peak = self._rss()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.api.forget(request_id)
                return peak, ("Sandbox.Timedout", f"Task timed out after {timeout_s:.2f} seconds")
            try:
                future.result(timeout=min(MEMORY_POLL_SECONDS, remaining))
                return max(peak, self._rss()), None
            except FutureTimeout:
                pass
            peak = max(peak, self._rss())
            if peak > memory_mb * 1024 * 1024:
                self.api.forget(request_id)
                return peak, ("Runtime.OutOfMemory", "Runtime exited with error: signal: killed")
            code = self.process.poll()
            if code is not None and not future.done():
                self.api.forget(request_id)
                return peak, ("Runtime.ExitError", f"Runtime exited with error: exit status {code}")

    # ---- process management --------------------------------------------------
    def _process_env(self, env_vars: dict[str, str]) -> dict[str, str]:
        cfg = self.function_version.config
        code_dir, layer_dirs = _code_paths(self.function_version)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        env = {key: str(value) for key, value in env_vars.items()}
        env.update(
            {
                # the process sees its real code folder where Lambda has /var/task
                "LAMBDA_TASK_ROOT": str(code_dir),
                "PYTHONPATH": os.pathsep.join(str(p) for p in [code_dir, *layer_dirs]),
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{cfg.runtime}",
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LANG": "en_US.UTF-8",
                "TMPDIR": str(self.tmp_dir),
                "PYTHONNOUSERSITE": "1",
            }
        )
        return env

    def _spawn(self) -> None:
        cfg = self.function_version.config
        self.api = RuntimeApiServer()
        self.api.start()
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=self.api.address)
        python = runtime_python(cfg.runtime)
        self._append_log(f"INIT_START Runtime Version: {cfg.runtime} (process executor)\n")
        started = time.perf_counter()
        with open(self.log_path, "ab") as log_file:  # the child keeps its own handle
            self.process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
                [python, "-m", "awslambdaric", cfg.handler],
                cwd=env["LAMBDA_TASK_ROOT"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        limit = config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT
        while not self.api.init_done.wait(0.02):
            if self.process.poll() is not None or time.perf_counter() - started > limit:
                break
        self._init_ms = (time.perf_counter() - started) * 1000
        if self.api.init_error is not None or not self.api.init_done.is_set():
            error = self.api.init_error or _error_payload(
                "Runtime.ExitError", "init", f"Runtime exited before init completed (see {self.log_path})"
            )
            self._kill()
            raise StatusErrorException("Environment startup failed", payload=error)
        LOG.debug("process executor %s ready in %.0f ms", self.id, self._init_ms)

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        self.process = None
        if self.api is not None:
            self.api.stop()
            self.api = None

    def _rss(self) -> int:
        try:
            root = psutil.Process(self.process.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except (psutil.Error, AttributeError):
            return 0

    # ---- logs ---------------------------------------------------------------------
    def _append_log(self, text: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log_file:
            log_file.write(text)

    def _consume_logs(self) -> str:
        """Everything written since the last invoke: init output, the function's, ours."""
        with open(self.log_path, "rb") as log_file:
            log_file.seek(self._log_offset)
            data = log_file.read()
        self._log_offset += len(data)
        return data.decode(errors="replace")

    def _end_lines(self, request_id, duration_ms, peak_rss, init_ms) -> str:
        memory_mb = self.function_version.config.memory_size
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {memory_mb} MB\t"
            f"Max Memory Used: {peak_rss // (1024 * 1024)} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        return f"END RequestId: {request_id}\n{report}\n"


if sys.platform == "win32":  # pragma: no cover
    raise ImportError("The process executor needs a POSIX host (process groups)")
