"""Scores and pictures of a model on held-out data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# log_loss is the one metric where lower is better
DIRECTION = {"f1_macro": "maximize", "roc_auc": "maximize", "log_loss": "minimize"}


def score(metric: str, y_true, proba: np.ndarray, classes: list[str]) -> float:
    from sklearn.metrics import f1_score, log_loss, roc_auc_score

    y_true = np.asarray(y_true).astype(str)
    if metric == "f1_macro":
        predicted = np.asarray(classes)[proba.argmax(axis=1)]
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


def metrics(y_true, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, classification_report

    y_true = np.asarray(y_true).astype(str)
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    report = classification_report(y_true, predicted, labels=classes, output_dict=True, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1_macro": score("f1_macro", y_true, proba, classes),
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
    importance: dict[str, float], study=None,
) -> list[Path]:
    """Confusion matrix, ROC and precision-recall curves, feature importance, tuning history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    y_true = np.asarray(y_true).astype(str)
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    paths = []

    def save(fig, name):
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

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
    return paths
