"""SAM's own local loop (infra/sam_local.py): the built functions in Docker containers made from the
base image of infra/lambda_image.py, reading the test cloud's bucket, answer what the API on
LocalStack answers, byte for byte. Needs Docker (the ``docker`` fixture of tests/conftest.py)."""

import base64
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from infra import docker_engine, lambda_image, sam_local
from tests.conftest import ROOT, TEST_CLOUD_DIR, client
from tests.integration.test_local_cloud import listening

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local(stack, trained, trained_penguins, docker):
    """The test stack as `make invoke` reads the demo's: its outputs and the built template."""
    return sam_local.stack(TEST_CLOUD_DIR / "stack.json", Path(stack["built"]) / "template.yaml")


def through_the_api(stack, method: str, path: str, body: bytes | None = None) -> requests.Response:
    headers = {"x-api-key": stack["api_key"], "content-type": "application/json"}
    return requests.request(method, f"{stack['api_url']}{path}", data=body, headers=headers, timeout=60)


def test_sam_local_invoke_answers_as_the_deployed_api_does(local, stack):
    event = json.loads((ROOT / "events" / "predict.json").read_text())
    result = sam_local.invoke("PredictFunction", "events/predict.json", local, capture=True)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    expected = through_the_api(stack, "POST", "/predict", base64.b64decode(event["body"]))
    assert answer["statusCode"] == expected.status_code == 200
    assert answer["body"].encode() == expected.content  # the same bytes: every digit of every probability
    assert answer["multiValueHeaders"]["Content-Type"] == ["application/json"]


def test_the_batch_and_drift_functions_run_their_events(local, stack):
    s3 = client("s3", stack["endpoint"])
    model = through_the_api(stack, "GET", "/model").json()
    example = model["examples"][0]["instance"]
    names = list(example)
    body = (",".join(names) + "\n" + ",".join(str(example[n]) for n in names) + "\n").encode()
    s3.put_object(Bucket=stack["model_bucket"], Key="batch/input/example.csv", Body=body)
    plan = sam_local.invoke("BatchControlFunction", "events/batch-plan.json", local, capture=True)
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = json.loads(plan.stdout.strip().splitlines()[-1])
    assert (planned["key"], planned["bytes"], planned["parts"], planned["header"]) == (
        "batch/input/example.csv", len(body), 1, names)
    assert (planned["model"], planned["model_version"]) == ("breast-cancer", model["version"])
    drift = sam_local.invoke("DriftFunction", "events/drift-schedule.json", local, capture=True)
    assert drift.returncode == 0, drift.stderr[-3000:]
    checked = json.loads(drift.stdout.strip().splitlines()[-1])
    assert {"breast-cancer", "penguins"} <= {result["model"] for result in checked["models"]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_start_api_serves_every_route_as_the_api_does_and_listens_on_loopback_and_the_bridge(local, stack, cloud):
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "infra.sam_local", "start-api", "--port", str(port),
         "--stack", str(TEST_CLOUD_DIR / "stack.json"), "--template", local["template"]],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if requests.get(f"{url}/health", timeout=30).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("sam local start-api did not answer /health within a minute")
        # while it runs: the local cloud is reached on loopback and on Docker's bridge, never on 0.0.0.0
        bridge = docker_engine.bridge_address()
        hex_bridge = socket.inet_aton(bridge)[::-1].hex().upper()
        assert listening(cloud.port) == {"0100007F", hex_bridge}
        assert listening(port) == {"0100007F"}  # sam local's own server too
        listed = requests.get(f"{url}/models", timeout=30)
        assert listed.content == through_the_api(stack, "GET", "/models").content
        for name in ("breast-cancer", "penguins"):
            described = requests.get(f"{url}/models/{name}", timeout=30)
            assert described.content == through_the_api(stack, "GET", f"/models/{name}").content
            body = json.dumps({"instances": [e["instance"] for e in described.json()["examples"][:5]]}).encode()
            for route in ("predict", "explain"):
                answer = requests.post(f"{url}/models/{name}/{route}", data=body, timeout=60,
                                       headers={"content-type": "application/json"})
                assert answer.status_code == 200, answer.text
                assert answer.content == through_the_api(stack, "POST", f"/models/{name}/{route}", body).content
        bad = requests.post(f"{url}/models/penguins/predict", data=b'{"instances": [{"island": 3}]}', timeout=60,
                            headers={"content-type": "application/json"})
        refused = through_the_api(stack, "POST", "/models/penguins/predict", b'{"instances": [{"island": 3}]}')
        assert (bad.status_code, bad.content) == (refused.status_code, refused.content) and bad.status_code == 422
        assert requests.get(f"{url}/openapi.json", timeout=30).json()["paths"].keys() >= {"/models/{name}/predict"}
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert server.returncode in (0, -signal.SIGTERM), output[-3000:]
    left = subprocess.run(["docker", "ps", "-q", "--filter", f"ancestor={lambda_image.RAPID_TAG}"],  # noqa: S607
                          capture_output=True, text=True, check=True).stdout.split()
    assert not left, f"sam local left containers running: {left}"
    assert listening(cloud.port) == {"0100007F"}  # the relay is gone with it
