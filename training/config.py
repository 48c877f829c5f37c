"""The job's configuration: one YAML file, overridden by ``--set key.sub=value``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULT = Path(__file__).parent / "configs" / "default.yaml"


class ConfigError(ValueError):
    pass


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    config = yaml.safe_load(Path(DEFAULT).read_text())
    if path and Path(path).resolve() != DEFAULT.resolve():
        _merge(config, yaml.safe_load(Path(path).read_text()) or {}, str(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value")
        _set(config, key.strip(), yaml.safe_load(raw))
    _check(config)
    return config


def _merge(base: dict, update: dict, where: str, prefix: str = "") -> None:
    for key, value in update.items():
        if key not in base:
            raise ConfigError(f"{where}: unknown setting {prefix}{key}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, where, f"{prefix}{key}.")
        else:
            base[key] = copy.deepcopy(value)


def _set(config: dict, dotted: str, value: Any) -> None:
    node = config
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--set {dotted}: unknown setting")
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"--set {dotted}: unknown setting")
    node[leaf] = value


METRICS = ("f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2")


def _check(config: dict) -> None:
    tuning = config["tuning"]
    chosen = (("tuning.metric", tuning["metric"]), ("promotion.metric", config["promotion"]["metric"]))
    for key, metric in chosen:
        if metric is not None and metric not in METRICS:
            raise ConfigError(f"{key} {metric!r}: use {', '.join(METRICS)}")
    if config["task"] not in (None, "binary", "multiclass", "regression"):
        raise ConfigError(f"task {config['task']!r}: use binary, multiclass or regression (or leave it out)")
    if config["class_weight"] not in ("tune", "balanced", "none"):
        raise ConfigError(f"class_weight {config['class_weight']!r}: use tune, balanced or none")
    if config["regression"]["objective"] not in ("squared_error", "absolute_error", "huber"):
        raise ConfigError(f"regression.objective {config['regression']['objective']!r}: "
                          "use squared_error, absolute_error or huber")
    if not isinstance(config["drop_columns"], list):
        raise ConfigError("drop_columns must be a list: --set drop_columns=[name,other]")
    unknown = set(tuning["families"]) - {"catboost", "lightgbm"}
    if unknown or not tuning["families"]:
        raise ConfigError(f"tuning.families {tuning['families']}: choose from catboost, lightgbm")
    if int(tuning["cv_folds"]) < 2:
        raise ConfigError("tuning.cv_folds must be at least 2")
    repeats = tuning["cv_repeats"]
    if repeats != "auto" and not (isinstance(repeats, int) and repeats >= 1):
        raise ConfigError(f"tuning.cv_repeats {repeats!r}: use auto or a whole number from 1")
    if config["ensemble"] is False:  # YAML reads a bare off as false
        config["ensemble"] = "off"
    if config["ensemble"] not in ("auto", "off"):
        raise ConfigError(f"ensemble {config['ensemble']!r}: use auto or off")
    if config["ensemble_members"] not in ("auto", "refit", "bagged"):
        raise ConfigError(f"ensemble_members {config['ensemble_members']!r}: use auto, refit or bagged")
    slowdown = config["ensemble_max_slowdown"]
    if slowdown is False:  # YAML reads a bare off as false
        config["ensemble_max_slowdown"] = slowdown = "off"
    if slowdown != "off" and not (isinstance(slowdown, int | float) and not isinstance(slowdown, bool)
                                  and slowdown >= 1):
        raise ConfigError(f"ensemble_max_slowdown {slowdown!r}: use off or a number from 1 (times the best "
                          "trial's single-row answer)")
    threshold = config["decision_threshold"]
    if threshold != "auto" and not (isinstance(threshold, int | float) and 0 < threshold < 1):
        raise ConfigError(f"decision_threshold {threshold!r}: use auto or a number between 0 and 1")
    if config["constant_columns"] not in ("drop", "error", "keep"):
        raise ConfigError("constant_columns must be drop, error or keep")
    if not 0 < float(config["test_size"]) < 1:
        raise ConfigError("test_size must be between 0 and 1")
