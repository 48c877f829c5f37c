"""The notebooks run top to bottom against the package and a real MLflow store."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from training import config as C
from training import job

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"


def execute(name: str, parameters: str | None = None):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if parameters:
        cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        cell.source += "\n" + parameters
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def images(notebook) -> int:
    return sum(1 for cell in notebook.cells for out in cell.get("outputs", [])
               if "image/png" in out.get("data", {}))


@pytest.mark.parametrize("dataset", ["breast_cancer", "penguins", "diabetes"])
def test_exploration_runs_on_a_built_in_data_set(dataset):
    notebook = execute("01-eda.ipynb", f'DATASET = "{dataset}"')
    assert images(notebook) >= 3  # the target, the features related to it, correlations


def test_experiment_review_reads_the_training_jobs_runs(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = C.load(None, ["tuning.n_trials=4", "tuning.cv_folds=3", "tuning.max_rounds=60",
                           f"mlflow.tracking_uri={uri}"])
    job.run(config, publish=False, show_progress=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the kernel inherits it
    notebook = execute("02-experiments.ipynb")
    # family comparison, history, and the job's pictures (confusion matrix, ROC, ...)
    assert images(notebook) >= 6
    text = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    assert "1 training jobs, 4 trials" in text


def test_experiment_review_shows_a_regression_job(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = C.load(None, ["dataset=diabetes", "tuning.n_trials=2", "tuning.cv_folds=3", "tuning.max_rounds=60",
                           f"mlflow.tracking_uri={uri}"])
    job.run(config, publish=False, show_progress=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    notebook = execute("02-experiments.ipynb")
    text = "".join(str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
                   for cell in notebook.cells for out in cell.get("outputs", []))
    assert "predicted_vs_actual" in text and "residuals" in text
    assert "regression" in text
