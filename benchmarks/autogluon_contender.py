"""AutoGluon-Tabular as a contender of `make bench-train`, run in its own environment.

    .local/tools/autogluon/bin/python benchmarks/autogluon_contender.py FOLDER

FOLDER holds ``train.parquet`` and ``test.parquet`` (the training job's split, the
target in column ``__target__``) and ``settings.json`` (problem type, metric, time
limit, seed). AutoGluon fits with its default preset and the same time budget;
``output.npy`` gets its class probabilities (columns in ``classes``) or values,
and ``result.json`` what it chose. The benchmark scores the output with the
training job's own metrics. This file imports nothing of the project: the
functions never see AutoGluon, and AutoGluon's pins never meet the project's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

METRICS = {"f1_macro": "f1_macro", "roc_auc": "roc_auc", "log_loss": "log_loss",
           "rmse": "root_mean_squared_error", "mae": "mean_absolute_error", "r2": "r2"}


def main(folder: Path) -> None:
    import numpy as np
    import pandas as pd
    from autogluon.tabular import TabularPredictor

    settings = json.loads((folder / "settings.json").read_text())
    train, test = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")
    started = time.monotonic()
    predictor = TabularPredictor(label="__target__", problem_type=settings["problem_type"],
                                 eval_metric=METRICS[settings["metric"]], path=str(folder / "ag"),
                                 verbosity=0)
    # its models' seeds are its own (0): the outer seed changes the split, as for every contender
    predictor.fit(train, time_limit=settings["time_limit"], num_cpus=settings["threads"], num_gpus=0)
    seconds = time.monotonic() - started
    features = test.drop(columns="__target__")
    result = {"seconds": round(seconds, 1), "best_model": predictor.model_best,
              "models": len(predictor.model_names())}
    if settings["problem_type"] == "regression":
        output = np.asarray(predictor.predict(features), np.float64).reshape(-1, 1)
    else:
        proba = predictor.predict_proba(features)
        result["classes"] = [str(c) for c in proba.columns]
        output = proba.to_numpy(np.float64)
        if settings["problem_type"] == "binary":
            result["decision_threshold"] = float(predictor.decision_threshold)
    np.save(folder / "output.npy", output)
    (folder / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
