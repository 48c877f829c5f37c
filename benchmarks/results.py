"""Result files: targets as ratios, the file each benchmark writes, and the verdict it ends with.

A target compares ours with a baseline measured in the same run: its ``ratio`` is ours /
baseline and its ``bar`` a bound on that ratio. Figures that do not depend on the machine
(a package's size, the largest difference between two answers) are bounded directly.

    benchmarks/results/<date>-<commit>.json        make bench
    benchmarks/results/<date>-<commit>-train.json  make bench-train
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "benchmarks" / "results")
SUFFIX = {"serving": "", "serving-partial": "-partial", "training": "-train", "training-sets": "-train-sets",
          "ensemble-refit": "-ensemble-refit", "ensemble-choices": "-ensemble-choices",
          "decision-thresholds": "-decision-thresholds", "load": "-load"}
# the paths whose uncommitted changes a result file lists: what the benchmarks run
CODE = ("functions", "training", "benchmarks", "infra", "template.yaml", "pyproject.toml", "uv.lock")


def holds(value: float, bar: str) -> bool:
    op, bound = bar.split()
    return value <= float(bound) if op == "<=" else value >= float(bound)


def ratio_target(name: str, ours: float, baseline: float, unit: str, bar: str, digits: int = 3,
                 **more) -> dict:
    """ours / baseline against ``bar`` ("<= 0.2", ">= 1.0"); the ratio is kept to ``digits`` decimals
    and judged as shown."""
    ratio = round(ours / baseline, digits)
    return {"target": name, "ours": ours, "baseline": baseline, "unit": unit, "ratio": ratio,
            "bar": bar, "holds": holds(ratio, bar), **more}


def bound_target(name: str, figure: float, unit: str, bar: str) -> dict:
    """A figure the machine does not change, bounded directly."""
    return {"target": name, "ours": figure, "baseline": None, "unit": unit, "ratio": None, "bar": bar,
            "holds": holds(figure, bar)}


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603, S607  # nosec B607
    return result.stdout if result.returncode == 0 else ""


def run_info(settings: dict) -> dict:
    """When and on which commit; the code paths with uncommitted changes; the knobs it ran with."""
    now = datetime.datetime.now(datetime.UTC)
    status = _git("status", "--porcelain", "--", *CODE, ":(exclude)benchmarks/results")
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    return {"date": now.date().isoformat(), "finished": now.isoformat(timespec="seconds"),
            "commit": _git("rev-parse", "--short=7", "HEAD").strip() or "unknown",
            "uncommitted_changes": changed, "settings": settings}


def path_for(document: dict) -> Path:
    run = document["run"]
    return RESULTS / f"{run['date']}-{run['commit']}{SUFFIX[document['kind']]}.json"


def newest(kind: str, folder: Path = RESULTS) -> tuple[Path, dict] | None:
    """The result file of ``kind`` that finished last."""
    found = []
    for path in folder.glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]-*.json"):  # <date>-<commit>...
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("kind") == kind:
            found.append((document.get("run", {}).get("finished", ""), path.name, path, document))
    if not found:
        return None
    *_, path, document = max(found, key=lambda f: f[:2])
    return path, document


def _figure(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}".removesuffix(".0")
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value} {unit}".strip()


def print_targets(targets: list[dict], out=sys.stderr) -> None:
    width = max(len(t["target"]) for t in targets)
    print(f"{'target':<{width}}  {'ours':>14}  {'baseline':>14}  {'ratio':>7}  {'bar':>9}  holds", file=out)
    for t in targets:
        digits = 4 if "versus" in t else 3  # training's scores and ratios: 4 decimals
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.{digits}f}"
        ours, baseline = ((f"{t['ours']:.4f}", f"{t['baseline']:.4f}") if "versus" in t
                          else (_figure(t["ours"], t["unit"]), _figure(t["baseline"], t["unit"])))
        held = "yes" if t["holds"] else "NO"
        if t.get("tie_within_one_standard_error"):
            held = f"yes (a tie: {t['difference']:+.4f} ± {t['standard_error']:.4f})"
        print(f"{t['target']:<{width}}  {ours:>14}  {baseline:>14}  {ratio:>7}  {t['bar']:>9}  {held}",
              file=out)


def finish(document: dict) -> int:
    """Write the result file, print it as JSON, render the results page, print the targets; the
    last line says whether every target holds. The exit status: 0 when they all do."""
    path = path_for(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, default=str)
    path.write_text(text + "\n")
    print(text, flush=True)
    from benchmarks import render

    render.main([])
    targets = document["targets"]
    print_targets(targets)
    missed = [t["target"] for t in targets if not t["holds"]]
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    if missed:
        print(f"{len(missed)} of {len(targets)} targets do not hold ({'; '.join(missed)}); "
              f"written to {shown}", file=sys.stderr, flush=True)
        return 1
    print(f"all {len(targets)} targets hold; written to {shown}", file=sys.stderr, flush=True)
    return 0
