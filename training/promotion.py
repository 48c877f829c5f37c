"""Promotion is a gate: a challenger becomes champion only if it beats the champion.

Both are scored on the challenger's held-out split, the champion through its
served form (the bundle's arrays), so the comparison is of what would actually
answer requests. The S3 champion pointer is the source of truth; the MLflow
"champion" alias mirrors it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from serving.model import bundle
from serving.model.predictor import served_predictions
from serving.store import bundles

from training import data as D
from training import evaluate


@dataclass
class Decision:
    promote: bool
    reason: str
    challenger_score: float
    champion_version: int | None = None
    champion_score: float | None = None


def decide(
    s3, bucket: str, name: str, metric: str, margin: float,
    challenger_score: float, X_test: pd.DataFrame, y_test: pd.Series, task: str,
) -> Decision:
    pointer = bundles.read_champion(s3, bucket, name)
    if pointer is None:
        return Decision(True, "no champion yet", challenger_score)
    champion = bundles.load(s3, bucket, name, int(pointer["version"]), pointer.get("manifest_sha256"))
    if champion.task != task:
        return Decision(False, f"champion v{champion.version} is a {champion.task} model, this one {task}: "
                        "promote by hand if intended", challenger_score, champion.version)
    schema = champion.feature_schema
    missing = [f["name"] for f in schema if f["name"] not in X_test.columns]
    if missing:
        return Decision(
            False, f"champion v{champion.version} uses features this data lacks ({missing[:5]}); "
            "promote by hand if intended", challenger_score, champion.version,
        )
    proba = served_predictions(champion.arrays, D.to_matrix(X_test, schema))
    champion_score = evaluate.score(metric, y_test, proba, [str(c) for c in champion.classes],
                                    champion.decision_threshold)
    wins = evaluate.better(metric, challenger_score, champion_score, margin)
    verdict = "beats" if wins else "does not beat"
    reason = (
        f"challenger {metric}={challenger_score:.4f} {verdict} champion v{champion.version} "
        f"{metric}={champion_score:.4f} by more than {margin:g} on the same held-out rows"
    )
    return Decision(wins, reason, challenger_score, champion.version, champion_score)


def promote(s3, bucket: str, name: str, version: int, reason: str) -> dict[str, Any]:
    if version not in bundles.list_versions(s3, bucket, name):
        raise bundle.BundleError(f"{name} has no published version {version}")
    return bundles.set_champion(s3, bucket, name, version, reason)


def rollback(s3, bucket: str, name: str) -> dict[str, Any]:
    """Point the champion back at the one it replaced."""
    pointer = bundles.read_champion(s3, bucket, name)
    if pointer is None:
        raise bundle.BundleError(f"{name} has no champion to roll back")
    previous = pointer.get("previous_version")
    if previous is None:
        raise bundle.BundleError(
            f"{name} v{pointer['version']} was the first champion: nothing to roll back to")
    return bundles.set_champion(s3, bucket, name, int(previous), f"rollback from v{pointer['version']}")


def history(s3, bucket: str, name: str) -> list[dict[str, Any]]:
    import json

    prefix = f"{bundle.model_prefix(name)}champion-history/"
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(keys)]
