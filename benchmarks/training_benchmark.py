"""`make bench-train`: the tuned model against scikit-learn baselines, and tuning throughput.

For breast cancer, digits and penguins, on the same held-out split and the same
CV folds, in one run: the training job's tuned CatBoost/LightGBM model, a
RandomForest (the model of the breast cancer seed service) and a
HistGradientBoosting, both with scikit-learn's defaults. Then trials per minute
of one study tuned by one worker and by two workers sharing it.
Prints one JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

TRIALS = int(os.environ.get("BENCH_TRAIN_TRIALS", "12"))
THROUGHPUT_TRIALS = int(os.environ.get("BENCH_TRAIN_THROUGHPUT_TRIALS", "8"))
DATASETS = ("breast_cancer", "digits", "penguins")


def log(message: str) -> None:
    print(f"[bench-train] {message}", file=sys.stderr, flush=True)


def compare(dataset: str, tmp: Path) -> dict:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from training import config as C
    from training import data as D
    from training import evaluate, job

    config = C.load(None, [f"dataset={dataset}", f"tuning.n_trials={TRIALS}", "constant_columns=keep",
                           f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow-{dataset}.db"])
    started = time.monotonic()
    summary = job.run(config, publish=False, show_progress=False)
    tuned_seconds = time.monotonic() - started
    prepared = job.prepare(config)
    schema, X_train, X_test = prepared.schema, prepared.X_train, prepared.X_test
    y_train, y_test = prepared.y_train, prepared.y_test
    classes = sorted(y_train.unique())
    folds = StratifiedKFold(n_splits=config["tuning"]["cv_folds"], shuffle=True,
                            random_state=config["seed"])
    train, test = D.to_matrix(X_train, schema), D.to_matrix(X_test, schema)
    categorical = np.array([f["type"] == "categorical" for f in schema])
    result = {"rows_train": len(X_train), "rows_test": len(X_test), "classes": len(classes),
              "tuned": {"family": summary["family"], "cv_f1_macro": round(summary["cv_score"], 4),
                        **{k: round(v, 4) for k, v in summary["test_metrics"].items() if k != "rows"},
                        "seconds_with_tuning": round(tuned_seconds, 1), "trials": TRIALS}}
    baselines = {
        "random_forest": RandomForestClassifier(random_state=config["seed"], n_jobs=2),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            random_state=config["seed"], categorical_features=categorical if categorical.any() else None),
    }
    for name, model in baselines.items():
        started = time.monotonic()
        cv = cross_val_score(model, train, y_train, cv=folds, scoring="f1_macro")
        model.fit(train, y_train)
        proba = model.predict_proba(test)
        metrics = evaluate.metrics(y_test, proba, [str(c) for c in model.classes_])
        result[name] = {"cv_f1_macro": round(float(cv.mean()), 4),
                        **{k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
                        "seconds": round(time.monotonic() - started, 1)}
    result["tuned_minus_best_baseline_f1"] = round(
        result["tuned"]["f1_macro"] - max(result[b]["f1_macro"] for b in baselines), 4)
    return result


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


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        results = {"datasets": {}, "note": "held-out metrics on the same split; CV on the same folds"}
        for dataset in DATASETS:
            log(f"{dataset}: tuning {TRIALS} trials and fitting the baselines")
            results["datasets"][dataset] = compare(dataset, tmp)
        log(f"throughput: {THROUGHPUT_TRIALS} trials of breast cancer with 1 and 2 workers")
        one, two = throughput(1, tmp), throughput(2, tmp)
        speedup = round(two["trials_per_minute"] / one["trials_per_minute"], 2)
        results["tuning_throughput"] = {"one_worker": one, "two_workers": two,
                                        "speedup": speedup, "cores": os.cpu_count()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
