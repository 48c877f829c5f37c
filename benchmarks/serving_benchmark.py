"""`make bench`: the prediction function against native baselines measured in the same run.

For CatBoost champions trained on breast cancer and on digits, in one run:
* cold start: a fresh process imports the handler, fetches the champion from S3
  (a LocalStack of its own, on loopback) and answers its first /predict event
  through the full handler; median of COLD_RUNS processes. The baseline does the
  same with native CatBoost loaded at module scope (benchmarks/baseline_handler.py),
  its cold starts alternating with ours;
* warm: single-row /predict p50 and p99, and one request of 1000 rows, in WARM_ROUNDS processes
  each, ours and the baseline alternately; beside them, the same row through
  /models/{name}/predict (the cost of routing by name) and /explain with 1 and 10 rows (SHAP values);
* the cold start of a container whose first request is for a second model (by name; its default
  model is loaded at init, as in any container);
* the cost of capturing every request for drift monitoring (warm p50 with CaptureRate 1 vs 0);
* the deployment package (the `sam build` output), zipped and unzipped;
* peak memory of the function process;
* the floor: a hello-world handler's cold start, timed the same way; and where a warm answer's time
  goes (JSON alone, validation alone, the evaluator alone, the answer without logging and metrics);
* the cost curve: warm latency against rows per request (1, 10, 100, 1000) and against model size
  (100, 500, 2000 trees; depth 4, 6, 8) for both layouts (CatBoost's oblivious trees, LightGBM's
  node table), the cold start against bundle size, and the memory of a container as it loads the
  models one by one (up to more than MaxModelsInMemory); as JSON and as a picture
  (.local/bench/serving-scaling.png);
* batch scoring on the deployed state machine: a BATCH_ROWS-row CSV (1M by default, 0.1 % invalid)
  in BATCH_PARTS parts with one worker, BATCH_ROUNDS times, alternating with the baseline a user
  would run on one worker instead (benchmarks/batch_baseline.py: pandas or pyarrow reading the same
  CSV, then native CatBoost); then 2 and 4 workers at once: wall time per phase, rows per second
  per worker, peak memory per worker, and the row count check;
* the machine (CPU, cores, memory, versions) and calibration figures of its speed.
Every target is a ratio, ours / baseline, or a figure no machine changes (benchmarks/results.py).
Writes benchmarks/results/<date>-<commit>.json, prints it, renders docs/benchmark-results.md,
prints the targets; exits 1 when one does not hold. BENCH_ONLY=serving,curve,batch runs only the
named sections.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from benchmarks import machine
from benchmarks.results import bound_target, finish, ratio_target, run_info
from infra import deploy, local_cloud

ROOT = Path(__file__).resolve().parent.parent

BENCH = ROOT / ".local" / "bench"
BASELINE_VENV = BENCH / "baseline-venv"
PACKAGE = ROOT / ".aws-sam" / "build" / "PredictFunction"
RUNTIME_PYTHON = local_cloud.RUNTIMES / "python3.12" / "bin" / "python"
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "11"))
WARM_CALLS = int(os.environ.get("BENCH_WARM_CALLS", "2000"))
WARM_ROUNDS = int(os.environ.get("BENCH_WARM_ROUNDS", "5"))
BUCKET = "bench-models"
DATASETS = ("breast_cancer", "digits")
CATBOOST_PARAMS = {"depth": 6, "learning_rate": 0.08}
ROUNDS = 500
BATCH_ROWS = int(os.environ.get("BENCH_BATCH_ROWS", "1000000"))
BATCH_PARTS = int(os.environ.get("BENCH_BATCH_PARTS", "8"))
BATCH_ROUNDS = int(os.environ.get("BENCH_BATCH_ROUNDS", "3"))
BATCH_READERS = ("pandas", "pyarrow")
ALL_SECTIONS = "serving,curve,batch,memory"
SECTIONS = set(os.environ.get("BENCH_ONLY", ALL_SECTIONS).split(","))
# a run of some sections only is kept apart: the docs' page shows the newest whole run
KIND = "serving" if set(ALL_SECTIONS.split(",")) <= SECTIONS else "serving-partial"
SOAK_REQUESTS = int(os.environ.get("BENCH_SOAK_REQUESTS", "100000"))
SOAK_BAR = 5.0  # MB a warm container's memory may grow over the soak, after its warm-up
CURVE_ROWS = (1, 10, 100, 1000)
CURVE_TREES = (100, 500, 2000)
CURVE_DEPTHS = (4, 6, 8)
CURVE_DATA_ROWS = 5000  # a synthetic table big enough for LightGBM to grow full trees of depth 8
EXACT = 1e-12
# the targets, ours / the native baseline in the same run
COLD_BAR = "<= 0.2"  # cold start, first answer
WARM_BAR = "<= 0.5"  # warm single row, p50
ROWS_1000_BAR = "<= 0.25"  # one request of 1000 rows
BATCH_BAR = ">= 1.0"  # rows per second per worker (a throughput: higher is better)
PACKAGE_BAR = "<= 12"  # MB zipped: the same on every machine


def template_tunables() -> dict[str, str]:
    """The process settings template.yaml gives every function (glibc's malloc tunables): the
    benchmark's function processes, ours and the baseline's, run with them as Lambda would."""
    found = re.search(r"^ +GLIBC_TUNABLES: (\S+)$", (ROOT / "template.yaml").read_text(), re.MULTILINE)
    if not found:
        raise SystemExit("template.yaml no longer sets GLIBC_TUNABLES: update the benchmark")
    return {"GLIBC_TUNABLES": found.group(1)}


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
    from serving.store import bundles

    from training import data as D
    from training import families
    from training.export import check_exactness

    data = D.load(dataset)
    schema = D.infer_schema(data.X)
    fitted = families.fit("catboost", CATBOOST_PARAMS, data.X, data.y, schema, task=data.task, seed=0,
                          threads=2, rounds=ROUNDS)
    name = f"bench-{data.name}"
    arrays = fitted.export(schema)
    exactness = check_exactness(arrays, D.to_matrix(data.X, schema), fitted.predict(data.X, schema))
    manifest = bundles.publish(s3, BUCKET, name, arrays, {
        "framework": {"family": "catboost"}, "feature_schema": schema, "classes": fitted.classes,
        "metrics": {}, "examples": []})
    bundles.set_champion(s3, BUCKET, name, manifest["version"], "benchmark")
    native_name, native = fitted.native_file()
    baseline_key = f"baseline/{name}/{native_name}"
    s3.put_object(Bucket=BUCKET, Key=baseline_key, Body=native)
    native_file = BENCH / f"native-{name}-{native_name}"  # the batch baseline reads it from disk
    native_file.write_bytes(native)
    instances = D.to_instances(data.X.iloc[:1000], schema)
    instances = (instances * (1000 // len(instances) + 1))[:1000]  # breast cancer has 569 rows
    events = {}
    names = [f["name"] for f in schema]
    events["1000-features"] = event_for([[row[n] for n in names] for row in instances], form="features")
    for size, rows, path in (("1", instances[:1], None), ("1000", instances, None),
                             ("named", instances[:1], f"/models/{name}/predict"),
                             ("explain-1", instances[:1], "/explain"),
                             ("explain-10", instances[:10], "/explain")):
        events[size] = event_for(rows, path)
    return {"name": name, "baseline_key": baseline_key, "native_file": native_file, "events": events,
            "exactness_max_abs_diff": exactness,
            "trees": ROUNDS, "features": len(schema), "classes": len(fitted.classes)}


def event_for(rows: list, path: str | None = None, form: str = "instances") -> dict:
    """An API Gateway event posting the rows, to /predict or to ``path``: objects by feature name
    (``instances``), or arrays in schema order (``features``)."""
    event = json.loads((ROOT / "events" / "predict.json").read_text())
    event["body"] = json.dumps({form: rows})
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
                warm: int = 0, extra: dict[str, Path] | None = None, floors: bool = False) -> dict:
    args = [str(python), str(ROOT / "benchmarks" / "coldstart.py"), module, str(event_file)]
    if warm:
        args += ["--warm", str(warm)]
    if floors:
        args += ["--floors"]
    for label, path in (extra or {}).items():  # more events, timed warm after the main one
        args += [f"--also={label}={path}"]
    started = time.perf_counter()
    # Lambda's code folder is read-only: nothing compiled at one start helps the next
    env = {**env, **template_tunables(), "PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}
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


def summarize_warm(runs: list[dict]) -> dict:
    """The median over the warm processes of each figure they measured; the main ones per process too."""
    keys = sorted({k for run in runs for k in run if k.startswith(("warm", "peak", "floor"))})
    digits = {True: 2, False: 1}  # ms to 2 decimals (1000 rows take a few), µs and MB to 1
    summary = {k: round(statistics.median(r[k] for r in runs if k in r), digits[k.endswith("_ms")])
               for k in keys}
    for key in ("warm_single_p50_us", "warm_1000_rows_median_ms"):
        summary[f"{key}_per_process"] = [round(r[key], digits[key.endswith("_ms")]) for r in runs]
    return summary


def batch_benchmark(s3, cloud, native_file: Path) -> dict:
    """The batch-scoring state machine on LocalStack: a BATCH_ROWS-row breast-cancer CSV (0.1 % invalid
    rows) cut into BATCH_PARTS parts, scored by one worker BATCH_ROUNDS times, each time followed by
    the baseline on the same CSV (one process per reader); then with 2 and 4 workers at once."""
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
    ours: list[dict] = []
    baseline: dict[str, list[dict]] = {reader: [] for reader in BATCH_READERS}
    # the executions are started with options (parts, workers): the trigger would add one more
    with deploy.batch_trigger_paused(cloud.endpoint, stack["stack_name"]):
        s3.upload_file(str(path), stack["data_bucket"], key)
        log(f"batch scoring: {BATCH_ROUNDS} rounds of one worker, then the baseline "
            f"({', '.join(BATCH_READERS)}), alternately")
        try:
            for _ in range(BATCH_ROUNDS):
                ours.append(run_batch(stack, cloud, key, size, 1, invalid))
                for reader in BATCH_READERS:
                    baseline[reader].append(batch_baseline(native_file, path, reader))
        finally:
            path.unlink()
        more = {workers: run_batch(stack, cloud, key, size, workers, invalid) for workers in (2, 4)}
    rate = statistics.median(run["rows_per_s_per_worker_median"] for run in ours)
    readers = {reader: {"rows_per_s_median": round(statistics.median(r["rows_per_s"] for r in runs)),
                        "runs": runs} for reader, runs in baseline.items()}
    fastest = max(readers, key=lambda reader: readers[reader]["rows_per_s_median"])
    score_s = statistics.median(run["score_s"] for run in ours)
    return {
        "rows": BATCH_ROWS, "input_mb": round(size / 1e6), "parts": BATCH_PARTS, "invalid_rows": invalid,
        "rounds": BATCH_ROUNDS,
        "1_worker": {"rows_per_s_per_worker_median": round(rate), "score_s_median": score_s, "runs": ours},
        "baseline": {"what": "one process on one core: the CSV read, every column made numeric, native "
                             "CatBoost predict_proba; no validation, no output written",
                     "reader": fastest, "rows_per_s_median": readers[fastest]["rows_per_s_median"],
                     **readers},
        **{f"{w}_workers": run for w, run in more.items()},
        "speedup_2_workers": round(score_s / more[2]["score_s"], 2),
        "speedup_4_workers": round(score_s / more[4]["score_s"], 2),
        "count_check": all(run["count_check"] for run in [*ours, *more.values()]),
        "note": f"this machine has {os.cpu_count()} cores: more workers than cores share them",
    }


def batch_baseline(native_file: Path, csv_file: Path, reader: str) -> dict:
    """benchmarks/batch_baseline.py in a process of its own, with this environment's libraries."""
    args = [sys.executable, "-m", "benchmarks.batch_baseline", str(native_file), str(csv_file), reader]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"the batch baseline ({reader}) failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if measured["rows"] != BATCH_ROWS:
        raise SystemExit(f"the batch baseline ({reader}) read {measured['rows']} rows of {BATCH_ROWS}")
    log(f"batch baseline ({reader}): {measured['rows_per_s']:,} rows/s")
    return measured


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
    per_worker = round(statistics.median(p["rows"] / p["seconds"] for p in parts))
    log(f"batch scoring with {workers} workers: {wall:.1f} s, {per_worker:,} rows/s per worker")
    return {
        "wall_s": round(wall, 2), **phases,
        "rows_per_s_overall": round(manifest["rows"] / wall),
        "rows_per_s_per_worker_median": per_worker,
        "peak_rss_mb_per_worker_max": max(p["peak_rss_mb"] for p in parts),
        # a part's seconds: the model load, download waits and uploads; the rest is scoring
        "part_seconds_median": round(statistics.median(p["seconds"] for p in parts), 3),
        "part_timings_median": {name: round(statistics.median(p["timings"][name] for p in parts), 3)
                                for name in parts[0]["timings"]},
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


def hello_world(env: dict, event_file: Path) -> dict:
    """The floor: a handler importing nothing, started and timed exactly as ours."""
    log(f"hello world: {COLD_RUNS} cold starts (the floor)")
    runs = [run_process(RUNTIME_PYTHON, "hello_handler", ROOT / "benchmarks", env, event_file)
            for _ in range(COLD_RUNS)]
    return summarize(runs)


def curve_table():
    """A synthetic binary table (30 numeric columns): big enough for full trees of depth 8."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=CURVE_DATA_ROWS, n_features=30, n_informative=12, random_state=0)
    return pd.DataFrame(X, columns=[f"x{i:02d}" for i in range(X.shape[1])]), pd.Series(y)


def curve_models(s3) -> list[dict]:
    """Both layouts at several sizes, trained, checked exact, published, each with 1-1000-row events."""
    from serving.model import bundle
    from serving.store import bundles

    from training import data as D
    from training import families
    from training.export import check_exactness

    X, y = curve_table()
    schema = D.infer_schema(X)
    matrix = D.to_matrix(X, schema)
    instances = D.to_instances(X.iloc[: max(CURVE_ROWS)], schema)
    sizes = sorted({(trees, 6) for trees in CURVE_TREES} | {(500, depth) for depth in CURVE_DEPTHS})
    models = []
    for family in ("catboost", "lightgbm"):
        for trees, depth in sizes:
            params = ({"depth": depth, "learning_rate": 0.08} if family == "catboost"
                      else {"max_depth": depth, "num_leaves": 2**depth, "learning_rate": 0.08})
            log(f"cost curve: training {family} with {trees} trees of depth {depth}")
            fitted = families.fit(family, params, X, y, schema, task="binary", seed=0, threads=2,
                                  rounds=trees)
            arrays = fitted.export(schema)
            exactness = check_exactness(arrays, matrix, fitted.predict(X, schema))
            name = f"curve-{family}-{trees}x{depth}"
            manifest = bundles.publish(s3, BUCKET, name, arrays, {
                "framework": {"family": family}, "feature_schema": schema, "classes": fitted.classes,
                "metrics": {}, "examples": []})
            bundles.set_champion(s3, BUCKET, name, manifest["version"], "benchmark")
            key = f"{bundle.version_prefix(name, manifest['version'])}model.npz"
            events = {}
            for rows in CURVE_ROWS:
                events[rows] = BENCH / f"event-{name}-{rows}.json"
                events[rows].write_text(json.dumps(event_for(instances[:rows], f"/models/{name}/predict")))
            models.append({"name": name, "layout": "oblivious" if family == "catboost" else "nodes",
                           "trees": trees, "depth": depth, "exactness_max_abs_diff": exactness,
                           "bundle_mb": round(s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] / 1e6,
                                              3),
                           "events": events})
    return models


def run_container(env: dict, events: list[Path], calls: int, script: str = "container.py"):
    """One function process answering the events (benchmarks/container.py: the models loaded in turn;
    soak.py: a long run), with the function's interpreter and package; its last line of JSON."""
    args = [str(RUNTIME_PYTHON), str(ROOT / "benchmarks" / script), str(calls), *map(str, events)]
    result = subprocess.run(args, env={**env, **template_tunables(), "PYTHONPATH": str(PACKAGE),
                                       "PYTHONDONTWRITEBYTECODE": "1"},
                            cwd=BENCH, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{script} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def memory_soak(env: dict, models: dict[str, dict]) -> dict:
    """One warm container answering SOAK_REQUESTS requests across both models, predict and explain,
    bad bodies and bad names among them (benchmarks/soak.py): how much its memory grows."""
    events = [BENCH / f"event-{d}-{label}.json" for d in DATASETS for label in ("named", "explain-1")]
    for dataset in DATASETS[1:]:  # /explain is the default model's: the others are explained by name
        event = json.loads((BENCH / f"event-{dataset}-named.json").read_text())
        for where in (event, event["requestContext"]):
            for key in ("path", "resource", "resourcePath"):
                if key in where:
                    where[key] = where[key].replace("/predict", "/explain")
        named = BENCH / f"event-{dataset}-named-explain.json"
        named.write_text(json.dumps(event))
        events[events.index(BENCH / f"event-{dataset}-explain-1.json")] = named
    function_env = {**env, "MODEL_BUCKET": BUCKET, "DEFAULT_MODEL": models[DATASETS[0]]["name"],
                    "MAX_ROWS": "1000", "POWERTOOLS_METRICS_NAMESPACE": "Bench",
                    "AWS_LAMBDA_FUNCTION_NAME": "bench"}
    log(f"memory: {SOAK_REQUESTS:,} requests to one warm container")
    return run_container(function_env, events, SOAK_REQUESTS, script="soak.py")


def cost_curve(env: dict, s3) -> dict:
    """How latency, cold start and memory grow with rows per request and model size, for both layouts."""
    models = curve_models(s3)
    # the default model is loaded at init (handlers.api): here, the first model the container is asked for
    function_env = {**env, "MODEL_BUCKET": BUCKET, "DEFAULT_MODEL": models[0]["name"], "MAX_ROWS": "1000",
                    "MAX_MODELS_IN_MEMORY": str(len(models)), "POWERTOOLS_METRICS_NAMESPACE": "Bench",
                    "AWS_LAMBDA_FUNCTION_NAME": "bench"}
    log(f"cost curve: one container loading {len(models)} models in turn, {WARM_CALLS} warm calls each")
    loaded = run_container(function_env, [m["events"][1] for m in models], WARM_CALLS)
    by_size = []
    for model, measured in zip(models, loaded, strict=True):
        by_size.append({k: model[k] for k in ("name", "layout", "trees", "depth", "bundle_mb",
                                              "exactness_max_abs_diff")}
                       | {k: v for k, v in measured.items() if k != "event"})
    by_rows = {}
    for model in models:
        if (model["trees"], model["depth"]) == (500, 6):
            log(f"cost curve: {model['name']} with {', '.join(map(str, CURVE_ROWS))} rows per request")
            measured = run_container(function_env, [model["events"][r] for r in CURVE_ROWS],
                                     max(50, WARM_CALLS // 20))
            by_rows[model["layout"]] = [
                {"rows": r, "warm_p50_us": m["warm_p50_us"], "warm_p99_us": m["warm_p99_us"],
                 "p50_us_per_row": round(m["warm_p50_us"] / r, 1)}
                for r, m in zip(CURVE_ROWS, measured, strict=True)]
    cold_runs = max(3, COLD_RUNS // 3)
    log(f"cost curve: {cold_runs} cold starts per model (the default model, and the first request names it)")
    for entry, model in zip(by_size, models, strict=True):
        own_env = {**function_env, "DEFAULT_MODEL": model["name"]}
        runs = [run_process(RUNTIME_PYTHON, "handlers.api", PACKAGE, own_env, model["events"][1])
                for _ in range(cold_runs)]
        cold = statistics.median(r["first_response_ms"] for r in runs)
        entry["cold_first_response_ms_median"] = round(cold, 1)
    memory = [e["rss_mb_after_load"] for e in by_size]
    default_max = 8  # template.yaml's MaxModelsInMemory
    curve = {
        "table": f"synthetic binary, {CURVE_DATA_ROWS} rows x 30 numeric columns",
        "by_model_size": by_size, "by_rows_per_request": by_rows,
        "memory": {"rss_mb_after_each_load": memory,
                   "mb_per_model": [round(b - a, 1) for a, b in zip(memory, memory[1:], strict=False)],
                   f"rss_mb_with_{default_max}_models": memory[min(default_max, len(memory)) - 1]},
        "picture": str((BENCH / "serving-scaling.png").relative_to(ROOT)),
    }
    draw_curve(curve, BENCH / "serving-scaling.png")
    return curve


def draw_curve(curve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    colors = {"oblivious": "tab:blue", "nodes": "tab:orange"}
    names = {"oblivious": "CatBoost (oblivious)", "nodes": "LightGBM (nodes)"}
    ax = axes[0][0]
    for layout, points in curve["by_rows_per_request"].items():
        ax.loglog([p["rows"] for p in points], [p["warm_p50_us"] for p in points], "o-", color=colors[layout],
                  label=names[layout])
    ax.set(title="Warm p50 against rows per request (500 trees, depth 6)", xlabel="rows per request",
           ylabel="µs per request")
    for ax, key, fixed, label in ((axes[0][1], "trees", ("depth", 6), "trees (depth 6)"),
                                  (axes[1][0], "depth", ("trees", 500), "depth (500 trees)")):
        for layout in colors:
            points = sorted((e[key], e["warm_p50_us"]) for e in curve["by_model_size"]
                            if e["layout"] == layout and e[fixed[0]] == fixed[1])
            ax.plot(*zip(*points, strict=True), "o-", color=colors[layout], label=names[layout])
        ax.set(title=f"Warm p50, one row, against {label}", xlabel=label, ylabel="µs per request")
    ax = axes[1][1]
    for layout in colors:
        points = [(e["bundle_mb"], e["cold_first_response_ms_median"]) for e in curve["by_model_size"]
                  if e["layout"] == layout]
        ax.scatter(*zip(*points, strict=True), color=colors[layout], label=names[layout])
    ax.set(title="Cold start (first answer) against bundle size", xlabel="model.npz, MB",
           ylabel="ms, median")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("Serving cost curve (make bench)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def targets(results: dict) -> list[dict]:
    """Every target with its figures and whether it holds: ours / the native baseline of the same run,
    or a figure no machine changes."""
    found = []
    for dataset, entry in results.get("datasets", {}).items():
        ours, base = entry["ours"], entry["baseline"]
        label = dataset.replace("_", " ")
        found += [
            ratio_target(f"{label}: cold start (first answer)", ours["cold_first_response_ms_median"],
                         base["cold_first_response_ms_median"], "ms", COLD_BAR),
            ratio_target(f"{label}: warm single row, p50", ours["warm_single_p50_us"],
                         base["warm_single_p50_us"], "µs", WARM_BAR),
            ratio_target(f"{label}: 1000 rows in one request", ours["warm_1000_rows_median_ms"],
                         base["warm_1000_rows_median_ms"], "ms", ROWS_1000_BAR),
            bound_target(f"{label}: served = native (largest difference)", entry["exactness_max_abs_diff"],
                         "", f"<= {EXACT}"),
        ]
    batch = results.get("batch_scoring")
    if batch:
        found.append(ratio_target("batch scoring: rows/s per worker",
                                  batch["1_worker"]["rows_per_s_per_worker_median"],
                                  batch["baseline"]["rows_per_s_median"], "rows/s", BATCH_BAR))
    if "curve" in results:
        worst = max(e["exactness_max_abs_diff"] for e in results["curve"]["by_model_size"])
        found.append(bound_target("cost-curve models: served = native (largest difference)", worst, "",
                                  f"<= {EXACT}"))
    soak = results.get("memory_soak")
    if soak:
        found.append(bound_target(f"memory: a warm container's growth over {soak['requests']:,} requests",
                                  soak["growth_mb"], "MB", f"<= {SOAK_BAR:g}"))
    found.append(bound_target("package, zipped", results["package"]["zipped_mb"], "MB", PACKAGE_BAR))
    return found


def installed(folder: Path, names: tuple[str, ...]) -> dict[str, str | None]:
    """The versions of ``names`` installed in a venv or a Lambda package (its *.dist-info folders)."""
    found = dict.fromkeys(names)
    for info in [*folder.glob("*.dist-info"), *folder.glob("lib/python*/site-packages/*.dist-info")]:
        name, version = info.name.removesuffix(".dist-info").split("-", 1)
        key = name.lower().replace("_", "-")
        if key in found:
            found[key] = version
    return found


def runtimes() -> dict:
    """What runs besides this interpreter: the function's runtime and package, the baseline's
    environment, the local cloud."""
    version = subprocess.run([str(RUNTIME_PYTHON), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return {"function_python": version,
            "function_package": installed(PACKAGE, ("numpy", "orjson", "aws-lambda-powertools")),
            "native_baseline": installed(BASELINE_VENV, ("catboost", "numpy", "boto3")),
            "local_cloud": installed(local_cloud.VENV, ("localstack-core",))}


def main() -> None:
    BENCH.mkdir(parents=True, exist_ok=True)
    settings = {"sections": sorted(SECTIONS), "cold_runs": COLD_RUNS, "warm_calls": WARM_CALLS,
                "warm_rounds": WARM_ROUNDS}
    if "batch" in SECTIONS:
        settings.update(batch_rows=BATCH_ROWS, batch_parts=BATCH_PARTS, batch_rounds=BATCH_ROUNDS)
    log("calibration: fixed workloads on a quiet machine")
    calibration = machine.calibrate()
    local_cloud.install()
    cloud = local_cloud.Instance(port=int(os.environ.get("BENCH_LOCALSTACK_PORT", "4568")),
                                 state_dir=BENCH / "cloud")
    cloud.stop(remove_state=True)
    cloud.start()
    try:
        env = deploy.local_env(cloud.endpoint)
        deploy.build(env)
        import boto3

        s3 = boto3.client("s3", endpoint_url=cloud.endpoint, region_name="us-east-1",
                          aws_access_key_id=deploy.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=deploy.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=BUCKET)
        results: dict = {"package": package_size(), "datasets": {}}
        models: dict[str, dict] = {}
        if SECTIONS & {"serving", "batch", "memory"}:
            for dataset in DATASETS:
                log(f"{dataset}: training a {ROUNDS}-tree CatBoost champion and publishing it")
                models[dataset] = train_and_publish(s3, dataset)
                for size, event in models[dataset]["events"].items():
                    suffix = "" if size == "1" else f"-{size}"
                    (BENCH / f"event-{dataset}{suffix}.json").write_text(json.dumps(event))
        baseline = baseline_python()
        if "serving" in SECTIONS:
            for dataset in DATASETS:
                results["datasets"][dataset] = serving_section(env, baseline, dataset, models[dataset])
            results["hello_world"] = hello_world(env, BENCH / f"event-{DATASETS[0]}.json")
            results["second_model_cold_start"] = second_model_cold_start(env, models)
            native = results["datasets"][DATASETS[0]]["baseline"]
            calibration.update(native_handler_cold_start_ms=native["cold_first_response_ms_median"],
                               native_handler_warm_single_p50_us=native["warm_single_p50_us"])
        if "memory" in SECTIONS:
            results["memory_soak"] = memory_soak(env, models)
        if "curve" in SECTIONS:
            results["curve"] = cost_curve(env, s3)
        if "batch" in SECTIONS:
            results["batch_scoring"] = batch_benchmark(s3, cloud, models["breast_cancer"]["native_file"])
            calibration["native_batch_rows_per_s"] = results["batch_scoring"]["baseline"]["rows_per_s_median"]
        document = {"kind": KIND, "run": run_info(settings),
                    "machine": {**machine.describe(**runtimes()), "calibration": calibration},
                    "targets": targets(results), **results}
    finally:
        cloud.stop(remove_state=True)
    sys.exit(finish(document))


def serving_section(env: dict, baseline: Path, dataset: str, model: dict) -> dict:
    """Ours against the baseline on one champion: cold starts, warm latency, floors, capture, routing."""
    event_file = BENCH / f"event-{dataset}.json"
    extra = {label: BENCH / f"event-{dataset}-{label}.json" for label in ("named", "explain-1", "explain-10")}
    function_env = {**env, "MODEL_BUCKET": BUCKET, "DEFAULT_MODEL": model["name"],
                    "BASELINE_MODEL_KEY": model["baseline_key"], "MAX_ROWS": "1000",
                    "POWERTOOLS_METRICS_NAMESPACE": "Bench", "AWS_LAMBDA_FUNCTION_NAME": "bench"}
    entry = {k: model[k] for k in ("trees", "features", "classes", "exactness_max_abs_diff")}
    runners = {"ours": (RUNTIME_PYTHON, "handlers.api", PACKAGE, {}),
               "baseline": (baseline, "baseline_handler", ROOT / "benchmarks", {})}
    # cold starts alternate, so that the ratio compares the two in the same minutes: this
    # machine's speed drifts by tens of percent between phases a minute apart
    log(f"{dataset}: {COLD_RUNS} cold starts each, ours and the baseline alternately")
    cold: dict[str, list[dict]] = {label: [] for label in runners}
    for _ in range(COLD_RUNS):
        for label, (python, module, path, more) in runners.items():
            cold[label].append(run_process(python, module, path, {**function_env, **more}, event_file))
    # warm processes alternate too; the third is ours with every request captured (CaptureRate 1)
    runners["captured"] = (RUNTIME_PYTHON, "handlers.api", PACKAGE,
                           {"CAPTURE_RATE": "1", "CAPTURE_FLUSH_ROWS": "1000"})
    log(f"{dataset}: warm calls in {WARM_ROUNDS} processes each: ours, the baseline, ours capturing, in turn")
    warm: dict[str, list[dict]] = {label: [] for label in runners}
    for round_ in range(WARM_ROUNDS):
        for label, (python, module, path, more) in runners.items():
            first = round_ == 0 and label == "ours"  # the other routes and the floors: once
            warm[label].append(run_process(python, module, path, {**function_env, **more}, event_file,
                                           warm=WARM_CALLS, extra=extra if first else None, floors=first))
    for label in ("ours", "baseline"):
        entry[label] = {**summarize(cold[label]), **summarize_warm(warm[label])}
    ours, base = entry["ours"], entry["baseline"]
    captured = summarize_warm(warm["captured"])
    ours["warm_single_p50_us_with_capture"] = captured["warm_single_p50_us"]
    ours["capture_overhead_p50_us"] = round(captured["warm_single_p50_us"] - ours["warm_single_p50_us"], 1)
    # the other routes ran in the first process only: compared with that process's own /predict
    routed = warm["ours"][0]
    routing = routed["warm_named_p50_us"] - routed["warm_single_p50_us"]
    ours["routing_by_name_overhead_p50_us"] = round(routing, 1)
    entry["ratios_ours_over_baseline"] = {
        key: round(ours[key] / base[key], 3)
        for key in ("cold_first_response_ms_median", "cold_process_ms_median",
                    "warm_single_p50_us", "warm_single_p99_us", "warm_1000_rows_median_ms", "peak_rss_mb")
    }
    entry["ratios_ours_over_baseline"]["warm_1000_rows_features_median_ms"] = round(
        ours["warm_1000_rows_features_median_ms"] / base["warm_1000_rows_median_ms"], 3)
    # each round's pair: how much the ratio moves between processes a few seconds apart
    entry["warm_single_p50_ratio_per_round"] = [
        round(o["warm_single_p50_us"] / b["warm_single_p50_us"], 3)
        for o, b in zip(warm["ours"], warm["baseline"], strict=True)]
    return entry


if __name__ == "__main__":
    main()
