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
* batch scoring of a BATCH_ROWS-row CSV (1M by default): rows per second and peak memory.
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


def batch_benchmark(s3, env: dict) -> dict:
    """The batch function on a large CSV of breast cancer rows, in a fresh process."""
    from training import data as D

    data = D.load("breast_cancer")
    block = data.X.sample(n=10_000, replace=True, random_state=0).to_csv(index=False)
    header, rows = block.split("\n", 1)
    path = BENCH / "batch-input.csv"
    with open(path, "w") as out:
        out.write(header + "\n")
        for _ in range(BATCH_ROWS // 10_000):
            out.write(rows)
    input_mb = round(path.stat().st_size / 1e6)
    log(f"batch scoring: {BATCH_ROWS} rows ({input_mb} MB CSV)")
    s3.upload_file(str(path), BUCKET, "batch/input/bench.csv")
    function_env = {**env, "MODEL_BUCKET": BUCKET, "DEFAULT_MODEL": "bench-breast-cancer",
                    "POWERTOOLS_METRICS_NAMESPACE": "Bench", "PYTHONPATH": str(PACKAGE),
                    "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(BENCH)}
    result = subprocess.run([str(RUNTIME_PYTHON), str(ROOT / "benchmarks" / "batch_run.py"), BUCKET,
                             "batch/input/bench.csv"], env=function_env, capture_output=True,
                            text=True, timeout=1800, cwd=BENCH)
    if result.returncode != 0:
        raise SystemExit(f"batch scoring failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    head = s3.get_object(Bucket=BUCKET, Key="batch/output/bench.predictions.csv", Range="bytes=0-200")
    if not head["Body"].read().startswith(b"row_id,label,"):
        raise SystemExit("batch scoring wrote no predictions file")
    path.unlink()
    return {"input_mb": input_mb, **measured}


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
        results["batch_scoring"] = batch_benchmark(s3, env)
        print(json.dumps(results, indent=2))
    finally:
        cloud.stop(remove_state=True)


if __name__ == "__main__":
    main()
