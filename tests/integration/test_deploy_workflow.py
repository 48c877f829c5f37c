"""The deploy workflow's own commands (build, deploy, smoke test), run against LocalStack.

The workflow's `run:` scripts are executed as written, with the job's env. What
differs from an account: AWS_ENDPOINT_URL points at the local cloud, the template
is template.yaml (LocalStack has no CodeDeploy for the canary that
template.gradual.yaml adds), and the parameters leave out DeploymentType.
The build takes numpy (built without BLAS) from the machine's wheel cache, which
the local deploy before it filled or found.
Not run here: the form's stack (CloudFront is not in LocalStack's community
edition; the test sets FORM_ORIGIN as that step would), publishing the form
into it, and the image build and push (Docker and a registry).
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.integration
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"


def steps(job: str) -> tuple[dict, dict[str, str]]:
    spec = yaml.safe_load(WORKFLOW.read_text())["jobs"][job]
    return spec["env"], {s["id"]: s["run"] for s in spec["steps"] if "id" in s and "run" in s}


def test_the_staging_job_builds_deploys_and_smoke_tests(cloud):
    job_env, scripts = steps("staging")
    assert {"form_stack", "render", "build", "deploy", "smoke", "frontend", "image"} <= set(scripts)
    from infra import deploy

    env = {**deploy.local_env(cloud.endpoint), **job_env}
    env.update(
        TEMPLATE="template.yaml",
        STACK_NAME="tabular-serverless-workflow",
        AWS_REGION="eu-west-1", AWS_DEFAULT_REGION="eu-west-1",  # samconfig's region
        PARAMETERS="StageName=v1 DefaultModel=breast-cancer",  # no DeploymentType: no canary here
        FORM_ORIGIN="http://127.0.0.1:8799",
        # the machine's numpy build, which the local deploy made or found (a runner's is .local/wheels,
        # kept by actions/cache): the workflow's build then compiles nothing a second time
        NUMPY_WHEELS=str(deploy.WHEELS),
        PATH=f"{ROOT / '.local' / 'tools' / 'bin'}{os.pathsep}{os.environ['PATH']}",
    )
    outputs = {}
    for step in ("render", "build", "deploy", "smoke"):
        result = subprocess.run(["bash", "-eo", "pipefail", "-c", scripts[step]], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=900)
        outputs[step] = result.stdout + result.stderr
        assert result.returncode == 0, f"step {step} failed:\n{outputs[step][-4000:]}"
    assert Path(ROOT / "template.gradual.yaml").exists()
    smoke = outputs["smoke"]
    assert "FAIL" not in smoke
    assert "ok   GET /health" in smoke and "POST /predict says no model yet" in smoke
    import boto3

    cfn = boto3.client("cloudformation", endpoint_url=cloud.endpoint, region_name="eu-west-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    stack = cfn.describe_stacks(StackName="tabular-serverless-workflow")["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert parameters["AllowedOrigin"] == "http://127.0.0.1:8799"
