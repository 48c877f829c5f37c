"""`make drift`: run the drift function of the local stack now and print what it found (JSON).

It invokes the same function the schedule runs (template.yaml: DriftFunction), synchronously,
with ``{"model": name, "since": ISO time}`` when given (every model, last 24 hours, otherwise).

    python -m infra.drift_check [--model NAME] [--since 2026-11-26T10:00:00+00:00]
"""

from __future__ import annotations

import argparse
import json

from infra import deploy


def run(stack: dict, payload: dict) -> dict:
    """The drift function's answer for ``payload``, invoked on the stack's local cloud."""
    import boto3

    lam = boto3.client("lambda", endpoint_url=stack["endpoint"], region_name=deploy.REGION,
                       aws_access_key_id=deploy.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=deploy.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    response = lam.invoke(FunctionName=stack["drift_function_name"], Payload=json.dumps(payload).encode())
    answer = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise SystemExit(f"the drift function failed: {answer}")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--since")
    args = parser.parse_args()
    if not deploy.STACK_FILE.exists():
        raise SystemExit("no local stack: run `make demo` first")
    stack = json.loads(deploy.STACK_FILE.read_text())
    payload = {k: v for k, v in (("model", args.model), ("since", args.since)) if v}
    print(json.dumps(run(stack, payload), indent=2))


if __name__ == "__main__":
    main()
