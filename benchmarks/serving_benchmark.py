"""`make bench`: the prediction function against a SAM-template-style baseline.

For CatBoost champions trained on breast cancer and on digits, in one run:
* cold start: a fresh process imports the handler, fetches the champion from S3
  (a LocalStack of its own, on loopback) and answers its first /predict event
  through the full handler; median of COLD_RUNS processes. The baseline does the
  same with native CatBoost loaded at module scope (benchmarks/baseline_handler.py).
* warm: single-row /predict p50 and p99, and one request of 1000 rows; beside them, the same
  row through /models/{name}/predict (the cost of routing by name) and /explain with 1 and 10
  rows (SHAP values);
* the cold start of a container whose first request is for a second model (by name);
* the cost of capturing every request for drift monitoring (warm p50 with CaptureRate 1 vs 0);
* the deployment package (the `sam build` output), zipped and unzipped;
* peak memory of the function process;
* batch scoring on the deployed state machine: a BATCH_ROWS-row CSV (1M by default, 0.1 % invalid)
  in BATCH_PARTS parts with 1, 2 and 4 workers at once: wall time per phase, rows per second per
  worker, peak memory per worker, and the row count check.
Prints one JSON document.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "infra"), str(ROOT / "functions"), str(ROOT)]

import deploy  # noqa: E402
import local_cloud  # noqa: E402

BENCH = ROOT / ".local" / "bench"
BASELINE_VENV = BENCH / "baseline-venv"
PACKAGE = ROOT / ".aws-sam" / "build" / "PredictFunction"
RUNTIME_PYTHON = local_cloud.RUNTIMES / "python3.12" / "bin" / "python"
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "11"))
WARM_CALLS = int(os.environ.get("BENCH_WARM_CALLS", "2000"))
BUCKET = "bench-models"
DATASETS = ("breast_cancer", "digits")
CATBOOST_PARAMS = {"depth": 6, "learning_rate": 0.08}
ROUNDS = 500
BATCH_ROWS = int(os.environ.get("BENCH_BATCH_ROWS", "1000000"))
BATCH_PARTS = int(os.environ.get("BENCH_BATCH_PARTS", "8"))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def baseline_python() -> Path:
    python = BASELINE_VENV / "bin" / "python"
    if not python.exists():
        log("creating the baseline's environment (catboost + boto3, as a SAM ML template packs)")
        uv = local_cloud.uv()
        subprocess.run([uv, "venv", "--quiet", "--python", "3.12", str(BASELINE_VENV)], check=True)
        # bytecode compiled, as `pip install` in a SAM template's container image does
        subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python),
                        "catboost==1.2.10", "boto3"], check=True)
    return python


def package_size() -> dict:
    files = [p for p in PACKAGE.rglob("*") if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(PACKAGE))
    return {"unzipped_mb": round(unzipped / 1e6, 1), "zipped_mb": round(len(buffer.getvalue()) / 1e6, 1),
            "files": len(files)}


def train_and_publish(s3, dataset: str) -> dict:
    from serving import bundle

    from training import data as D
    from training import families

    data = D.load(dataset)
    schema = D.infer_schema(data.X)
    fitted = families.fit("catboost", CATBOOST_PARAMS, data.X, data.y, schema, task=data.task, seed=0,
                          threads=2, rounds=ROUNDS)
    name = f"bench-{data.name}"
    manifest = bundle.publish(s3, BUCKET, name, fitted.export(schema), {
        "framework": {"family": "catboost"}, "feature_schema": schema, "classes": fitted.classes,
        "metrics": {}, "examples": []})
    bundle.set_champion(s3, BUCKET, name, manifest["version"], "benchmark")
    native_name, native = fitted.native_file()
    baseline_key = f"baseline/{name}/{native_name}"
    s3.put_object(Bucket=BUCKET, Key=baseline_key, Body=native)
    instances = D.to_instances(data.X.iloc[:1000], schema)
    instances = (instances * (1000 // len(instances) + 1))[:1000]  # breast cancer has 569 rows
    events = {}
    for size, rows, path in (("1", instances[:1], None), ("1000", instances, None),
                             ("named", instances[:1], f"/models/{name}/predict"),
                             ("explain-1", instances[:1], "/explain"),
                             ("explain-10", instances[:10], "/explain")):
        events[size] = event_for(rows, path)
    return {"name": name, "baseline_key": baseline_key, "events": events,
            "trees": ROUNDS, "features": len(schema), "classes": len(fitted.classes)}


def event_for(rows: list, path: str | None = None) -> dict:
    """An API Gateway event posting the rows, to /predict or to ``path``."""
    event = json.loads((ROOT / "events" / "predict.json").read_text())
    event["body"] = json.dumps({"instances": rows})
    event["isBase64Encoded"] = False
    if path:
        event["path"] = event["requestContext"]["path"] = path
        resource = path
        if path.startswith("/models/"):
            name = path.split("/")[2]
            event["pathParameters"] = {"name": name}
            resource = path.replace(f"/{name}", "/{name}", 1)
        event["resource"] = event["requestContext"]["resourcePath"] = resource
    return event


def run_process(python: Path, module: str, pythonpath: Path, env: dict, event_file: Path,
                warm: int = 0, extra: dict[str, Path] | None = None) -> dict:
    args = [str(python), str(ROOT / "benchmarks" / "coldstart.py"), module, str(event_file)]
    if warm:
        args += ["--warm", str(warm)]
    for label, path in (extra or {}).items():  # more events, timed warm after the main one
        args += [f"--also={label}={path}"]
    started = time.perf_counter()
    # Lambda's code folder is read-only: nothing compiled at one start helps the next
    env = {**env, "PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(args, env=env, cwd=BENCH,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"{module} failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["process_ms"] = (time.perf_counter() - started) * 1000
    return measured


def second_model_cold_start(env: dict, models: dict[str, dict]) -> dict:
    """A fresh container whose first request names a model other than the default one."""
    first, second = (models[d] for d in DATASETS)
    event_file = BENCH / "event-second-model.json"
    event = json.loads((BENCH / f"event-{DATASETS[1]}-named.json").read_text())
    event_file.write_text(json.dumps(event))
    function_env = {**env, "MODEL_BUCKET": BUCKET, "DEFAULT_MODEL": first["name"], "MAX_ROWS": "1000",
                    "POWERTOOLS_METRICS_NAMESPACE": "Bench", "AWS_LAMBDA_FUNCTION_NAME": "bench"}
    log(f"second model: {COLD_RUNS} cold starts whose first request is /models/{second['name']}/predict")
    runs = [run_process(RUNTIME_PYTHON, "handlers.api", PACKAGE, function_env, event_file)
            for _ in range(COLD_RUNS)]
    return {"default_model": first["name"], "requested": second["name"], **summarize(runs)}


def summarize(runs: list[dict]) -> dict:
    keys = ("first_response_ms", "import_ms", "process_ms", "cold_peak_rss_mb")
    return {f"cold_{k}_median" if not k.startswith("cold") else f"{k}_median":
            round(statistics.median(r[k] for r in runs), 1) for k in keys}


def batch_benchmark(s3, cloud) -> dict:
    """The batch-scoring state machine on LocalStack: a BATCH_ROWS-row breast-cancer CSV (0.1 % invalid
    rows) cut into BATCH_PARTS parts, scored with 1, 2 and 4 workers at once."""
    from training import data as D

    stack = deploy.deploy_local(cloud.endpoint, stack_file=BENCH / "stack.json")
    model = "bench-breast-cancer"
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"models/{model}/")["Contents"]:
        s3.copy_object(Bucket=stack["model_bucket"], Key=item["Key"],
                       CopySource={"Bucket": BUCKET, "Key": item["Key"]})
    data = D.load("breast_cancer")
    block = data.X.sample(n=10_000, replace=True, random_state=0).to_csv(index=False)
    header, rows = block.split("\n", 1)
    rows = rows.splitlines()
    path = BENCH / "batch-input.csv"
    invalid = 0
    with open(path, "w") as out:
        out.write(header + "\n")
        for copy in range(BATCH_ROWS // len(rows)):
            for i, row in enumerate(rows):
                if (copy * len(rows) + i) % 1000 == 999:  # 0.1 % of the rows: a word where a number goes
                    row = "n/a?," + row.split(",", 1)[1]
                    invalid += 1
                out.write(row + "\n")
    size = path.stat().st_size
    key = f"batch/input/{model}/bench.csv"
    log(f"batch scoring: {BATCH_ROWS} rows ({size / 1e6:.0f} MB, {invalid} invalid) in {BATCH_PARTS} parts")
    # the executions are started with options (parts, workers): the trigger would add one more
    with deploy.batch_trigger_paused(cloud.endpoint, stack["stack_name"]):
        s3.upload_file(str(path), stack["data_bucket"], key)
        path.unlink()
        runs = {workers: run_batch(stack, cloud, key, size, workers, invalid) for workers in (1, 2, 4)}
    one, two, four = runs[1], runs[2], runs[4]
    worker_rate = one["rows_per_s_per_worker_median"]
    return {
        "rows": BATCH_ROWS, "input_mb": round(size / 1e6), "parts": BATCH_PARTS, "invalid_rows": invalid,
        **{f"{w}_workers": run for w, run in runs.items()},
        "speedup_2_workers": round(one["score_s"] / two["score_s"], 2),
        "speedup_4_workers": round(one["score_s"] / four["score_s"], 2),
        "worker_rows_per_s_target": 200_000, "worker_rows_per_s_target_met": worker_rate >= 200_000,
        "note": f"this machine has {os.cpu_count()} cores: more workers than cores share them",
    }


def run_batch(stack: dict, cloud, key: str, size: int, workers: int, invalid: int) -> dict:
    sfn = boto3_client("stepfunctions", cloud.endpoint)
    s3 = boto3_client("s3", cloud.endpoint)
    model = key.split("/")[2]
    started = time.monotonic()
    execution = sfn.start_execution(stateMachineArn=stack["batch_state_machine"], input=json.dumps({
        "detail": {"bucket": {"name": stack["data_bucket"]}, "object": {"key": key}},
        "options": {"part_megabytes": size / BATCH_PARTS / (1 << 20), "concurrency": workers},
    }))["executionArn"]
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        time.sleep(0.2)
    wall = time.monotonic() - started
    if described["status"] != "SUCCEEDED":
        raise SystemExit(f"batch scoring failed: {described.get('cause')}")
    manifest = json.loads(s3.get_object(Bucket=stack["data_bucket"],
                                        Key=f"batch/output/{model}/bench.manifest.json")["Body"].read())
    parts = manifest["parts"]
    phases = phase_seconds(sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"])
    log(f"batch scoring with {workers} workers: {wall:.1f} s")
    return {
        "wall_s": round(wall, 2), **phases,
        "rows_per_s_overall": round(manifest["rows"] / wall),
        "rows_per_s_per_worker_median": round(statistics.median(p["rows"] / p["seconds"] for p in parts)),
        "peak_rss_mb_per_worker_max": max(p["peak_rss_mb"] for p in parts),
        "rows": manifest["rows"], "predicted": manifest["predicted"], "invalid": manifest["invalid"],
        "count_check": manifest["rows"] == manifest["predicted"] + manifest["invalid"] == BATCH_ROWS
        and manifest["invalid"] == invalid,
    }


def phase_seconds(events: list[dict]) -> dict:
    """How long each state of the execution took: plan, count rows, score parts, assemble."""
    entered, seconds = {}, {}
    for event in events:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if not details:
            continue
        name = details["name"]
        if event["type"].endswith("StateEntered"):
            entered[name] = event["timestamp"]
        elif name in entered:
            seconds[name] = (event["timestamp"] - entered[name]).total_seconds()
    names = {"Plan": "plan_s", "CountRows": "count_s", "ScoreParts": "score_s", "Assemble": "assemble_s"}
    return {label: round(seconds.get(state, 0.0), 2) for state, label in names.items()}


def boto3_client(service: str, endpoint: str):
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=deploy.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=deploy.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def main() -> None:
    BENCH.mkdir(parents=True, exist_ok=True)
    local_cloud.install()
    cloud = local_cloud.Instance(port=int(os.environ.get("BENCH_LOCALSTACK_PORT", "4568")),
                                 state_dir=BENCH / "cloud")
    cloud.stop(remove_state=True)
    cloud.start()
    try:
        env = deploy.local_env(cloud.endpoint)
        deploy.build(env)
        baseline = baseline_python()
        import boto3

        s3 = boto3.client("s3", endpoint_url=cloud.endpoint, region_name="us-east-1",
                          aws_access_key_id=deploy.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=deploy.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=BUCKET)
        results = {"package": package_size(), "cold_runs": COLD_RUNS, "warm_calls": WARM_CALLS,
                   "datasets": {}}
        models: dict[str, dict] = {}
        for dataset in DATASETS:
            log(f"{dataset}: training a {ROUNDS}-tree CatBoost champion and publishing it")
            model = train_and_publish(s3, dataset)
            for size, event in model["events"].items():
                suffix = "" if size == "1" else f"-{size}"
                (BENCH / f"event-{dataset}{suffix}.json").write_text(json.dumps(event))
            event_file = BENCH / f"event-{dataset}.json"
            extra = {label: BENCH / f"event-{dataset}-{label}.json"
                     for label in ("named", "explain-1", "explain-10")}
            models[dataset] = model
            function_env = {**env, "MODEL_BUCKET": BUCKET, "DEFAULT_MODEL": model["name"],
                            "BASELINE_MODEL_KEY": model["baseline_key"], "MAX_ROWS": "1000",
                            "POWERTOOLS_METRICS_NAMESPACE": "Bench", "AWS_LAMBDA_FUNCTION_NAME": "bench"}
            entry = {k: model[k] for k in ("trees", "features", "classes")}
            for label, python, module, path in (
                ("ours", RUNTIME_PYTHON, "handlers.api", PACKAGE),
                ("baseline", baseline, "baseline_handler", ROOT / "benchmarks"),
            ):
                log(f"{dataset}: {label}: {COLD_RUNS} cold starts, then warm calls")
                cold = [run_process(python, module, path, function_env, event_file)
                        for _ in range(COLD_RUNS)]
                warm = run_process(python, module, path, function_env, event_file, warm=WARM_CALLS,
                                   extra=extra if label == "ours" else None)
                entry[label] = {**summarize(cold),
                                **{k: round(v, 1) for k, v in warm.items() if k.startswith(("warm", "peak"))}}
            ours = entry["ours"]
            log(f"{dataset}: ours with every request captured (CaptureRate 1)")
            captured = run_process(RUNTIME_PYTHON, "handlers.api", PACKAGE,
                                   {**function_env, "CAPTURE_RATE": "1", "CAPTURE_FLUSH_ROWS": "1000"},
                                   event_file, warm=WARM_CALLS)
            ours["warm_single_p50_us_with_capture"] = round(captured["warm_single_p50_us"], 1)
            capture_cost = captured["warm_single_p50_us"] - ours["warm_single_p50_us"]
            ours["capture_overhead_p50_us"] = round(capture_cost, 1)
            ours["capture_overhead_target_us"] = 100
            ours["capture_overhead_target_met"] = ours["capture_overhead_p50_us"] <= 100
            overhead = round(ours["warm_named_p50_us"] - ours["warm_single_p50_us"], 1)
            ours["routing_by_name_overhead_p50_us"] = overhead
            ours["routing_by_name_target_us"] = 20
            ours["routing_by_name_target_met"] = ours["routing_by_name_overhead_p50_us"] < 20
            ours, base = entry["ours"], entry["baseline"]
            entry["ratios_ours_over_baseline"] = {
                key: round(ours[key] / base[key], 3)
                for key in ("cold_first_response_ms_median", "cold_process_ms_median",
                            "warm_single_p50_us", "warm_1000_rows_median_ms", "peak_rss_mb")
            }
            results["datasets"][dataset] = entry
        results["second_model_cold_start"] = second_model_cold_start(env, models)
        results["batch_scoring"] = batch_benchmark(s3, cloud)
        print(json.dumps(results, indent=2))
    finally:
        cloud.stop(remove_state=True)


if __name__ == "__main__":
    main()
