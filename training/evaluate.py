"""Scores and pictures of a model on held-out data, for classification and regression.

``output`` is what the served form answers: class probabilities (n, classes),
or regression values (n, 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from serving.model.predictor import label_indices

DIRECTION = {"f1_macro": "maximize", "roc_auc": "maximize", "log_loss": "minimize",
             "rmse": "minimize", "mae": "minimize", "r2": "maximize"}
CLASSIFICATION_METRICS = ("f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
DEFAULT_METRIC = {"binary": "f1_macro", "multiclass": "f1_macro", "regression": "rmse"}


def predicted_labels(proba: np.ndarray, classes: list[str], threshold: float | None = None) -> np.ndarray:
    """Each row's label as serving gives it: the likelier class, or above a binary model's threshold."""
    return np.asarray(classes)[label_indices(proba, threshold)]


def best_threshold(y_true, proba: np.ndarray, classes: list[str]) -> float:
    """The binary label threshold that maximises F1 macro on these (out-of-fold) rows; of equals, the
    nearest to 0.5 (as AutoGluon's calibrate_decision_threshold)."""
    candidates = np.round(np.linspace(0.02, 0.98, 97), 2)
    candidates = candidates[np.argsort(np.abs(candidates - 0.5), kind="stable")]
    scores = [score("f1_macro", y_true, proba, classes, threshold=t) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def score(metric: str, y_true, proba: np.ndarray, classes: list[str],
          threshold: float | None = None) -> float:
    from sklearn.metrics import f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

    if metric in REGRESSION_METRICS:
        values, predicted = np.asarray(y_true, np.float64), proba[:, 0]
        if metric == "rmse":
            return float(np.sqrt(np.mean((values - predicted) ** 2)))
        if metric == "mae":
            return float(mean_absolute_error(values, predicted))
        return float(r2_score(values, predicted))
    y_true = np.asarray(y_true).astype(str)
    if metric == "f1_macro":
        predicted = predicted_labels(proba, classes, threshold)
        return float(f1_score(y_true, predicted, average="macro"))
    if metric == "roc_auc":
        if len(classes) == 2:
            return float(roc_auc_score(y_true == classes[1], proba[:, 1]))
        return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes))
    if metric == "log_loss":
        return float(log_loss(y_true, proba, labels=classes))
    raise ValueError(f"unknown metric {metric!r}")


def better(metric: str, challenger: float, champion: float, margin: float) -> bool:
    if DIRECTION[metric] == "maximize":
        return challenger > champion + margin
    return challenger < champion - margin


def metrics(y_true, proba: np.ndarray, classes: list[str], threshold: float | None = None) -> dict[str, Any]:
    """The held-out metrics; labels as serving gives them (a binary model's threshold applied)."""
    from sklearn.metrics import accuracy_score, classification_report

    if not classes:  # regression
        return {**{m: score(m, y_true, proba, classes) for m in REGRESSION_METRICS}, "rows": int(len(y_true))}
    y_true = np.asarray(y_true).astype(str)
    predicted = predicted_labels(proba, classes, threshold)
    report = classification_report(y_true, predicted, labels=classes, output_dict=True, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1_macro": score("f1_macro", y_true, proba, classes, threshold),
        "roc_auc": score("roc_auc", y_true, proba, classes),
        "log_loss": score("log_loss", y_true, proba, classes),
        "per_class": {
            c: {k: float(report[c][k]) for k in ("precision", "recall", "f1-score", "support")}
            for c in classes
        },
        "rows": int(len(y_true)),
    }


def pictures(
    out_dir: Path, y_true, proba: np.ndarray, classes: list[str],
    importance: dict[str, float], study=None, threshold: float | None = None,
) -> list[Path]:
    """Confusion matrix, ROC and precision-recall curves (or, for regression, predicted against
    actual and the residuals), feature importance, tuning history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(fig, name):
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    if classes:
        _classification_pictures(save, plt, y_true, proba, classes, threshold)
    else:
        _regression_pictures(save, plt, np.asarray(y_true, np.float64), proba[:, 0])
    _importance_and_history(save, plt, importance, study)
    return paths


def _regression_pictures(save, plt, actual: np.ndarray, predicted: np.ndarray) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(actual, predicted, s=12, alpha=0.6, color="#3b6ea5")
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="predicted = actual")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted against actual (held-out)")
    ax.legend()
    save(fig, "predicted_vs_actual.png")
    residuals = actual - predicted
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(predicted, residuals, s=12, alpha=0.6, color="#d1495b")
    left.axhline(0, color="black", linewidth=1)
    left.set_xlabel("predicted")
    left.set_ylabel("actual - predicted")
    left.set_title("Residuals against prediction")
    right.hist(residuals, bins=30, color="#d1495b", alpha=0.8)
    right.set_xlabel("actual - predicted")
    right.set_title("Distribution of residuals")
    save(fig, "residuals.png")


def _classification_pictures(save, plt, y_true, proba: np.ndarray, classes: list[str],
                             threshold: float | None) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    y_true = np.asarray(y_true).astype(str)
    predicted = predicted_labels(proba, classes, threshold)
    fig, ax = plt.subplots(figsize=(5 + 0.3 * len(classes), 4 + 0.3 * len(classes)))
    ConfusionMatrixDisplay.from_predictions(y_true, predicted, labels=classes, ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (held-out)")
    save(fig, "confusion_matrix.png")

    for display, name, title in (
        (RocCurveDisplay, "roc_curve.png", "ROC (held-out, one vs rest)"),
        (PrecisionRecallDisplay, "precision_recall.png", "Precision-recall (held-out)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 5))
        shown = classes[1:] if len(classes) == 2 else classes
        for c in shown:
            k = classes.index(c)
            display.from_predictions(y_true == c, proba[:, k], name=str(c), ax=ax)
        ax.set_title(title)
        save(fig, name)


def _importance_and_history(save, plt, importance: dict[str, float], study) -> None:
    top = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:20]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
    ax.barh([k for k, _ in reversed(top)], [v for _, v in reversed(top)], color="#3b6ea5")
    ax.set_xlabel("share of importance")
    ax.set_title("Feature importance")
    save(fig, "feature_importance.png")

    if study is not None:
        values = [(t.number, t.value, t.params.get("family")) for t in study.trials if t.value is not None]
        if values:
            fig, ax = plt.subplots(figsize=(6.5, 4))
            for family, colour in (("catboost", "#d1495b"), ("lightgbm", "#3b6ea5")):
                points = [(n, v) for n, v, f in values if f == family]
                if points:
                    ax.scatter(*zip(*points, strict=True), label=family, color=colour, s=22)
            best, running = [], None
            maximize = study.direction.name == "MAXIMIZE"
            for n, v, _ in sorted(values):
                running = v if running is None else (max(running, v) if maximize else min(running, v))
                best.append((n, running))
            ax.step(*zip(*best, strict=True), where="post", color="black", label="best so far")
            ax.set_xlabel("trial")
            ax.set_ylabel("cross-validated score")
            ax.set_title("Optimisation history")
            ax.legend()
            save(fig, "optimization_history.png")
