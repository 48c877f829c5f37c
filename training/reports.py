"""Tables and pictures for the notebooks: data exploration and experiment review."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from training import data as D


def target_summary(dataset: D.Dataset) -> pd.DataFrame:
    """Rows per class (and their share), or the distribution of a regression target."""
    if dataset.task == "regression":
        return dataset.y.describe().to_frame(dataset.target or "target").round(3)
    counts = dataset.y.value_counts().sort_index()
    return pd.DataFrame({"rows": counts, "share": (counts / counts.sum()).round(3)})


def plot_target(dataset: D.Dataset):
    """A bar per class, or a histogram of a regression target."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if dataset.task == "regression":
        ax.hist(dataset.y, bins=40, color="#3b6ea5")
        ax.set_xlabel(dataset.target or "target")
    else:
        counts = dataset.y.value_counts().sort_index()
        ax.bar(counts.index.astype(str), counts.to_numpy(), color="#3b6ea5")
        ax.set_ylabel("rows")
    ax.set_title("The target")
    fig.tight_layout()
    return fig


def maximizes(metric: str) -> bool:
    """Whether a higher value of the metric is better."""
    from training.evaluate import DIRECTION

    return DIRECTION[metric] == "maximize"


def schema_table(dataset: D.Dataset) -> pd.DataFrame:
    rows = []
    for f in D.infer_schema(dataset.X):
        missing = int(dataset.X[f["name"]].isna().sum())
        rows.append({"feature": f["name"], "type": f["type"], "missing": missing,
                     "min": f.get("min"), "max": f.get("max"),
                     "categories": ", ".join(f.get("categories") or [])})
    return pd.DataFrame(rows).set_index("feature")


def plot_distributions(dataset: D.Dataset, columns: int = 3, limit: int = 9):
    """The numeric features most related to the target: a histogram per class, or against the value."""
    numeric = dataset.X.select_dtypes("number")
    regression = dataset.task == "regression"
    target = dataset.y if regression else dataset.y.astype("category").cat.codes
    spread = numeric.apply(lambda c: abs(np.corrcoef(c.fillna(c.median()), target)[0, 1]))
    chosen = spread.fillna(0).sort_values(ascending=False).index[:limit]
    rows = int(np.ceil(len(chosen) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, chosen, strict=False):
        if regression:
            ax.scatter(numeric[name], dataset.y, s=6, alpha=0.5, color="#3b6ea5")
            ax.set_ylabel(dataset.target or "target", fontsize=8)
        else:
            for label in dataset.classes:
                ax.hist(numeric.loc[dataset.y == label, name].dropna(), bins=25, alpha=0.55, label=label)
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    if not regression:
        axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_correlations(dataset: D.Dataset):
    corr = dataset.X.select_dtypes("number").corr()
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), corr.columns, rotation=90, fontsize=6)
    ax.set_yticks(range(len(corr)), corr.columns, fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Correlation between numeric features")
    fig.tight_layout()
    return fig


def training_runs(experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(jobs, trials) of an MLflow experiment: parent runs and their nested trial runs."""
    import mlflow

    runs = mlflow.search_runs(experiment_names=[experiment], output_format="pandas")
    if runs.empty:
        raise LookupError(f"no runs in the MLflow experiment {experiment!r}")
    parent = runs.get("tags.mlflow.parentRunId", None)
    is_trial = parent.notna() if parent is not None else pd.Series(False, index=runs.index)
    return runs[~is_trial].copy(), runs[is_trial].copy()


def plot_family_comparison(trials: pd.DataFrame):
    scored = trials.dropna(subset=["metrics.cv_score"])
    fig, ax = plt.subplots(figsize=(6, 4))
    families = sorted(scored["params.family"].dropna().unique())
    ax.boxplot([scored.loc[scored["params.family"] == f, "metrics.cv_score"] for f in families])
    ax.set_xticks(range(1, len(families) + 1), families)
    ax.set_ylabel("cross-validated score")
    ax.set_title("Trials by model family")
    fig.tight_layout()
    return fig


def plot_history(trials: pd.DataFrame, job_run_id: str, maximize: bool = True):
    mine = trials[trials["tags.mlflow.parentRunId"] == job_run_id].sort_values("start_time")
    scored = mine.dropna(subset=["metrics.cv_score"])
    best = scored["metrics.cv_score"].cummax() if maximize else scored["metrics.cv_score"].cummin()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for family, group in scored.groupby("params.family"):
        ax.scatter(range(len(group)), group["metrics.cv_score"], label=family, s=20)
    ax.plot(range(len(best)), best.to_numpy(), color="black", label="best so far")
    ax.set_xlabel("trial (in order)")
    ax.set_ylabel("cross-validated score")
    ax.legend()
    ax.set_title("Optimisation history")
    fig.tight_layout()
    return fig


def job_pictures(run_id: str) -> dict[str, Any]:
    """The pictures a training job logged (confusion matrix, ROC, ...), as local paths."""
    import mlflow

    folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots")
    from pathlib import Path

    return {p.stem: p for p in sorted(Path(folder).glob("*.png"))}
