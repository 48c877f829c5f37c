"""The GitHub workflows: nothing reaches an account unless the tests of the same commit passed."""

import yaml

from tests.unit.fakes import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    spec = yaml.safe_load((WORKFLOWS / name).read_text())
    spec["on"] = spec.pop(True, spec.get("on"))  # YAML 1.1 reads a bare `on` as true
    return spec


def needs(job: dict) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def test_every_deploy_job_needs_the_test_job_of_its_own_run():
    deploy = load("deploy.yml")
    jobs = deploy["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"

    def upstream(name: str) -> set[str]:
        found = set()
        for parent in needs(jobs[name]):
            found |= {parent} | upstream(parent)
        return found

    deploying = [name for name, job in jobs.items() if "environment" in job]
    assert set(deploying) == {"staging", "production"}
    for name in deploying:
        assert "test" in upstream(name), f"{name} deploys without waiting for the tests"


def test_the_called_test_job_runs_the_readmes_test_command():
    ci = load("ci.yml")
    assert "workflow_call" in ci["on"] and "pull_request" in ci["on"]
    runs = [step.get("run") for step in ci["jobs"]["test"]["steps"]]
    assert "make test" in runs
    # pushes are tested by deploy.yml's call: a push trigger here would run the tests twice
    assert "push" not in ci["on"]
