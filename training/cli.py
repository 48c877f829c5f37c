"""Command line of the training job.

    python -m training train    [--config FILE] [--set key=value ...] [--no-publish]
    python -m training tune     [--config FILE] [--set ...]   # one worker of a shared study
    python -m training versions [--model NAME]
    python -m training promote  VERSION [--model NAME]
    python -m training rollback [--model NAME]
    python -m training history  [--model NAME]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from training import config as C


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML settings (default: training/configs/default.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set tuning.n_trials=30")


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=os.environ.get("MODEL_NAME", "breast-cancer"))
    parser.add_argument("--bucket", default=os.environ.get("MODEL_BUCKET"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description="The training job")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="tune, fit, publish and gate a model")
    _common(train)
    train.add_argument("--no-publish", action="store_true", help="train and evaluate only")
    tune_cmd = commands.add_parser("tune", help="run trials of a shared study (a worker)")
    _common(tune_cmd)
    for name in ("versions", "rollback", "history"):
        _model_args(commands.add_parser(name))
    promote_cmd = commands.add_parser("promote", help="make a published version champion")
    promote_cmd.add_argument("version", type=int)
    _model_args(promote_cmd)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("botocore", "urllib3", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from training import job

    if args.command in ("train", "tune"):
        try:
            config = C.load(args.config, args.set)
        except C.ConfigError as error:
            parser.error(str(error))
        from training.data import DataError

        try:
            if args.command == "train":
                job.print_json(job.run(config, publish=not args.no_publish))
            else:
                job.print_json(_tune_worker(config))
        except DataError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0

    from serving.model import bundle
    from serving.store import bundles

    from training import promotion

    if not args.bucket:
        parser.error("no model bucket: set MODEL_BUCKET or --bucket")
    s3 = job.s3_client()
    try:
        if args.command == "versions":
            pointer = bundles.read_champion(s3, args.bucket, args.model)
            rows = []
            for version in bundles.list_versions(s3, args.bucket, args.model):
                m = bundles.read_manifest(s3, args.bucket, args.model, version)
                rows.append({"version": version, "created_at": m["created_at"],
                             "family": m["framework"]["family"], "task": m.get("task"),
                             "test": {k: v for k, v in m["metrics"]["test"].items()
                                      if k in ("accuracy", "f1_macro", "roc_auc", "rmse", "mae", "r2")},
                             "champion": bool(pointer and pointer["version"] == version)})
            job.print_json(rows)
        elif args.command == "promote":
            pointer = promotion.promote(s3, args.bucket, args.model, args.version, "promoted by hand")
            _mirror(args.model, pointer["version"])
            job.print_json(pointer)
        elif args.command == "rollback":
            pointer = promotion.rollback(s3, args.bucket, args.model)
            _mirror(args.model, pointer["version"])
            job.print_json(pointer)
        else:
            job.print_json(promotion.history(s3, args.bucket, args.model))
    except bundle.BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _tune_worker(config):
    from training import job, tune

    if not (config["tuning"]["storage"] and config["tuning"]["study_name"]):
        raise SystemExit("a tuning worker needs a shared study: "
                         "--set tuning.storage=URL --set tuning.study_name=NAME")
    prepared = job.prepare(config)
    study = tune.create_study(config, job.study_name(config, prepared), prepared.metric, worker=True)
    tune.optimize(study, config, prepared.X_train, prepared.y_train, prepared.schema, prepared.classes,
                  prepared.task, prepared.metric, worker=True)
    return {"study": study.study_name, "trials": len(study.trials)}


def _mirror(name: str, version: int) -> None:
    """Keep MLflow's champion alias in step with S3; S3 stays the source of truth."""
    try:
        from training import tracking

        tracking.setup(C.load())
        tracking.mirror_champion(name, version)
    except Exception as error:  # the registry is a mirror: warn, do not undo the promotion
        logging.getLogger("training").warning("MLflow alias not updated: %s", error)


if __name__ == "__main__":
    sys.exit(main())
