"""The local cloud: LocalStack (``localstack-core``) on the host, no Docker.

    python -m infra.local_cloud install   # LocalStack's venv + the Lambda runtimes
    python -m infra.local_cloud start     # start on 127.0.0.1:4566 (idempotent)
    python -m infra.local_cloud stop      # stop it and every function process
    python -m infra.local_cloud status

LocalStack lives in its own virtual environment: its pins clash with the
project's. Lambda functions run as local processes through the executor plugin
in ``infra/localstack_process_executor``; each runtime (python3.12) is a small
venv with what AWS's base image has (awslambdaric, boto3).
Only the standard library is used here so this runs before any install.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".local" / "localstack"  # installs, shared by every instance
VENV = HOME / "venv"
RUNTIMES = HOME / "runtimes"
PLUGIN = ROOT / "infra" / "localstack_process_executor"
HOST = "127.0.0.1"


class Instance:
    """One running LocalStack: its port and its own state folder.

    ``make demo`` uses port 4566 and .local/cloud; the tests use another port
    and folder so they never touch a running demo.
    """

    def __init__(self, port: int | None = None, state_dir: Path | None = None) -> None:
        self.port = port or int(os.environ.get("LOCALSTACK_PORT", "4566"))
        self.dir = Path(state_dir or os.environ.get("LOCAL_CLOUD_DIR") or ROOT / ".local" / "cloud")
        self.state = self.dir / "state"
        self.tmp = self.dir / "tmp"
        self.lambda_logs = self.dir / "lambda-logs"
        self.pidfile = self.dir / "localstack.pid"
        self.logfile = self.dir / "localstack.log"

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def is_up(self) -> bool:
        try:
            url = f"{self.endpoint}/_localstack/health"
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310  # nosec B310
                return response.status == 200
        except OSError:
            return False

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(self, timeout: float = 60) -> None:
        start(self, timeout)

    def stop(self, remove_state: bool = False) -> None:
        stop(self, remove_state)

# localstack-core 4.9.2 is the newest release that runs on Python 3.12 (4.10+
# and 2026.x need 3.13). The three pins are what it needs to start at all.
LOCALSTACK_REQUIREMENTS = [
    "localstack-core[runtime]==4.9.2",
    "cbor2<6",
    "pyopenssl==25.3.0",
    "localstack-twisted==25.5.0",
]
# What AWS's python3.12 base image provides to every function.
RUNTIME_REQUIREMENTS = {"python3.12": ["awslambdaric==4.2.2", "boto3==1.40.61"]}


log = logger("local-cloud")


def uv() -> str:
    own = ROOT / ".local" / "tools" / "bin" / "uv"  # installed by `make install`
    found = os.environ.get("UV") or shutil.which("uv") or (str(own) if own.exists() else None)
    if not found:
        sys.exit("uv is not installed: run `make install` first")
    return found


def run(*args: str) -> None:
    subprocess.run(args, check=True)  # noqa: S603 - fixed argv


def install() -> None:
    stamp = HOME / ".installed"
    wanted = json.dumps([LOCALSTACK_REQUIREMENTS, RUNTIME_REQUIREMENTS, _plugin_digest()])
    if stamp.exists() and stamp.read_text() == wanted and (VENV / "bin" / "python").exists():
        log("LocalStack and the Lambda runtimes are installed")
        return
    HOME.mkdir(parents=True, exist_ok=True)
    log(f"installing localstack-core into {VENV.relative_to(ROOT)}")
    run(uv(), "venv", "--quiet", "--allow-existing", "--python", "3.12", str(VENV))
    run(uv(), "pip", "install", "--quiet", "--python", str(VENV / "bin" / "python"),
        *LOCALSTACK_REQUIREMENTS, str(PLUGIN))
    for runtime, requirements in RUNTIME_REQUIREMENTS.items():
        target = RUNTIMES / runtime
        version = runtime.removeprefix("python")
        log(f"installing the {runtime} Lambda runtime into {target.relative_to(ROOT)}")
        run(uv(), "venv", "--quiet", "--allow-existing", "--python", version, str(target))
        run(uv(), "pip", "install", "--quiet", "--python", str(target / "bin" / "python"),
            *requirements)
    stamp.write_text(wanted)


def _plugin_digest() -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(PLUGIN.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def start(cloud: Instance, timeout: float = 60) -> None:
    if cloud.is_up():
        log(f"LocalStack is already running at {cloud.endpoint}")
        return
    if not (VENV / "bin" / "python").exists():
        install()
    for folder in (cloud.state, cloud.tmp, cloud.lambda_logs):
        folder.mkdir(parents=True, exist_ok=True)
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("AWS_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        GATEWAY_LISTEN=f"{HOST}:{cloud.port}",
        # twisted, the default server, binds every interface whatever GATEWAY_LISTEN says
        GATEWAY_SERVER="hypercorn",
        FILESYSTEM_ROOT=str(cloud.state),
        TMPDIR=str(cloud.tmp),
        SKIP_SSL_CERT_DOWNLOAD="1",
        DISABLE_EVENTS="1",
        DNS_ADDRESS="0",  # its DNS server fails offline; nothing here needs it
        SERVICES="s3,lambda,apigateway,cloudformation,iam,sts,logs,cloudwatch,events,ssm,kms,sqs,sns,stepfunctions",
        LAMBDA_RUNTIME_EXECUTOR="process",
        PROCESS_EXECUTOR_RUNTIMES_DIR=str(RUNTIMES),
        PROCESS_EXECUTOR_LOG_DIR=str(cloud.lambda_logs),
        # let the API's own CORS headers through untouched, as API Gateway does
        DISABLE_CORS_CHECKS="1",
        DISABLE_CORS_HEADERS="1",
        LS_LOG=os.environ.get("LS_LOG", "info"),
    )
    log(f"starting LocalStack on {cloud.endpoint} (log: {cloud.logfile})")
    with open(cloud.logfile, "ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [str(VENV / "bin" / "python"), "-m", "localstack.runtime.main"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cloud.dir,
        )
    cloud.pidfile.write_text(str(process.pid))
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            sys.exit(f"LocalStack exited with {process.returncode}; see {cloud.logfile}")
        if cloud.is_up():
            log(f"LocalStack is ready ({time.monotonic() - started:.1f} s)")
            return
        time.sleep(0.25)
    stop(cloud)
    sys.exit(f"LocalStack did not answer within {timeout:.0f} s; see {cloud.logfile}")


def stop(cloud: Instance, remove_state: bool = False) -> None:
    pid = cloud.pid()
    if pid:
        log(f"stopping LocalStack on {cloud.endpoint} and its function processes")
        _kill_tree(pid)
    cloud.pidfile.unlink(missing_ok=True)
    # function processes run in their own sessions, in code folders under this
    # instance's tmp folder: find them by their working directory
    for child in function_processes(cloud):
        _kill_tree(child)
    if remove_state:
        for folder in (cloud.state, cloud.tmp, cloud.lambda_logs):
            shutil.rmtree(folder, ignore_errors=True)
        log("removed the local cloud's state")


def function_processes(cloud: Instance) -> list[int]:
    found = []
    tmp = str(cloud.tmp.resolve())
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(entry / "cwd").startswith(tmp):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _kill_tree(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["install", "start", "stop", "status"])
    parser.add_argument("--remove-state", action="store_true", help="with stop: delete state")
    args = parser.parse_args()
    cloud = Instance()
    if args.command == "install":
        install()
    elif args.command == "start":
        cloud.start()
    elif args.command == "stop":
        cloud.stop(remove_state=args.remove_state)
    else:
        print(json.dumps({"endpoint": cloud.endpoint, "up": cloud.is_up(), "pid": cloud.pid()}))


if __name__ == "__main__":
    main()
