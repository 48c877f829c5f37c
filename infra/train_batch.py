"""`make train-batch`: the training job as AWS Batch runs it in an account, in containers here.

    python -m infra.train_batch [--workers 2] [--trials 4] [--model NAME] [--set key=value ...]

1. the training image (training/Dockerfile, built by infra/training_image.py);
2. PostgreSQL holds the shared Optuna study (infra/postgres.py), as RDS does in an account;
3. the *tune worker* job definition of infra/training-batch.yaml runs as an array job: its
   containers at once, each with its AWS_BATCH_JOB_ARRAY_INDEX, sharing the study;
4. then the *train* job definition, with ``tuning.n_trials=0``: it refits the study's best and
   publishes it to the local stack's bucket, where the API serves it.

The containers get the job definitions' command and environment read from the template (its
``Ref::`` parameters and ``!Ref``s resolved: the study's URL, the stack's bucket, the image), not
restated here. What a ``submit-job`` adds (container overrides: the study's name, the trial count,
settings) is added here, and what the job role gives in an account, credentials, is the local
cloud's placeholders with its endpoint. Containers use the host's network, where LocalStack and
PostgreSQL listen on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from infra import deploy, docker_engine, postgres, templates, training_image
from infra.console import logger

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "training-batch.yaml"
log = logger("train-batch")


def job_definitions(values: dict[str, str]) -> dict[str, dict]:
    """The tune worker's and the train job's container command, environment and parameters,
    read from infra/training-batch.yaml with ``!Ref``s to its parameters resolved from ``values``."""
    template = templates.read(TEMPLATE)

    def resolve(value):
        if isinstance(value, dict) and set(value) == {"Ref"}:
            if value["Ref"] not in values:
                raise SystemExit(f"{TEMPLATE.name}: no local value for !Ref {value['Ref']}")
            return values[value["Ref"]]
        if isinstance(value, dict) and set(value) == {"Sub"}:
            return re.sub(r"\$\{(\w+)\}", lambda match: resolve({"Ref": match[1]}), value["Sub"])
        return value

    definitions = {}
    for kind, logical in (("tune", "TuneWorkerJobDefinition"), ("train", "TrainJobDefinition")):
        properties = template["Resources"][logical]["Properties"]
        container = properties["ContainerProperties"]
        definitions[kind] = {
            "image": resolve(container["Image"]),
            "command": [resolve(word) for word in container["Command"]],
            "environment": {item["Name"]: resolve(item["Value"])
                            for item in container.get("Environment", [])},
            "parameters": {name: resolve(value) for name, value in properties.get("Parameters", {}).items()},
        }
    return definitions


def command_of(definition: dict) -> list[str]:
    """Batch's substitution: ``Ref::name`` in the command becomes the job's parameter ``name``."""
    command = []
    for word in definition["command"]:
        for name, value in definition["parameters"].items():
            word = word.replace(f"Ref::{name}", value)
        command.append(word)
    return command


class Container:
    """One job's container, started; its log shown line by line under its name, its stdout kept."""

    def __init__(self, name: str, definition: dict, overrides: list[str], env: dict[str, str]) -> None:
        self.name = name
        environment = {**definition["environment"], **env}
        argv = [docker_engine.docker(), "run", "--rm", "--name", name, "--network", "host",
                *[a for key, value in environment.items() for a in ("-e", f"{key}={value}")],
                definition["image"], *command_of(definition), *overrides]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
        self.output: list[str] = []
        self.threads = [threading.Thread(target=self._show, daemon=True),
                        threading.Thread(target=lambda: self.output.extend(self.process.stdout), daemon=True)]
        for thread in self.threads:
            thread.start()

    def _show(self) -> None:
        for line in self.process.stderr:
            line = line.rstrip().rpartition("\r")[2]  # tqdm's bars end their updates with \r
            if line:
                print(f"[{self.name}] {line}", file=sys.stderr, flush=True)

    def result(self) -> dict:
        code = self.process.wait()
        for thread in self.threads:
            thread.join()
        if code != 0:
            raise SystemExit(f"{self.name} failed (exit code {code})")
        return json.loads("".join(self.output))


def run(outputs: dict, workers: int = 2, trials: int = 4, model: str = "breast-cancer-batch",
        settings: list[str] | None = None) -> dict:
    """The array of tune workers, then the train job; the train job's summary and the study's trials."""
    image = training_image.build()
    storage = postgres.start()
    definitions = job_definitions({"ImageUri": image, "ModelBucketName": outputs["model_bucket"],
                                   "OptunaStorageUrl": storage})
    study = f"{model}-{int(time.time())}"
    endpoint = outputs["endpoint"]
    account = {**deploy.LOCAL_CREDENTIALS, "AWS_DEFAULT_REGION": deploy.REGION, "AWS_ENDPOINT_URL": endpoint,
               "MLFLOW_S3_ENDPOINT_URL": endpoint}
    shared = ["--set", f"tuning.study_name={study}", "--set", f"model_name={model}"]
    for setting in settings or []:
        shared += ["--set", setting]
    log(f"array job of {workers} tune workers, {trials} trials each, on study {study} (PostgreSQL)")
    started = time.monotonic()
    array = [Container(f"tune-{i}", definitions["tune"], [*shared, "--set", f"tuning.n_trials={trials}"],
                       {**account, "AWS_BATCH_JOB_ARRAY_INDEX": str(i),
                        "AWS_BATCH_JOB_ARRAY_SIZE": str(workers)})
             for i in range(workers)]
    tuned = [container.result() for container in array]
    log(f"tuned in {time.monotonic() - started:.0f} s: {tuned}")
    train = Container("train", definitions["train"], [*shared, "--set", "tuning.n_trials=0"], account)
    summary = train.result()
    log(f"published {model} version {summary.get('version')} in {time.monotonic() - started:.0f} s")
    return {"study": study, "storage": urllib.parse.urlsplit(storage)._replace(netloc="…").geturl(),
            "workers": tuned, "train": summary, "served": served(outputs["api_url"], model)}


def served(api_url: str, model: str) -> dict:
    """What the API says of the model now: its name and version, as `GET /models/{name}` gives them."""
    with urllib.request.urlopen(f"{api_url}/models/{model}", timeout=30) as answer:  # noqa: S310  # nosec B310
        described = json.loads(answer.read())
    return {"name": described["name"], "version": described["version"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=4, help="trials per worker")
    parser.add_argument("--model", default="breast-cancer-batch")
    parser.add_argument("--stack", type=Path, default=deploy.STACK_FILE)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if not args.stack.exists():
        raise SystemExit("no local stack: run `make demo` first")
    outputs = json.loads(args.stack.read_text())
    print(json.dumps(run(outputs, args.workers, args.trials, args.model, args.settings), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
