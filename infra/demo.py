"""The whole local stack in one command, and its removal.

    python -m infra.demo up      # local cloud, deploy, train the demo models without a champion, form
    python -m infra.demo down    # stop every process it started, delete the local state
    python -m infra.demo train [training args...]   # the training job against the local stack

``up`` is idempotent: a second run reuses the installs, skips a deploy whose
template and code did not change, and skips training when a champion is serving.
It writes .local/demo.json (api_url, api_key, form_url, model_bucket, and the console's
demo user: console_user, console_password).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from serving.store import bundles

from infra import deploy, local_cloud, local_issuer, postgres, site, ui
from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
SITE = LOCAL / "site"
SITE_PID = LOCAL / "site.pid"
DEMO_FILE = LOCAL / "demo.json"
EXAMPLE_REQUEST = LOCAL / "example-request.json"
FORM_PORT = 8765
FORM_URL = f"http://127.0.0.1:{FORM_PORT}/"
CONSOLE_USER = "demo"
# The models `make demo` trains: the default one, and one with categorical features and missing values,
# each a study of DEMO_BUDGET seconds (fits included), so that a first start takes minutes
DEMO_BUDGET = 40
DEMO_MODELS = {
    "breast-cancer": ["--set", f"tuning.timeout_seconds={DEMO_BUDGET}"],
    "penguins": ["--set", f"tuning.timeout_seconds={DEMO_BUDGET}", "--set", "dataset=penguins",
                 "--set", "model_name=penguins"],
}


log = logger("demo", "stdout")


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted([ROOT / "template.yaml", *(ROOT / "functions").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


def _stack_is_current(cloud: local_cloud.Instance) -> dict | None:
    if not deploy.STACK_FILE.exists():
        return None
    outputs = json.loads(deploy.STACK_FILE.read_text())
    if outputs.get("fingerprint") != _fingerprint() or outputs.get("endpoint") != cloud.endpoint:
        return None
    pool = local_issuer.Instance().pool()  # a restarted issuer has a new pool: the stack must name it
    if pool is None or pool.pool_id != (outputs.get("auth") or {}).get("pool_id"):
        return None
    try:
        with urllib.request.urlopen(f"{outputs['api_url']}/health", timeout=10):  # noqa: S310  # nosec B310
            pass
    except urllib.error.HTTPError:
        pass  # 503 without a champion: the API is there
    except OSError:
        return None
    return outputs


def training_env(outputs: dict) -> dict[str, str]:
    env = deploy.local_env(outputs["endpoint"])
    env["MODEL_BUCKET"] = outputs["model_bucket"]
    return env


def has_champion(outputs: dict, name: str = "breast-cancer") -> bool:
    import boto3

    s3 = boto3.client("s3", **_client_args(outputs))
    return bundles.read_champion(s3, outputs["model_bucket"], name) is not None


def _client_args(outputs: dict) -> dict:
    return {"endpoint_url": outputs["endpoint"], "region_name": deploy.REGION,
            "aws_access_key_id": deploy.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": deploy.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}


def train(outputs: dict, args: list[str]) -> None:
    # studies kept where `make ui` shows them, unless the command names its own storage
    named = any("tuning.storage" in arg for arg in args)
    keep = [] if named else ["--set", f"tuning.storage={ui.OPTUNA_STORAGE}"]
    ui.OPTUNA_STORE.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "training", "train", *keep, *args]
    log("training: " + " ".join(command[1:]))
    finished = subprocess.run(command, cwd=ROOT, env=training_env(outputs))  # noqa: S603
    if finished.returncode:  # the job has said why (a refused table, a bad setting): no traceback here
        raise SystemExit(finished.returncode)


def serve_form(outputs: dict) -> None:
    site.build(SITE)
    (SITE / "config.json").write_text(
        json.dumps({"api_url": outputs["api_url"], "api_key": outputs["api_key"], "auth": outputs["auth"]},
                   indent=2)
    )
    if _site_pid():
        return
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "http.server", str(FORM_PORT), "--bind", "127.0.0.1",
         "--directory", str(SITE)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    SITE_PID.write_text(str(process.pid))
    for _ in range(50):
        try:
            with urllib.request.urlopen(FORM_URL, timeout=1):  # noqa: S310  # nosec B310
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the form server did not start on {FORM_URL}")


def _site_pid() -> int | None:
    try:
        pid = int(SITE_PID.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def wait_healthy(api_url: str, timeout: float = 60) -> dict:
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=15) as response:  # noqa: S310  # nosec B310
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            last = error.read().decode()
        except OSError as error:
            last = str(error)
        time.sleep(1)
    raise SystemExit(f"the API did not become healthy in {timeout:.0f} s: {last}")


def console_user() -> tuple[str, str]:
    """The console's demo user in the local issuer's pool, with the password demo.json kept (or a new one)."""
    try:
        password = json.loads(DEMO_FILE.read_text())["console_password"]
    except (OSError, ValueError, KeyError):
        password = secrets.token_urlsafe(12) + "-A1"  # what Cognito's password policy asks of a real pool
    issuer = local_issuer.Instance()
    issuer.add_user(issuer.start(), CONSOLE_USER, password)
    return CONSOLE_USER, password


def up() -> None:
    started = time.monotonic()
    local_cloud.install()
    cloud = local_cloud.Instance()
    cloud.start()
    outputs = _stack_is_current(cloud)
    if outputs:
        log(f"stack {outputs['stack_name']} is deployed and current")
    else:
        outputs = deploy.deploy_local(cloud.endpoint, quick=True)
        outputs["fingerprint"] = _fingerprint()
        deploy.STACK_FILE.write_text(json.dumps(outputs, indent=2))
    for name, args in DEMO_MODELS.items():
        if has_champion(outputs, name):
            log(f"{name}: a champion is already serving (make train to train another)")
        else:
            train(outputs, args)
    user, password = console_user()
    serve_form(outputs)
    health = wait_healthy(outputs["api_url"])
    with urllib.request.urlopen(f"{outputs['api_url']}/model", timeout=15) as response:  # noqa: S310  # nosec B310
        model = json.loads(response.read())
    with urllib.request.urlopen(f"{outputs['api_url']}/models", timeout=15) as response:  # noqa: S310  # nosec B310
        served = [m["name"] for m in json.loads(response.read())["models"]]
    EXAMPLE_REQUEST.write_text(json.dumps({"instances": [model["examples"][0]["instance"]]}))
    demo = {
        "api_url": outputs["api_url"],
        "api_key": outputs["api_key"],
        "form_url": FORM_URL,
        "model_bucket": outputs["model_bucket"],
        "console_user": user,
        "console_password": password,
        "model": health.get("model"),
        "models": served,
        "endpoint": outputs["endpoint"],
        "example_request": str(EXAMPLE_REQUEST.relative_to(ROOT)),
    }
    DEMO_FILE.write_text(json.dumps(demo, indent=2))
    curl = (f"curl -s -H 'x-api-key: {outputs['api_key']}' -H 'content-type: application/json' "
            f"-d @{EXAMPLE_REQUEST.relative_to(ROOT)} {outputs['api_url']}/predict")
    print(f"""
The local stack is up ({time.monotonic() - started:.0f} s); models served: {', '.join(served)}

  API        {outputs['api_url']}
             GET /models, GET /models/<name>, POST /models/<name>/predict, POST /models/<name>/explain
             (default model: /model, /predict, /explain)
  API key    {outputs['api_key']}
  Console    {FORM_URL} (batch scoring: sign in as {user} / {password})
  Bucket     s3://{outputs['model_bucket']}
  Written to {DEMO_FILE.relative_to(ROOT)}

Predict (an example row is in {EXAMPLE_REQUEST.relative_to(ROOT)}):
  {curl}

Why (SHAP values): the same with /explain. Drift of what was asked so far: make drift
Stop everything and delete the local state: make down
""", flush=True)


def down() -> None:
    ui.down()
    pid = _site_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        log("stopped the form server")
    SITE_PID.unlink(missing_ok=True)
    local_cloud.Instance().stop(remove_state=True)
    local_issuer.Instance().stop()
    postgres.stop()  # the study `make train-batch` kept
    for path in (DEMO_FILE, deploy.STACK_FILE, EXAMPLE_REQUEST):
        path.unlink(missing_ok=True)
    # the local MLflow store describes bundles of the cloud just deleted
    for folder in (SITE, LOCAL / "mlflow", LOCAL / "optuna", LOCAL / "cloud"):
        shutil.rmtree(folder, ignore_errors=True)
    log("the local stack is down")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("up", "down", "train"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "up":
        up()
    elif sys.argv[1] == "down":
        down()
    else:
        if not deploy.STACK_FILE.exists():
            raise SystemExit("the local stack is not deployed: run make demo first")
        train(json.loads(deploy.STACK_FILE.read_text()), sys.argv[2:])


if __name__ == "__main__":
    main()
