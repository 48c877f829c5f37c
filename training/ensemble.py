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
class Bagged:
    """One trial's fold models from the study (each fitted on K-1 of the first repeat's K folds, early
    stopped on the fold it left out): their raw scores averaged, as AutoGluon bags. A member of a
    ``Weighted`` model, which holds its fold models as members of weight 1/K each."""

    models: list[families.Fitted]

    def as_weighted(self, trial: int) -> Weighted:
        return Weighted.of([self], [1.0], [trial], self.models[0].task)

    def export(self, schema) -> dict[str, np.ndarray]:
        return self.as_weighted(0).export(schema)


@dataclass
class Weighted:
    """Members and their weights: one model, as ``families.Fitted``. A member is a trial fitted on all
    the training rows, or one of a bagged trial's fold models (``fold`` says which)."""

    members: list[families.Fitted]
    weights: list[float]
    trials: list[int]
    task: str
    folds: list[int | None] | None = None  # a bagged member's fold, None for a refit one

    family = "ensemble"

    @classmethod
    def of(cls, fitted: list[families.Fitted | Bagged], weights: list[float], trials: list[int],
           task: str) -> Weighted:
        """The trials' models and weights; a bagged trial's K fold models each take 1/K of its weight."""
        parts = []
        for model, weight, trial in zip(fitted, weights, trials, strict=True):
            if isinstance(model, Bagged):
                parts += [(m, weight / len(model.models), trial, k) for k, m in enumerate(model.models)]
            else:
                parts.append((model, weight, trial, None))
        return cls([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts], task,
                   [p[3] for p in parts])

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
        """One weighted model; members of one layout folded together (``fold``)."""
        return model_format.pack_weighted(*fold([m.export(schema) for m in self.members], self.weights))

    def native_files(self) -> list[tuple[str, bytes]]:
        """Each member's native model file, named by its place: model-0.cbm, model-1.txt..."""
        return [(native_name(member, i), member.native_file()[1]) for i, member in enumerate(self.members)]

    def feature_importance(self, schema) -> dict[str, float]:
        shares: dict[str, float] = {}
        for weight, member in zip(self.weights, self.members, strict=True):
            for name, share in member.feature_importance(schema).items():
                shares[name] = shares.get(name, 0.0) + weight * share
        return shares

    def describe(self, params: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        """The members as the manifest and MLflow show them (``params``: each trial's)."""
        folds = self.folds or [None] * len(self.members)
        return [{"family": m.family, "trial": t, "weight": w, "rounds": m.best_rounds, "params": params[t],
                 **({"fold": k} if k is not None else {}), "native_file": native_name(m, i)}
                for i, (m, t, w, k) in enumerate(zip(self.members, self.trials, self.weights, folds,
                                                     strict=True))]


def native_name(member: families.Fitted, i: int) -> str:
    return f"model-{i}.{'cbm' if member.family == 'catboost' else 'txt'}"


def members_tag(members: list[dict[str, Any]]) -> str:
    """The members in a line, for a registry tag: ``catboost#12:0.40, lightgbm#3:0.60``; a bagged
    trial once, its folds' weights added up: ``catboost#12:0.40 (5 folds)``."""
    trials: dict[int, list] = {}  # trial → [family, weight, folds]
    for m in members:
        entry = trials.setdefault(m["trial"], [m["family"], 0.0, 0])
        entry[1] += m["weight"]
        entry[2] += "fold" in m
    return ", ".join(f"{family}#{trial}:{weight:.2f}" + (f" ({folds} folds)" if folds else "")
                     for trial, (family, weight, folds) in trials.items())


# --- members of one layout folded into one model ----------------------------------------------------
# Each member is an evaluator call of its own when served; members of one layout are folded into one
# model (their trees side by side, each leaf times its member's weight), so that an ensemble costs at
# most an oblivious and a nodes evaluation. The sum is the same up to the order of the additions.

def fold(members: list[dict[str, np.ndarray]], weights: list[float]) -> tuple[list[dict], list[float]]:
    """Members of one layout merged where that is exact (LightGBM's always; CatBoost's of one depth,
    without target statistics, with the same category hashes); the weights are then in the leaves."""
    nodes = [(m, w) for m, w in zip(members, weights, strict=True) if str(m["layout"]) == "nodes"]
    groups: dict[tuple, list[tuple[dict, float]]] = {}
    kept: list[tuple[dict, float]] = []
    for member, weight in zip(members, weights, strict=True):
        if str(member["layout"]) != "oblivious":
            continue
        if member["ctr_projection"].size or member["element_kind"].size:
            kept.append((member, weight))  # target statistics: tables of its own
        else:
            # one depth: a shallower member padded to a deeper one's 2**depth leaves would grow the bundle
            key = (member["features"].shape[1], member["cat_hash_offset"].tobytes(),
                   member["cat_hashes"].tobytes())
            groups.setdefault(key, []).append((member, weight))
    out = [(_fold_nodes(nodes), 1.0)] if len(nodes) > 1 else nodes
    for group in groups.values():
        out += [(_fold_oblivious(group), 1.0)] if len(group) > 1 else group
    out += kept
    return [m for m, _ in out], [w for _, w in out]


def _fold_nodes(pairs: list[tuple[dict, float]]) -> dict[str, np.ndarray]:
    first = pairs[0][0]
    width = max(m["category_sets"].shape[1] for m, _ in pairs)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in (
        "roots", "feature", "threshold", "default_left", "missing_type", "is_categorical", "category_index",
        "category_sets", "left", "right", "value", "count")}
    nodes = sets = 0
    for member, weight in pairs:
        for name in ("feature", "threshold", "default_left", "missing_type", "is_categorical", "count"):
            columns[name].append(member[name])
        for name in ("roots", "left", "right"):
            columns[name].append(member[name] + nodes)
        index = member["category_index"]
        columns["category_index"].append(np.where(member["is_categorical"], index + sets, index))
        own = member["category_sets"]
        columns["category_sets"].append(np.pad(own, ((0, 0), (0, width - own.shape[1]))))
        columns["value"].append(member["value"] * weight)
        nodes += member["left"].shape[0]
        sets += own.shape[0]
    return model_format.pack("nodes", str(first["task"]), int(first["n_features"]), int(first["n_outputs"]),
                             max_depth=max(int(m["max_depth"]) for m, _ in pairs),
                             **{name: np.concatenate(parts) for name, parts in columns.items()})


def _fold_oblivious(pairs: list[tuple[dict, float]]) -> dict[str, np.ndarray]:
    first = pairs[0][0]
    depth = max(m["features"].shape[1] for m, _ in pairs)
    pads = {"features": 0, "borders": np.inf, "nan_goes_right": False, "is_equal": False,
            "equal_code": np.nan}
    columns: dict[str, list[np.ndarray]] = {name: [] for name in (*pads, "leaf_values", "leaf_weights")}
    for member, weight in pairs:
        extra = depth - member["features"].shape[1]  # trailing levels that never fire, as training.export
        for name, value in pads.items():
            columns[name].append(np.pad(member[name], ((0, 0), (0, extra)), constant_values=value))
        leaves = 2 ** depth - member["leaf_values"].shape[1]
        columns["leaf_values"].append(np.pad(member["leaf_values"] * (float(member["scale"]) * weight),
                                             ((0, 0), (0, leaves), (0, 0))))
        columns["leaf_weights"].append(np.pad(member["leaf_weights"], ((0, 0), (0, leaves))))
    bias = sum(weight * m["bias"] for m, weight in pairs)
    shared = ("cat_hash_offset", "cat_hashes", "element_projection", "element_kind", "element_column",
              "element_border", "element_nan_true", "element_code", "ctr_projection", "ctr_offset",
              "ctr_keys", "ctr_values", "ctr_default")  # no target statistics; the members' hashes
    return model_format.pack("oblivious", str(first["task"]), int(first["n_features"]),
                             int(first["n_outputs"]), scale=1.0, bias=bias,
                             **{n: np.concatenate(p) for n, p in columns.items()},
                             **{name: first[name] for name in shared})
