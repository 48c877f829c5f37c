"""Smoke-test a deployed stack: health, model, OpenAPI, one prediction with the key.

    python -m infra.smoke STACK_NAME [--require-model]

Reads the stack's outputs (API URL, API key id) and the key's value; uses the
environment's AWS credentials (AWS_ENDPOINT_URL for LocalStack). Without a
champion yet (a first deploy, before training), /health and /predict must say so
with a 503; --require-model makes that a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def call(url: str, body: dict | None = None, key: str | None = None) -> tuple[int, dict]:
    headers = {"content-type": "application/json"}
    if key:
        headers["x-api-key"] = key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers,  # noqa: S310
                                     method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text or b"{}")
        except ValueError:
            return error.code, {"raw": text.decode(errors="replace")}


def api_url(outputs: dict[str, str]) -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:  # LocalStack serves REST API stages under this path
        return f"{endpoint}/_aws/execute-api/{outputs['ApiId']}/{outputs['ApiStage']}"
    return outputs["ApiUrl"].rstrip("/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("--require-model", action="store_true")
    args = parser.parse_args()
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    apigateway = boto3.client("apigateway")
    key = apigateway.get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    url = api_url(outputs)
    failures = []

    def check(name: str, ok: bool, detail) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            failures.append(name)

    status, health = call(f"{url}/health")
    serving = status == 200
    check("GET /health", status == 200 or (status == 503 and not args.require_model and
                                            health.get("reason")), f"{status} {health}")
    status, document = call(f"{url}/openapi.json")
    check("GET /openapi.json", status == 200 and "/predict" in document.get("paths", {}), status)
    status, body = call(f"{url}/predict", {"instances": [{}]})
    check("POST /predict without a key is refused", status == 403, status)
    if serving:
        status, model = call(f"{url}/model")
        check("GET /model", status == 200 and model.get("feature_schema"),
              f"{status} v{model.get('version')}")
        example = model["examples"][0]["instance"]
        status, body = call(f"{url}/predict", {"instances": [example]}, key)
        probabilities = body.get("predictions", [{}])[0].get("probabilities", {})
        check("POST /predict", status == 200 and abs(sum(probabilities.values()) - 1) < 1e-9,
              f"{status} {body.get('predictions')}")
    else:
        status, body = call(f"{url}/predict", {"instances": [{}]}, key)
        check("POST /predict says no model yet", status == 503, f"{status} {body}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
