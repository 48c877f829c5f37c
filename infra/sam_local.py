"""SAM's own local loop against the running local stack: `make invoke`, `make start-api`.

    python -m infra.sam_local invoke PredictFunction events/predict.json   # prints the function's answer
    python -m infra.sam_local start-api [--port 3000]                      # every route on 127.0.0.1

Both run the functions `make demo` built (.aws-sam/demo/build) in Docker containers made from the
base image of infra/lambda_image.py, with the environment the deployed functions have on the local
cloud (read from its Lambda service), their AWS clients pointed at the local cloud. A container
reaches the host on Docker's bridge address, so while `sam local` runs, a relay listens on that
address (never 0.0.0.0) and passes connections to LocalStack on 127.0.0.1.

An event may name the model bucket as ``{{model_bucket}}``; it is replaced by the stack's bucket.
What `sam local start-api` does not do that API Gateway does: no API key check, no usage plan or
throttling, no gateway responses (docs/local-cloud.md).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

from infra import deploy, docker_engine, lambda_image
from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".local" / "sam-local"
FUNCTIONS = ("PredictFunction", "BatchControlFunction", "BatchWorkerFunction", "DriftFunction")
log = logger("sam-local")


def stack(stack_file: Path = deploy.STACK_FILE, template: Path | None = None) -> dict:
    """The running stack's outputs (infra/deploy.py wrote them) and the built template to run."""
    if not stack_file.exists():
        raise SystemExit(f"no local stack ({stack_file}): run `make demo` first")
    outputs = json.loads(stack_file.read_text())
    built = template or deploy.DEMO_BUILDS / "build" / "template.yaml"
    if not built.exists():
        raise SystemExit(f"no built functions at {built}: run `make demo` first")
    return {**outputs, "template": str(built)}


def deployed_environments(outputs: dict) -> dict[str, dict[str, str]]:
    """Each function's environment as the local cloud runs it, by the template's logical names."""
    import boto3

    session = boto3.Session(region_name=deploy.REGION,
                            aws_access_key_id=deploy.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=deploy.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    cloudformation = session.client("cloudformation", endpoint_url=outputs["endpoint"])
    functions = session.client("lambda", endpoint_url=outputs["endpoint"])
    environments = {}
    for logical in FUNCTIONS:
        resource = cloudformation.describe_stack_resource(StackName=outputs["stack_name"],
                                                          LogicalResourceId=logical)
        physical = resource["StackResourceDetail"]["PhysicalResourceId"]
        config = functions.get_function_configuration(FunctionName=physical)
        environments[logical] = config.get("Environment", {}).get("Variables", {})
    return environments


def environment_file(outputs: dict, endpoint: str) -> Path:
    """`--env-vars`: the deployed environments, the AWS endpoint the containers reach."""
    environments = deployed_environments(outputs)
    for variables in environments.values():
        variables["AWS_ENDPOINT_URL"] = endpoint
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "env.json"
    path.write_text(json.dumps(environments, indent=1))
    return path


@contextlib.contextmanager
def relay(address: str, port: int):
    """Connections to address:port passed to 127.0.0.1:port, for as long as the block runs (or
    another command's relay, when one is there already: `make invoke` beside `make start-api`)."""
    try:
        server = socket.create_server((address, port))
    except OSError as error:
        if error.errno != errno.EADDRINUSE or not _cloud_answers(f"http://{address}:{port}"):
            raise SystemExit(f"cannot listen on {address}:{port} for sam local's containers: {error}") \
                from error
        log(f"{address}:{port} already reaches the local cloud (another sam local command's relay)")
        yield
        return
    server.settimeout(0.2)
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", port))
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(source, sink), daemon=True).start()

    thread = threading.Thread(target=serve, name="local-cloud-relay", daemon=True)
    thread.start()
    log(f"relaying {address}:{port} (Docker's bridge) to the local cloud on 127.0.0.1:{port}")
    try:
        yield
    finally:
        stop.set()
        server.close()
        thread.join(timeout=2)


def _cloud_answers(endpoint: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as answer:  # noqa: S310  # nosec B310
            return answer.status == 200
    except OSError:
        return False


def prepared(outputs: dict) -> tuple[list[str], dict[str, str], tuple[str, int]]:
    """The arguments every `sam local` command takes here, its environment, the relay's address."""
    image = lambda_image.ensure()
    bridge = docker_engine.bridge_address()
    port = urllib.parse.urlsplit(outputs["endpoint"]).port or 4566
    endpoint = f"http://{bridge}:{port}"
    arguments = [
        "--template-file", outputs["template"], "--invoke-image", image, "--skip-pull-image",
        "--env-vars", str(environment_file(outputs, endpoint)),
        "--parameter-overrides", f"LocalEndpoint={endpoint}", "--region", deploy.REGION,
    ]
    env = {key: value for key, value in deploy.local_env(outputs["endpoint"]).items()
           if key not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}  # the containers get theirs from --env-vars
    return arguments, env, (bridge, port)


def event_file(path: str, outputs: dict) -> Path:
    text = Path(path).read_text().replace("{{model_bucket}}", outputs["model_bucket"])
    WORK.mkdir(parents=True, exist_ok=True)
    written = WORK / f"event-{Path(path).name}"
    written.write_text(text)
    return written


def invoke(function: str, event: str, outputs: dict, capture: bool = False) -> subprocess.CompletedProcess:
    """`sam local invoke`: the function's answer on stdout, the container's output on stderr."""
    if function not in FUNCTIONS:
        raise SystemExit(f"FUNCTION must be one of {', '.join(FUNCTIONS)}, not {function!r}")
    arguments, env, (bridge, port) = prepared(outputs)
    with relay(bridge, port):
        return subprocess.run(  # noqa: S603
            [deploy.sam(), "local", "invoke", function, "--event", str(event_file(event, outputs)),
             *arguments], cwd=ROOT, env=env, check=False, capture_output=capture, text=True)


def start_api(port: int, outputs: dict) -> int:
    arguments, env, (bridge, cloud_port) = prepared(outputs)
    log(f"sam local start-api on http://127.0.0.1:{port} (no API key needed; Ctrl-C stops it)")
    with relay(bridge, cloud_port):
        process = subprocess.Popen(  # noqa: S603
            [deploy.sam(), "local", "start-api", "--host", "127.0.0.1", "--port", str(port),
             "--warm-containers", "LAZY", *arguments], cwd=ROOT, env=env)

        def stop(*_) -> None:  # SAM removes its containers when it is asked to stop with SIGTERM
            process.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop()
            return process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("invoke", help="one event through one function")
    one.add_argument("function", choices=FUNCTIONS)
    one.add_argument("event")
    api = commands.add_parser("start-api", help="every route of the template on 127.0.0.1")
    api.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    for command in (one, api):
        command.add_argument("--stack", type=Path, default=deploy.STACK_FILE,
                             help="the stack's outputs (default: the demo's)")
        command.add_argument("--template", type=Path, help="the built template (default: the demo's build)")
    args = parser.parse_args()
    outputs = stack(args.stack, args.template)
    if args.command == "invoke":
        return invoke(args.function, args.event, outputs).returncode
    return start_api(args.port, outputs)


if __name__ == "__main__":
    sys.exit(main())
