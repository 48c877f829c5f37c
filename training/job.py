"""The training job: data → tuned model → checked bundle in S3 → promotion gate.

    python -m training train [--config FILE] [--set key=value ...]
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from serving import bundle
from sklearn.model_selection import train_test_split

from training import data as D
from training import evaluate, families, promotion, tracking, tune
from training.export import check_exactness

LOG = logging.getLogger("training")
EXAMPLES = 20  # held-out rows shipped in the manifest for clients ("fill with an example")


def s3_client():
    import boto3

    return boto3.client("s3")


def _git_revision() -> str | None:
    try:
        out = subprocess.run(  # noqa: S603,S607 - fixed command
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,  # nosec B607
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare(config: dict[str, Any], s3=None):
    """Load, validate and split the data; infer the schema."""
    dataset = D.load(config["dataset"], config["target"], s3_client=s3)
    D.validate(dataset, config["tuning"]["cv_folds"], config["constant_columns"])
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X, dataset.y, test_size=config["test_size"], stratify=dataset.y,
        random_state=config["seed"],
    )
    schema = D.infer_schema(dataset.X)
    LOG.info("data %s: %d rows (%d train, %d held out), %d features, classes %s",
             dataset.name, len(dataset.X), len(X_train), len(X_test), len(schema), dataset.classes)
    return dataset, schema, X_train, X_test, y_train, y_test


def run(config: dict[str, Any], publish: bool = True, show_progress: bool = True) -> dict[str, Any]:
    started = time.monotonic()
    bucket = config["bucket"] or os.environ.get("MODEL_BUCKET")
    if publish and not bucket:
        raise SystemExit("no model bucket: set MODEL_BUCKET or --set bucket=NAME")
    s3 = s3_client() if (publish or str(config["dataset"]).startswith("s3://")) else None
    dataset, schema, X_train, X_test, y_train, y_test = prepare(config, s3)
    name = config["model_name"] or dataset.name
    classes = dataset.classes
    metric = config["tuning"]["metric"]
    study_name = config["tuning"]["study_name"] or f"{name}-{config['seed']}"

    experiment_id = tracking.setup(config)
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{name}") as parent:
        run_id = parent.info.run_id
        mlflow.set_tags({"dataset": dataset.name, "data_sha256": dataset.sha256(), "job": "train"})
        mlflow.log_params({"dataset": config["dataset"], "metric": metric, "seed": config["seed"],
                           "n_trials": config["tuning"]["n_trials"], "cv_folds": config["tuning"]["cv_folds"],
                           "rows_train": len(X_train), "rows_test": len(X_test)})
        mlflow.log_text(yaml.safe_dump(config, sort_keys=False), "config.yaml")

        study = tune.create_study(config, study_name)
        tune.optimize(
            study, config, X_train, y_train, schema, classes,
            on_trial=lambda _study, trial: tracking.log_trial(run_id, experiment_id, trial),
            show_progress=show_progress,
        )
        best = study.best_trial
        family, params = families.params_from_trial(best.params)
        rounds = int(best.user_attrs.get("rounds", config["tuning"]["max_rounds"]))
        LOG.info("best trial %d: %s cv %s=%.4f, refit with %d rounds",
                 best.number, family, metric, best.value, rounds)

        fitted = families.fit(family, params, X_train, y_train, schema, seed=config["seed"],
                              threads=config["tuning"]["threads"], rounds=rounds)
        if fitted.classes != classes:  # the served probability columns follow `classes`
            raise RuntimeError(f"model classes {fitted.classes} differ from the data's {classes}")
        proba = fitted.predict_proba(X_test, schema)
        test_metrics = evaluate.metrics(y_test, proba, classes)
        mlflow.log_params({"family": family, "rounds": rounds, **{f"best_{k}": v for k, v in params.items()}})
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items() if isinstance(v, float)})
        mlflow.log_metric("cv_best", best.value)
        mlflow.log_dict(test_metrics, "test_metrics.json")
        importance = fitted.feature_importance([f["name"] for f in schema])
        with tempfile.TemporaryDirectory() as tmp:
            for path in evaluate.pictures(Path(tmp), y_test, proba, classes, importance, study):
                mlflow.log_artifact(str(path), "plots")

        arrays = fitted.export(X_train, schema)
        exact = check_exactness(arrays, D.to_matrix(X_test, schema), proba)
        mlflow.log_metric("served_max_abs_probability_difference", exact)
        LOG.info("served form matches the native model: max |Δp| = %.2e on %d held-out rows",
                 exact, len(X_test))
        summary: dict[str, Any] = {
            "model_name": name, "family": family, "cv_score": best.value, "metric": metric,
            "test_metrics": {k: v for k, v in test_metrics.items() if k != "per_class"},
            "mlflow_run_id": run_id, "study": study_name, "trials": len(study.trials),
        }
        if not publish:
            summary["seconds"] = round(time.monotonic() - started, 1)
            return summary

        native_name, native_bytes = fitted.native_file()
        import catboost
        import lightgbm

        manifest_fields = {
            "framework": {
                "family": family,
                "library": family,
                "library_version": (catboost if family == "catboost" else lightgbm).__version__,
                "served_as": "serving.ensemble (numpy)",
                "native_file": native_name,
            },
            "feature_schema": schema,
            "classes": classes,
            "metrics": {"test": test_metrics, "cv": {"metric": metric, "score": best.value,
                                                       "folds": best.user_attrs.get("fold_scores")}},
            "hyperparameters": {**params, "rounds": rounds},
            "exactness": {"max_abs_probability_difference": exact, "rows": len(X_test)},
            "lineage": {
                "dataset": dataset.name, "source": dataset.source, "data_sha256": dataset.sha256(),
                "rows": len(dataset.X), "rows_train": len(X_train), "rows_test": len(X_test),
                "test_size": config["test_size"], "seed": config["seed"], "git_revision": _git_revision(),
                "mlflow_run_id": run_id, "optuna_study": study_name, "best_trial": best.number,
            },
            "examples": [
                {"label": label, "instance": instance}
                for label, instance in zip(
                    y_test.iloc[:EXAMPLES].tolist(), D.to_instances(X_test.iloc[:EXAMPLES], schema),
                    strict=True,
                )
            ],
        }
        manifest = bundle.publish(s3, bucket, name, arrays, manifest_fields,
                                  {native_name: native_bytes}, progress=LOG.info)
        version = manifest["version"]
        bundle_uri = f"s3://{bucket}/{bundle.version_prefix(name, version)}"
        LOG.info("published %s v%d at %s", name, version, bundle_uri)
        registered = tracking.register(name, run_id, bundle_uri, version, {"family": family})
        mlflow.set_tags({"bundle_uri": bundle_uri, "bundle_version": str(version)})

        gate = config["promotion"]
        challenger_score = evaluate.score(gate["metric"], y_test, proba, classes)
        decision = promotion.decide(s3, bucket, name, gate["metric"], float(gate["min_improvement"]),
                                    challenger_score, X_test, y_test)
        if decision.promote:
            promotion.promote(s3, bucket, name, version, decision.reason)
            tracking.mirror_champion(name, version)
        mlflow.set_tags({"promoted": str(decision.promote), "promotion_reason": decision.reason})
        LOG.info("%s: %s", "promoted to champion" if decision.promote else "kept as candidate",
                 decision.reason)
        summary.update(
            version=version, bundle_uri=bundle_uri, registered_version=registered,
            promoted=decision.promote, promotion_reason=decision.reason,
            seconds=round(time.monotonic() - started, 1),
        )
        mlflow.log_dict(summary, "summary.json")
    return summary


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str))
