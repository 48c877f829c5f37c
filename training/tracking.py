"""MLflow: one parent run per job, one nested run per trial, the registry mirror.

The default store is local (SQLite under .local/mlflow); ``MLFLOW_TRACKING_URI``
and, for S3 artifacts on LocalStack, ``MLFLOW_S3_ENDPOINT_URL`` are honoured.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent
LOCAL_STORE = ROOT / ".local" / "mlflow"


def setup(config: dict[str, Any]) -> str:
    """Point MLflow at the configured store; returns the experiment id."""
    uri = config["mlflow"]["tracking_uri"] or os.environ.get("MLFLOW_TRACKING_URI")
    artifact_location = config["mlflow"]["artifact_location"]
    if not uri:
        LOCAL_STORE.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{LOCAL_STORE / 'mlflow.db'}"
        artifact_location = artifact_location or (LOCAL_STORE / "artifacts").as_uri()
    mlflow.set_tracking_uri(uri)
    name = config["mlflow"]["experiment"]
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        return mlflow.create_experiment(name, artifact_location=artifact_location)
    return experiment.experiment_id


@contextlib.contextmanager
def job_run(experiment_id: str, config: dict[str, Any], prepared) -> Iterator[str]:
    """The job's parent run, with its data lineage and resolved config; yields the run id."""
    import yaml

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{prepared.name}") as parent:
        mlflow.set_tags({"dataset": prepared.dataset.name, "data_sha256": prepared.dataset.sha256(),
                         "job": "train"})
        tuning = config["tuning"]
        mlflow.log_params({"dataset": config["dataset"], "metric": prepared.metric, "task": prepared.task,
                           "seed": config["seed"],
                           "n_trials": tuning["n_trials"], "cv_folds": tuning["cv_folds"],
                           "rows_train": len(prepared.X_train), "rows_test": len(prepared.X_test)})
        mlflow.log_text(yaml.safe_dump(config, sort_keys=False), "config.yaml")
        if prepared.leaks:  # columns that alone predict the target: said where the runs are read
            mlflow.set_tag("possible_leaks", ", ".join(leak["column"] for leak in prepared.leaks))
            mlflow.log_dict(prepared.leaks, "possible_leaks.json")
        mlflow.log_params({"cv_repeats": tuning["cv_repeats"], "ensemble": config["ensemble"],
                           "ensemble_members": config["ensemble_members"],
                           "ensemble_max_slowdown": config["ensemble_max_slowdown"],
                           "decision_threshold": config["decision_threshold"]})
        yield parent.info.run_id


def log_evaluation(prepared, model, evaluation, study) -> None:
    """The refit's parameters, held-out metrics and pictures."""
    from training import evaluate

    mlflow.log_params({"family": model.family, "rounds": model.rounds,
                       **{f"best_{k}": v for k, v in model.params.items()}})
    mlflow.log_metrics({f"test_{k}": v for k, v in evaluation.metrics.items() if isinstance(v, float)})
    mlflow.log_metric("cv_best", model.cv_score)
    if model.threshold is not None:
        mlflow.log_metric("decision_threshold", model.threshold)
    if model.members:  # an ensemble: what it is made of, and what the selection saw
        mlflow.log_params({"members": len(model.members)})
        mlflow.log_dict({"members": model.members, "selection": model.selection}, "ensemble.json")
    mlflow.log_dict(evaluation.metrics, "test_metrics.json")
    importance = model.fitted.feature_importance(prepared.schema)
    with tempfile.TemporaryDirectory() as tmp:
        for path in evaluate.pictures(Path(tmp), prepared.y_test, evaluation.output, prepared.classes,
                                      importance, study, model.threshold):
            mlflow.log_artifact(str(path), "plots")


def log_exactness(predictions: float, explanations: float) -> None:
    mlflow.log_metrics({"served_max_abs_difference": predictions,
                        "served_shap_max_abs_difference": explanations})


def log_summary(summary: dict[str, Any]) -> None:
    if "bundle_uri" in summary:
        mlflow.set_tags({"bundle_uri": summary["bundle_uri"], "bundle_version": str(summary["version"]),
                         "promoted": str(summary["promoted"]),
                         "promotion_reason": summary["promotion_reason"]})
    mlflow.log_dict(summary, "summary.json")


def log_trial(parent_run_id: str, experiment_id: str, trial) -> None:
    """A finished Optuna trial as a nested run: params, score, duration, state."""
    client = MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"trial-{trial.number:03d}",
        tags={"mlflow.parentRunId": parent_run_id, "optuna.state": trial.state.name},
    )
    run_id = run.info.run_id
    for key, value in trial.params.items():
        client.log_param(run_id, key, value)
    if trial.value is not None:
        client.log_metric(run_id, "cv_score", trial.value)
    for step, value in trial.intermediate_values.items():
        client.log_metric(run_id, "cv_score_running", value, step=step)
    if trial.duration is not None:
        client.log_metric(run_id, "duration_seconds", trial.duration.total_seconds())
    for key, value in trial.user_attrs.items():
        if isinstance(value, int | float):
            client.log_metric(run_id, key, value)
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}.get(trial.state.name, "FINISHED")
    client.set_terminated(run_id, status=status)


def register(name: str, run_id: str, bundle_uri: str, version: int, tags: dict[str, str]) -> str:
    """The published bundle as an MLflow registered model version; returns its number."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="Bundles published by the training job")
    model_version = client.create_model_version(
        name, source=bundle_uri, run_id=run_id,
        tags={"bundle_uri": bundle_uri, "bundle_version": str(version), **tags},
    )
    return model_version.version


def mirror_champion(name: str, bundle_version: int) -> str | None:
    """Move the "champion" alias to the registered version of this bundle version."""
    client = MlflowClient()
    found = client.search_model_versions(f"name='{name}' and tag.bundle_version='{bundle_version}'")
    if not found:
        return None
    client.set_registered_model_alias(name, "champion", found[0].version)
    return found[0].version
