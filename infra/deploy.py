"""Build and deploy template.yaml with the SAM CLI, to LocalStack or to an account.

    python -m infra.deploy local     # sam build + sam deploy to LocalStack, writes .local/stack.json
    python -m infra.deploy outputs   # print the local stack's outputs

The artifact ``sam build`` produces is the one deployed: the same template and
the same package an account gets, with parameters for the local cloud. Against
LocalStack the SAM CLI is pointed at it through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
BUILDS = ROOT / ".aws-sam"  # build/: what an account gets, and the package test reads; cache/: SAM's
DEMO_BUILDS = BUILDS / "demo"  # the same for the demo, which does not wait for a numpy build
STACK_FILE = LOCAL / "stack.json"
# numpy built without BLAS (functions/build_numpy.sh), kept with the user's caches: every clone of
# the project on this machine, and a demo after a test run, reuse it
WHEELS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tabular-serverless" / "wheels"
STACK_NAME = os.environ.get("STACK_NAME", "tabular-serverless")
REGION = "us-east-1"
ARTIFACTS_BUCKET = "sam-artifacts-local"
FORM_ORIGIN = os.environ.get("FORM_ORIGIN", "http://127.0.0.1:8765")


log = logger("deploy")


# LocalStack accepts any credentials; these are placeholders, not secrets.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}  # noqa: S105  # nosec B105


def local_env(endpoint: str) -> dict[str, str]:
    """The environment of any AWS client that talks to the local cloud."""
    env = dict(os.environ)
    env.update(LOCAL_CREDENTIALS)
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        SAM_CLI_TELEMETRY="0",
    )
    return env


def sam() -> str:
    """The SAM CLI of `make install` (its own environment), or $SAM_CLI."""
    path = Path(os.environ.get("SAM_CLI") or ROOT / ".local" / "tools" / "sam" / "bin" / "sam")
    if not path.exists():
        raise SystemExit(f"the SAM CLI is not installed at {path}: run `make install`")
    return str(path)


def build(env: dict[str, str], quick: bool = False, builds: Path | None = None) -> Path:
    """``sam build`` of template.yaml; the folder of the built template.

    ``quick``: the package takes the numpy built without BLAS only when it is cached already,
    else numpy's own wheel (about 8 MB bigger zipped, the same answers): a first start does not
    wait minutes for a compile. Its build has its own folder, so that the package an account
    gets (and the package test reads) is never the quick one.
    """
    from infra import local_cloud

    builds = builds or (DEMO_BUILDS if quick else BUILDS)  # the tests' workers: one folder each
    log("sam build (functions/Makefile: Linux wheels for python3.12, precompiled)")
    # the function build (functions/Makefile) needs uv and a Python 3.12: ours
    env = {**env, "UV": local_cloud.uv(), "PYTHON": sys.executable,
           "NUMPY_WHEELS": str(Path(env.get("NUMPY_WHEELS") or WHEELS).resolve()),
           "NUMPY_BUILD": "cached" if quick else "always"}
    started = time.monotonic()
    builds.mkdir(parents=True, exist_ok=True)
    # one build at a time in a folder (two test workers, or `make demo` beside `make test`): the
    # second waits, and its cached build takes seconds
    with open(builds / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(  # noqa: S603
            [sam(), "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir",
             str(builds / "build"), "--cached", "--cache-dir", str(builds / "cache")],
            check=True, cwd=ROOT, env=env, stdout=sys.stderr,
        )
    log(f"built in {time.monotonic() - started:.1f} s")
    return builds / "build"


def deploy_local(
    endpoint: str,
    stack_file: Path = STACK_FILE,
    origin: str = FORM_ORIGIN,
    parameters: dict[str, str] | None = None,
    quick: bool = False,
    issuer=None,
    builds: Path | None = None,
) -> dict[str, str]:
    """``issuer``: the local sign-in (infra/local_issuer.py) whose tokens the console's routes accept;
    its default instance (port 4569) when not given. It is started if it is not running."""
    import boto3

    from infra import local_issuer

    pool = (issuer or local_issuer.Instance()).start()
    env = local_env(endpoint)
    built = build(env, quick, builds)
    session = boto3.Session(region_name=REGION,
                            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    overrides = {"AllowedOrigin": origin, **pool.parameters(), **(parameters or {})}
    function = _predict_function(session, endpoint)
    if function:  # an update: LocalStack's alias bug, worked around (localstack/localstack#13351)
        _drop_alias(session, endpoint, function)
    log(f"sam deploy → stack {STACK_NAME} on the local cloud (CloudFormation)")
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603
        [sam(), "deploy", "--template-file", str(built / "template.yaml"),
         "--stack-name", STACK_NAME, "--s3-bucket", ARTIFACTS_BUCKET, "--region", REGION,
         "--capabilities", "CAPABILITY_IAM", "--no-confirm-changeset",
         "--no-fail-on-empty-changeset", "--no-progressbar",
         "--parameter-overrides", *[f"{k}={v}" for k, v in overrides.items()]],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        if function:  # the alias dropped above: the API keeps answering with the code it had
            _ensure_alias(session, endpoint, function)
        raise SystemExit(f"sam deploy failed ({result.returncode})")
    log(f"deployed in {time.monotonic() - started:.1f} s")
    outputs = {**stack_outputs(session, endpoint, origin), "auth": {**pool.config(), "pool_id": pool.pool_id},
               "built": str(built)}  # the built template and packages, as sam deploy read them
    _ensure_alias(session, endpoint, outputs["function_name"])
    stack_file.parent.mkdir(parents=True, exist_ok=True)
    stack_file.write_text(json.dumps(outputs, indent=2))
    return outputs


# LocalStack 4.9.2 updates a stack whose function has an AutoPublishAlias by creating the alias
# anew (which fails: it exists) and, when that is avoided, by deleting it afterwards, so the API,
# whose integration names the alias, answers 502 (localstack/localstack#13351). Locally, then, an
# update drops the alias first and puts it back on the newest version after; an account's
# CloudFormation updates the alias in place.
ALIAS = "live"


def _predict_function(session, endpoint: str) -> str | None:
    cfn = session.client("cloudformation", endpoint_url=endpoint)
    try:
        resource = cfn.describe_stack_resource(StackName=STACK_NAME, LogicalResourceId="PredictFunction")
    except cfn.exceptions.ClientError:
        return None  # no stack yet: a create
    return resource["StackResourceDetail"].get("PhysicalResourceId")


def _drop_alias(session, endpoint: str, function: str) -> None:
    functions = session.client("lambda", endpoint_url=endpoint)
    with contextlib.suppress(functions.exceptions.ResourceNotFoundException):
        functions.delete_alias(FunctionName=function, Name=ALIAS)


def _ensure_alias(session, endpoint: str, function: str) -> None:
    functions = session.client("lambda", endpoint_url=endpoint)
    names = [alias["Name"] for alias in functions.list_aliases(FunctionName=function)["Aliases"]]
    if ALIAS in names:
        return
    version = functions.publish_version(FunctionName=function)["Version"]
    functions.create_alias(FunctionName=function, Name=ALIAS, FunctionVersion=version)
    log(f"alias {ALIAS} put back on version {version} of the predict function (LocalStack #13351)")


def stack_outputs(session, endpoint: str, origin: str) -> dict[str, str]:
    cfn = session.client("cloudformation", endpoint_url=endpoint)
    stack = cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    apigw = session.client("apigateway", endpoint_url=endpoint)
    key = apigw.get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)
    return {
        "stack_name": STACK_NAME,
        "endpoint": endpoint,
        # LocalStack serves a REST API stage at this path (no DNS for execute-api hosts)
        "api_url": f"{endpoint}/_aws/execute-api/{outputs['ApiId']}/{outputs['ApiStage']}",
        "api_key": key["value"],
        "api_id": outputs["ApiId"],
        "model_bucket": outputs["ModelBucketName"],
        "data_bucket": outputs["DataBucketName"],
        "function_name": outputs["PredictFunctionName"],
        "drift_function_name": outputs["DriftFunctionName"],
        "batch_state_machine": outputs["BatchStateMachineArn"],
        "console_function_name": outputs["ConsoleFunctionName"],
        "allowed_origin": origin,
    }


@contextlib.contextmanager
def batch_trigger_paused(endpoint: str, stack_name: str = STACK_NAME):
    """Files dropped meanwhile start no batch-scoring execution: for runs started by hand with options
    (parts, workers), which would otherwise run twice. The rule's target is removed and put back
    (LocalStack 4.9 still delivers to a disabled rule)."""
    import boto3

    session = boto3.Session(region_name=REGION,
                            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    rule = session.client("cloudformation", endpoint_url=endpoint).describe_stack_resource(
        StackName=stack_name, LogicalResourceId="BatchScoringStateMachineFileDropped",
    )["StackResourceDetail"]["PhysicalResourceId"]
    events = session.client("events", endpoint_url=endpoint)
    targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    events.remove_targets(Rule=rule, Ids=[target["Id"] for target in targets])
    try:
        yield
    finally:
        events.put_targets(Rule=rule, Targets=targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["local", "outputs"])
    args = parser.parse_args()
    if args.target == "local":
        from infra.local_cloud import Instance

        print(json.dumps(deploy_local(Instance().endpoint), indent=2))
    else:
        print(STACK_FILE.read_text())


if __name__ == "__main__":
    main()
