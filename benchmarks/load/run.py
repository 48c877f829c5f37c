"""`make load`: the demo's API under load through API Gateway, a champion promoted every 30 s.

    make demo && make load                  # 64 clients, 10 minutes
    make load ARGS="--clients 16 --minutes 2"

Locust (in its own environment, .local/tools/locust: its gevent pins are not the project's)
drives ``benchmarks/load/locustfile.py`` against ``.local/demo.json``'s API with its key: every
served model, predictions and explanations. Meanwhile this script promotes, every 30 s, one
model's other version (a copy of its champion published once as a second version when it has
only one), so containers swap models under load, and counts the function's execution
environments (the local executor's processes). Prints one JSON document (throughput, p50, p99,
statuses, environments) and writes it to benchmarks/results/<date>-<commit>-load.json; exits
non-zero if any answer was not 200 or 429.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from serving.store import bundles

from benchmarks import machine
from benchmarks.results import path_for, run_info
from infra import local_cloud
from infra.console import logger

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".local" / "tools" / "locust"
LOCUST = "locust==2.47.0"
WORK = ROOT / ".local" / "load"
log = logger("load")


def install() -> Path:
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == LOCUST:
        return VENV / "bin" / "locust"
    log(f"installing {LOCUST} into {VENV.relative_to(ROOT)}")
    local_cloud.run(local_cloud.uv(), "venv", "--quiet", "--allow-existing", "--python", "3.12", str(VENV))
    local_cloud.run(local_cloud.uv(), "pip", "install", "--quiet", "--python", str(VENV / "bin" / "python"),
                    LOCUST)
    stamp.write_text(LOCUST)
    return VENV / "bin" / "locust"


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  # nosec B310 - the local API
        return json.loads(response.read())


def served_models(api_url: str) -> list[dict]:
    """Every served model with a few of its example rows."""
    models = []
    for listed in get(f"{api_url}/models")["models"]:
        described = get(f"{api_url}/models/{listed['name']}")
        instances = [example["instance"] for example in described.get("examples", [])][:3]
        if instances:
            models.append({"name": listed["name"], "instances": instances})
    return models


def two_versions(s3, bucket: str, name: str) -> list[int]:
    """The model's versions; when it has one, its champion is published again as a second."""
    versions = bundles.list_versions(s3, bucket, name)
    if len(versions) >= 2:
        return versions[-2:]
    loaded = bundles.load_champion(s3, bucket, name)
    fields = {k: v for k, v in loaded.manifest.items()
              if k not in ("format_version", "name", "version", "created_at", "task", "files")}
    extra = {file: bundles.read_file(s3, bucket, loaded.manifest, file)
             for file in loaded.manifest["files"] if file != bundles.MODEL_FILE}
    copy = bundles.publish(s3, bucket, name, loaded.arrays, fields, extra_files=extra)
    log(f"{name}: published its champion again as version {copy['version']}, to promote in turn")
    return [versions[-1], copy["version"]]


def promote_in_turn(s3, bucket: str, versions: dict[str, list[int]], every: float, stop: threading.Event,
                    promotions: list) -> None:
    turn = 0
    while not stop.wait(every):
        name = sorted(versions)[turn % len(versions)]
        version = versions[name][(turn // len(versions) + 1) % 2]
        bundles.set_champion(s3, bucket, name, version, "make load")
        promotions.append({"at_s": round(time.monotonic() - started, 1), "model": name, "version": version})
        turn += 1


def count_environments(function: str, stop: threading.Event, seen: list) -> None:
    while not stop.wait(1.0):
        count = 0
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                variables = (entry / "environ").read_bytes().split(b"\0")
                count += f"AWS_LAMBDA_FUNCTION_NAME={function}".encode() in variables
        seen.append(count)


def aggregated(stats_csv: Path) -> dict:
    with stats_csv.open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]

    def figures(row: dict) -> dict:
        return {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "requests_per_s": round(float(row["Requests/s"]), 1), "p50_ms": float(row["50%"]),
                "p99_ms": float(row["99%"]), "max_ms": round(float(row["Max Response Time"]), 1)}

    routes = {name: figures(row) for name, row in rows.items() if name != "Aggregated"}
    return {"all": figures(total), **routes}


started = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    global started
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--promote-every", type=float, default=30.0, help="seconds between promotions")
    args = parser.parse_args(argv)
    demo_file = ROOT / ".local" / "demo.json"
    if not demo_file.exists():
        sys.exit("no local stack: run `make demo` first")
    demo = json.loads(demo_file.read_text())
    from infra import deploy

    stack = json.loads(deploy.STACK_FILE.read_text())
    locust = install()
    models = served_models(demo["api_url"])
    if not models:
        sys.exit("no model is served: `make demo` trains and promotes the demo's models")
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack["endpoint"], region_name="us-east-1",
                      **{k.lower(): v for k, v in deploy.LOCAL_CREDENTIALS.items()})
    versions = {m["name"]: two_versions(s3, demo["model_bucket"], m["name"]) for m in models}
    WORK.mkdir(parents=True, exist_ok=True)
    statuses_file = WORK / "statuses.json"
    statuses_file.unlink(missing_ok=True)
    env = {**os.environ, "LOAD_MODELS": json.dumps(models), "LOAD_API_KEY": demo["api_key"],
           "LOAD_STATUSES_FILE": str(statuses_file)}
    stop, promotions, environments = threading.Event(), [], []
    function = stack["function_name"]
    promoting = (s3, demo["model_bucket"], versions, args.promote_every, stop, promotions)
    threads = [threading.Thread(target=promote_in_turn, args=promoting, daemon=True),
               threading.Thread(target=count_environments, args=(function, stop, environments), daemon=True)]
    log(f"{args.clients} clients for {args.minutes:g} min on {', '.join(versions)}; a promotion every "
        f"{args.promote_every:g} s")
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        subprocess.run(  # noqa: S603 - fixed argv
            [str(locust), "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
             "--users", str(args.clients), "--spawn-rate", str(max(1, args.clients // 8)),
             "--run-time", f"{int(args.minutes * 60)}s", "--host", demo["api_url"],
             "--csv", str(WORK / "locust"), "--only-summary", "--loglevel", "WARNING",
             "--exit-code-on-error", "0"],
            env=env, check=True)
    finally:
        stop.set()
    statuses = json.loads(statuses_file.read_text())
    unexpected = {status: n for status, n in statuses.items() if status not in ("200", "429")}
    document = {
        "kind": "load",
        "run": run_info({"clients": args.clients, "minutes": args.minutes,
                         "promote_every_s": args.promote_every, "models": sorted(versions)}),
        "machine": machine.describe(),
        "statuses": statuses,
        "unexpected_statuses": unexpected,
        "latency": aggregated(WORK / "locust_stats.csv"),
        "promotions": len(promotions),
        "environments": {"max": max(environments, default=0),
                         "median": sorted(environments)[len(environments) // 2] if environments else 0},
    }
    path = path_for(document)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    if unexpected:
        log(f"answers other than 200 and 429: {unexpected}")
        return 1
    log(f"every answer 200 or 429; written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
