"""Ensemble selection over the study's trials, and the ensemble as one model.

Greedy forward selection with replacement (Caruana et al., 2004, as AutoGluon's
weighted ensemble does it): start empty; at each step add the trial whose
out-of-fold raw scores, averaged with those already chosen, score best; after
``SIZE`` steps keep the best-scoring prefix. A trial chosen k times of n gets the
weight k / n. The average is taken in raw score space (log-odds, per-class
scores, values) and the link applies after it, so the ensemble is still a sum of
trees: serving evaluates it exactly, and its SHAP values are the weighted sum of
its members' (``serving.model.format``, layout ``weighted``).

Only completed trials that ran in this process have out-of-fold scores; a shared
study's trials from other workers are not pooled.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from serving.model import format as model_format
from serving.model.evaluator import apply_link

from training import evaluate as E
from training import families

LOG = logging.getLogger(__name__)
SIZE = 25  # selection steps (AutoGluon's ensemble_size)
POOL = 20  # the best trials the selection chooses from


@dataclass(frozen=True)
class Selection:
    """The members chosen (trial number → times chosen) and what the selection saw out of fold."""

    counts: dict[int, int]
    score: float  # the ensemble's out-of-fold score
    best_single: float  # the study's best trial on the same out-of-fold rows
    best_trial: int
    history: list[float] = field(default_factory=list)  # the score after each step

    @property
    def weights(self) -> dict[int, float]:
        total = sum(self.counts.values())
        return {trial: count / total for trial, count in self.counts.items()}


def oof_output(raw: np.ndarray, task: str) -> np.ndarray:
    """Raw scores → what a metric reads: class probabilities, or values (n, 1)."""
    return apply_link(raw, model_format.TASK_LINKS[task])


def select(oof: dict[int, np.ndarray], values: dict[int, float], y: pd.Series, metric: str,
           classes: list[str], task: str, size: int = SIZE, pool: int = POOL) -> Selection:
    """Greedy selection with replacement among the ``pool`` best trials by their study value."""
    maximize = E.DIRECTION[metric] == "maximize"
    ranked = sorted((t for t in values if t in oof), key=lambda t: values[t], reverse=maximize)[:pool]
    if not ranked:
        raise ValueError("no completed trial with out-of-fold predictions to select from")

    def score(raw: np.ndarray) -> float:
        return E.score(metric, y, oof_output(raw, task), classes)

    def improves(a: float, b: float | None) -> bool:
        return b is None or (a > b if maximize else a < b)

    best_trial = ranked[0]
    total = np.zeros_like(oof[best_trial])
    chosen: list[int] = []
    history: list[float] = []
    for step in range(1, size + 1):
        pick, pick_score = None, None
        for trial in ranked:
            candidate = score((total + oof[trial]) / step)
            if improves(candidate, pick_score):
                pick, pick_score = trial, candidate
        chosen.append(pick)
        total += oof[pick]
        history.append(pick_score)
    best_step = 0
    for step, value in enumerate(history):
        if improves(value, history[best_step]):
            best_step = step
    counts = dict(Counter(chosen[: best_step + 1]))
    return Selection(counts=counts, score=history[best_step], best_single=score(oof[best_trial]),
                     best_trial=best_trial, history=history)


@dataclass
class Weighted:
    """Members fitted on all the training rows and their weights: one model, as ``families.Fitted``."""

    members: list[families.Fitted]
    weights: list[float]
    trials: list[int]
    task: str

    family = "ensemble"

    def raw(self, X: pd.DataFrame, schema) -> np.ndarray:
        total = self.weights[0] * self.members[0].raw(X, schema)
        for weight, member in zip(self.weights[1:], self.members[1:], strict=True):
            total += weight * member.raw(X, schema)
        return total

    def predict(self, X: pd.DataFrame, schema) -> np.ndarray:
        """The members' native raw scores, weighted and added up, then the link: the native answer."""
        return oof_output(self.raw(X, schema), self.task)

    def shap(self, X: pd.DataFrame, schema) -> np.ndarray:
        total = self.weights[0] * self.members[0].shap(X, schema)
        for weight, member in zip(self.weights[1:], self.members[1:], strict=True):
            total += weight * member.shap(X, schema)
        return total

    @property
    def classes(self) -> list[str]:
        return self.members[0].classes

    def export(self, schema) -> dict[str, np.ndarray]:
        return model_format.pack_weighted([m.export(schema) for m in self.members], self.weights)

    def native_files(self) -> list[tuple[str, bytes]]:
        """Each member's native model file, named by its place: model-0.cbm, model-1.txt..."""
        return [(native_name(member, i), member.native_file()[1]) for i, member in enumerate(self.members)]

    def feature_importance(self, schema) -> dict[str, float]:
        shares: dict[str, float] = {}
        for weight, member in zip(self.weights, self.members, strict=True):
            for name, share in member.feature_importance(schema).items():
                shares[name] = shares.get(name, 0.0) + weight * share
        return shares

    def describe(self, params: list[dict[str, Any]], rounds: list[int]) -> list[dict[str, Any]]:
        """The members as the manifest and MLflow show them."""
        return [{"family": m.family, "trial": t, "weight": w, "rounds": r, "params": p,
                 "native_file": native_name(m, i)}
                for i, (m, t, w, r, p) in enumerate(zip(self.members, self.trials, self.weights, rounds,
                                                        params, strict=True))]


def native_name(member: families.Fitted, i: int) -> str:
    return f"model-{i}.{'cbm' if member.family == 'catboost' else 'txt'}"


def members_tag(members: list[dict[str, Any]]) -> str:
    """The members in a line, for a registry tag: ``catboost#12:0.40, lightgbm#3:0.60``."""
    return ", ".join(f"{m['family']}#{m['trial']}:{m['weight']:.2f}" for m in members)
