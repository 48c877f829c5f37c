"""`make ui`: the MLflow UI on the local tracking store and the Optuna dashboard on the local studies.

    python -m infra.ui up     # start both (idempotent) and print their URLs
    python -m infra.ui down   # stop them (`make down` does it too)

`make train` and `make demo` keep MLflow runs in .local/mlflow and Optuna studies in
.local/optuna/studies.db; both servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
MLFLOW_STORE = LOCAL / "mlflow"
OPTUNA_STORE = LOCAL / "optuna" / "studies.db"
OPTUNA_STORAGE = f"sqlite:///{OPTUNA_STORE}"
BIN = Path(sys.executable).parent
SERVERS = {
    "mlflow": (5000, lambda port: [str(BIN / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port),
                                   "--backend-store-uri", f"sqlite:///{MLFLOW_STORE / 'mlflow.db'}",
                                   "--default-artifact-root", (MLFLOW_STORE / "artifacts").as_uri()]),
    "optuna": (8080, lambda port: [str(BIN / "optuna-dashboard"), OPTUNA_STORAGE, "--host", "127.0.0.1",
                                   "--port", str(port)]),
}


log = logger("ui", "stdout")


def _pidfile(name: str) -> Path:
    return LOCAL / f"ui-{name}.pid"


def _running(name: str) -> int | None:
    try:
        pid = int(_pidfile(name).read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310  # nosec B310 - our own loopback server
            return True
    except OSError:
        return False


def up() -> dict[str, str]:
    MLFLOW_STORE.mkdir(parents=True, exist_ok=True)
    OPTUNA_STORE.parent.mkdir(parents=True, exist_ok=True)
    if not OPTUNA_STORE.exists():  # an empty storage, so the dashboard starts before the first study
        import optuna

        optuna.storages.RDBStorage(OPTUNA_STORAGE)
    urls = {}
    for name, (port, command) in SERVERS.items():
        url = f"http://127.0.0.1:{port}/"
        urls[name] = url
        if _running(name):
            continue
        with open(LOCAL / f"ui-{name}.log", "ab") as out:
            process = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
        _pidfile(name).write_text(str(process.pid))
        deadline = time.monotonic() + 60
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {name} server did not start; see .local/ui-{name}.log")
            time.sleep(0.5)
    log(f"MLflow UI:        {urls['mlflow']}   (runs of every training job, with their pictures)")
    log(f"Optuna dashboard: {urls['optuna']}   (every study: trials, history, parameter importance)")
    log("stop them with `make down` (or python -m infra.ui down)")
    return urls


def down() -> None:
    for name in SERVERS:
        pid = _running(name)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            log(f"stopped the {name} server")
        _pidfile(name).unlink(missing_ok=True)


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("up", "down"):
        raise SystemExit(__doc__)
    up() if sys.argv[1] == "up" else down()


if __name__ == "__main__":
    main()
