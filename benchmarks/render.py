"""The benchmark results page, rendered from the newest result files.

    python -m benchmarks.render [--results FOLDER] [--out PAGE]

Reads the newest serving file and the newest training file in benchmarks/results/ (by the time
each run finished) and writes docs/benchmark-results.md: the machine once, then for each the
targets (ratio, bar, whether it holds) and the absolute figures. No figure on the page is typed
by hand. With a results folder other than benchmarks/results/ (BENCH_RESULTS_DIR), the page goes
beside the files, not into the docs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import results as R

DOCS_PAGE = R.ROOT / "docs" / "benchmark-results.md"
DEFAULT_RESULTS = R.ROOT / "benchmarks" / "results"

INTRO = """\
# Benchmark results

<!-- Written by `python -m benchmarks.render` from benchmarks/results/: edit the renderer, not this page. -->

Rendered from the newest result files in `benchmarks/results/`; `make bench` and `make bench-train`
write a file and render this page. Every target is a ratio, ours / a baseline measured alongside
ours (the two alternating) on the same machine, so it means the same on any machine; the absolute
figures are those of the machine below, and its calibration figures say how fast it is.
[Benchmarks](benchmarks.md) explains what each figure measures and how to run them.
"""


# --- formatting ----------------------------------------------------------------------------------

def num(value, digits: int | None = None) -> str:
    """A figure as the page shows it: thousands separated, a few significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if digits is not None:
            return f"{value:,.{digits}f}"
        if value == 0:
            return "0"
        if abs(value) < 1e-3:
            return f"{value:.1e}"
        if abs(value) < 10:
            return f"{value:.3g}"
        return f"{value:,.1f}".removesuffix(".0")
    return str(value)


def with_unit(value, unit: str) -> str:
    text = num(value)
    return f"{text} {unit}" if unit and value is not None else text


def bar(text: str) -> str:
    op, bound = text.split()
    return f"{'≤' if op == '<=' else '≥'} {bound}"


def table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align``: one letter per column, l or r (default: first l, the rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "--:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def source(path: Path, document: dict) -> str:
    run = document.get("run", {})
    shown = path.relative_to(R.ROOT) if path.is_relative_to(R.ROOT) else path.name
    line = f"Source: `{shown}`, commit `{run.get('commit', '?')}`"
    changed = run.get("uncommitted_changes") or []
    if changed:
        line += f", with uncommitted changes to {', '.join(f'`{c}`' for c in changed)}"
    return line + "."


def targets_table(targets: list[dict]) -> list[str]:
    """Each target: ours, the baseline, their ratio, the bar, whether it holds; the training targets
    also give the difference in the metric (positive: ours is better) and its standard error."""
    differences = any("difference" in t for t in targets)
    rows = []
    for t in targets:
        training = "versus" in t  # scores kept to 4 decimals, and so are their ratios
        held = "yes" if t["holds"] else "**no**"
        if t.get("tie_within_one_standard_error"):
            held = "yes (within one standard error)"
        ratio = "–" if t["ratio"] is None else f"{t['ratio']:.{4 if training else 3}f}"
        ours, baseline = ((num(t["ours"], 4), num(t["baseline"], 4)) if training
                          else (with_unit(t["ours"], t["unit"]), with_unit(t["baseline"], t["unit"])))
        bound = bar(t["bar"]) + (f" {t['unit']}" if t["ratio"] is None and t["unit"] else "")
        row = [t["target"], ours, baseline, ratio]
        if differences:
            difference = "–" if "difference" not in t else f"{t['difference']:+.4f}"
            if t.get("standard_error") is not None:
                difference += f" ± {t['standard_error']:.4f}"
            row.append(difference)
        rows.append([*row, bound, held])
    header = ["target", "ours", "baseline", "ours / baseline"]
    if differences:
        header.append("difference (+: ours better)")
    missed = sum(not t["holds"] for t in targets)
    verdict = (f"All {len(targets)} targets hold." if not missed
               else f"{missed} of {len(targets)} targets do not hold.")
    return [*table([*header, "bar", "holds"], rows, "l" + "r" * (len(header) - 1) + "rl"), verdict, ""]


# --- the machine ---------------------------------------------------------------------------------

IDENTITY = ("cpu", "cores", "memory_gib", "os", "python")


def machine_rows(m: dict) -> dict[str, str]:
    packages = m.get("packages", {})

    def versions(*names: str, found: dict | None = None) -> str:
        found = packages if found is None else found
        return ", ".join(f"{n} {found.get(n) or '–'}" for n in names)

    rows = {
        "CPU": m.get("cpu", "?"),
        "cores": f"{m.get('cores')} ({m.get('cores_usable')} usable)",
        "memory": f"{num(m.get('memory_gib'))} GiB",
        "OS": m.get("os", "?"),
        "Python": m.get("python", "?"),
        "data libraries": versions("numpy", "pandas", "pyarrow"),
        "model libraries": versions("catboost", "lightgbm", "scikit-learn"),
        "tuning": versions("optuna", "flaml"),
    }
    if "function_python" in m:
        rows["the function"] = (f"Python {m['function_python']}, "
                                + versions("numpy", "orjson", "aws-lambda-powertools",
                                           found=m.get("function_package", {})))
        rows["the native baseline handler"] = versions("catboost", "numpy", "boto3",
                                                       found=m.get("native_baseline", {}))
        rows["the local cloud"] = versions("localstack-core", found=m.get("local_cloud", {}))
    labels = {
        "python_loop_1m_ms": ("calibration: an interpreter loop of 1M steps", "ms"),
        "numpy_sort_1m_ms": ("calibration: numpy sorting 1M floats", "ms"),
        "native_handler_cold_start_ms": ("calibration: the native handler's cold start", "ms"),
        "native_handler_warm_single_p50_us": ("calibration: the native handler's warm single-row p50", "µs"),
        "native_batch_rows_per_s": ("calibration: the native batch baseline", "rows/s"),
        "lightgbm_fit_s": ("calibration: a fixed LightGBM fit (10,000 × 20, 200 rounds)", "s"),
    }
    for key, value in m.get("calibration", {}).items():
        label, unit = labels.get(key, (f"calibration: {key}", ""))
        rows[label] = with_unit(value, unit)
    return rows


def machine_section(documents: dict[str, dict]) -> list[str]:
    lines = ["## The machine", ""]
    described = {kind: machine_rows(d.get("machine", {})) for kind, d in documents.items()}
    machines = {kind: d.get("machine", {}) for kind, d in documents.items()}
    same = len({tuple(str(m.get(k)) for k in IDENTITY) for m in machines.values()}) == 1
    if same:
        merged: dict[str, str] = {}
        for rows in described.values():
            for label, value in rows.items():
                merged.setdefault(label, value)
        kinds = " and ".join(f"`make {'bench' if k == 'serving' else 'bench-train'}`" for k in documents)
        lines += [f"Both result files ({kinds}) come from one machine." if len(documents) > 1 else "", ""]
        lines += table(["", ""], [[k, v] for k, v in merged.items()], "ll")
    else:
        kinds = list(described)
        labels = list(dict.fromkeys(label for rows in described.values() for label in rows))
        lines += ["The two files come from different machines.", ""]
        lines += table(["", *kinds], [[label, *(described[k].get(label, "–") for k in kinds)]
                                      for label in labels], "l" * (1 + len(kinds)))
    return lines


# --- serving -------------------------------------------------------------------------------------

def serving_section(path: Path, d: dict) -> list[str]:
    settings = d.get("run", {}).get("settings", {})
    lines = ["## Serving: `make bench`", "", source(path, d), ""]
    lines.append(f"Cold starts: {settings.get('cold_runs')} per handler, alternating; warm calls: "
                 f"{num(settings.get('warm_calls'))} per process in {settings.get('warm_rounds')} processes "
                 f"per handler, alternating; sections: {', '.join(settings.get('sections', []))}.")
    lines += ["", "### Targets", "", *targets_table(d.get("targets", []))]
    datasets = d.get("datasets", {})
    if datasets:
        lines += ["### Requests", "",
                  "Medians; ours is the project's handler, the baseline the native CatBoost handler.", ""]
        header = ["figure"]
        for name in datasets:
            label = name.replace("_", " ")
            header += [f"{label}: ours", f"{label}: baseline"]
        figures = [
            ("cold start, first answer (ms)", "cold_first_response_ms_median", True),
            ("cold start, import (ms)", "cold_import_ms_median", True),
            ("cold start, whole process (ms)", "cold_process_ms_median", True),
            ("warm single row, p50 (µs)", "warm_single_p50_us", True),
            ("warm single row, p99 (µs)", "warm_single_p99_us", True),
            ("1000 rows in one request (ms)", "warm_1000_rows_median_ms", True),
            ("1000 rows sent as arrays (ms)", "warm_1000_rows_features_median_ms", False),
            ("peak memory (MB)", "peak_rss_mb", True),
            ("by name, /models/{name}/predict, p50 (µs)", "warm_named_p50_us", False),
            ("routing by name, added p50 (µs)", "routing_by_name_overhead_p50_us", False),
            ("every request captured, added p50 (µs)", "capture_overhead_p50_us", False),
            ("/explain, 1 row, p50 (µs)", "warm_explain_1_p50_us", False),
            ("/explain, 10 rows, p50 (µs)", "warm_explain_10_p50_us", False),
            ("JSON alone, p50 (µs)", "floor_json_parse_and_dump_p50_us", False),
            ("validation alone, p50 (µs)", "floor_validation_p50_us", False),
            ("the evaluator alone, p50 (µs)", "floor_evaluator_p50_us", False),
            ("the answer without logging or metrics, p50 (µs)",
             "floor_answer_without_logging_or_metrics_p50_us", False),
        ]
        rows = []
        for label, key, both in figures:
            row = [label]
            for entry in datasets.values():
                row += [num(entry.get("ours", {}).get(key)),
                        num(entry.get("baseline", {}).get(key)) if both else "–"]
            rows.append(row)
        rows.append(["served = native, largest difference",
                     *[x for e in datasets.values() for x in (num(e.get("exactness_max_abs_diff")), "–")]])
        lines += table(header, rows)
        extra = []
        if "hello_world" in d:
            extra.append(f"A hello-world handler's cold start, timed the same way (the floor): "
                         f"{num(d['hello_world']['cold_first_response_ms_median'])} ms.")
        second = d.get("second_model_cold_start")
        if second:
            extra.append(f"A container whose first request names another model than its default one: "
                         f"{num(second['cold_first_response_ms_median'])} ms to the first answer.")
        lines += [" ".join(extra), ""] if extra else []
    package = d.get("package")
    if package:
        lines += [f"The deployment package: {num(package['zipped_mb'])} MB zipped, "
                  f"{num(package['unzipped_mb'])} MB unzipped, {num(package['files'])} files.", ""]
    lines += batch_section(d.get("batch_scoring"))
    lines += curve_section(d.get("curve"))
    return lines


def batch_section(batch: dict | None) -> list[str]:
    if not batch:
        return []
    lines = ["### Batch scoring", "",
             f"{num(batch['rows'])} rows ({num(batch['input_mb'])} MB, {num(batch['invalid_rows'])} invalid) "
             f"in {batch['parts']} parts; one worker and the baseline alternate {batch['rounds']} times "
             f"(medians). The baseline is {batch['baseline']['what']}.", ""]
    one = batch["1_worker"]
    memory = sorted(run["peak_rss_mb_per_worker_max"] for run in one["runs"]) or [None]
    rows = [["ours, 1 worker (validates every row, writes the outputs)",
             num(one["rows_per_s_per_worker_median"]), num(one["score_s_median"]),
             num(memory[len(memory) // 2])]]
    for reader in ("pandas", "pyarrow"):
        if reader in batch["baseline"]:
            runs = batch["baseline"][reader]["runs"]
            seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
            peak = sorted(r.get("peak_rss_mb") or 0.0 for r in runs)[len(runs) // 2] or None
            chosen = " (the baseline)" if batch["baseline"]["reader"] == reader else ""
            rows.append([f"{reader} reads the CSV, native CatBoost predicts{chosen}",
                         num(batch["baseline"][reader]["rows_per_s_median"]), num(seconds), num(peak)])
    for workers in (2, 4):
        run = batch.get(f"{workers}_workers")
        if run:
            rows.append([f"ours, {workers} workers at once", num(run["rows_per_s_per_worker_median"]),
                         num(run["score_s"]), num(run["peak_rss_mb_per_worker_max"])])
    lines += table(["", "rows/s per worker", "seconds", "peak MB per worker"], rows)
    lines += ["Seconds: for ours, the state machine's scoring phase; for the baseline, its model load, "
              "read and prediction. Ours is the median part's rate: its rows over its seconds, the model's "
              "load, the download's waits and the uploads included.", ""]
    lines += [f"Speed-up of the scoring with 2 and 4 workers: {num(batch['speedup_2_workers'])}×, "
              f"{num(batch['speedup_4_workers'])}× ({batch['note']}); every row accounted for: "
              f"{num(batch['count_check'])}.", ""]
    return lines


def curve_section(curve: dict | None) -> list[str]:
    if not curve:
        return []
    lines = ["### Cost curve", "", f"One container per layout; the table: {curve['table']}.", ""]
    rows = [[e["layout"], num(e["trees"]), num(e["depth"]), num(e["bundle_mb"]), num(e["warm_p50_us"]),
             num(e["warm_p99_us"]), num(e.get("cold_first_response_ms_median")), num(e["rss_mb_after_load"])]
            for e in curve["by_model_size"]]
    lines += table(["layout", "trees", "depth", "model.npz (MB)", "warm p50 (µs)", "warm p99 (µs)",
                    "cold start (ms)", "memory after load (MB)"], rows)
    by_rows = curve.get("by_rows_per_request", {})
    if by_rows:
        counts = [p["rows"] for p in next(iter(by_rows.values()))]
        rows = [[layout, *(num(p["warm_p50_us"]) for p in points)] for layout, points in by_rows.items()]
        lines += ["Warm p50 (µs) against rows per request, 500 trees of depth 6:", ""]
        lines += table(["layout", *(f"{c} row{'s' if c > 1 else ''}" for c in counts)], rows)
    return lines


# --- training ------------------------------------------------------------------------------------

def score(contender: dict) -> str:
    text = num(contender["mean"], 4)
    if contender.get("standard_error") is not None:
        text += f" ± {num(contender['standard_error'], 4)}"
    return text


def cores(d: dict) -> str:
    threads = d.get("threads")
    return f"{threads} core" + ("" if threads == 1 else "s")


def side_by_side(d: dict) -> str:
    """How the runs shared the machine: side by side on their own cores, or one at a time."""
    parallel, minutes = d.get("parallel"), d.get("runs_minutes")
    took = f", all runs in {num(minutes)} min" if minutes is not None else ""
    if parallel and parallel > 1:
        return f" ({parallel} runs side by side, each pinned to its own cores{took})"
    return f" (one run at a time{took})"


def training_section(path: Path, d: dict) -> list[str]:
    seeds = d.get("seeds", [])
    spread = ("scores are means ± their standard error" if len(seeds) > 1
              else "one split and one study per data set, so no standard error")
    lines = ["## Training: `make bench-train`", "", source(path, d), "",
             f"A budget of {num(d.get('budget_seconds'))} s and {cores(d)} for each of ours, FLAML and "
             f"AutoGluon{side_by_side(d)}, seeds {', '.join(map(str, seeds))}: {spread}. F1 macro: higher "
             "is better; RMSE: lower is better.", "", "### Targets", "", *targets_table(d.get("targets", []))]
    summary = d.get("summary", {})
    if "mean_normalised" in summary:
        normalised = ", ".join(f"{k} {num(v, 4)}" for k, v in summary["mean_normalised"].items())
        lines += [f"Over {summary['sets']} sets, ours is at least the best default model on "
                  f"{summary['ge_best_default']}, at least FLAML on {summary['ge_flaml']}"
                  + (f" and at least AutoGluon on {summary['ge_autogluon']}" if summary.get("ge_autogluon")
                     is not None else "")
                  + f" (a tie within one standard error counts); mean normalised score (0 a set's worst "
                  f"contender, 1 its best): {normalised}. AutoGluon: {summary.get('autogluon')}.", ""]
    datasets = d.get("datasets", {})
    if datasets:
        rows = []
        for name, e in datasets.items():
            c = e["contenders"]
            members = c["ours"].get("members")
            rows.append([name, e["about"], f"{num(e['rows_train'])} / {num(e['rows_test'])}", e["metric"],
                         score(c["ours"]), num(c["ours"].get("trials_mean")),
                         "–" if members is None else " ".join(map(str, members)),
                         f"{score(c[e['best_default']])} ({e['best_default']})", score(c["flaml"]),
                         score(c["autogluon"]) if "autogluon" in c else "–"])
        lines += ["### Per data set", ""]
        lines += table(["data set", "what", "rows train / test", "metric", "ours", "ours: trials",
                        "ours: members per seed", "best default model", "FLAML", "AutoGluon"], rows,
                       "lllrrrrrrr")
        def cost(serving: dict, key: str) -> str:
            return num(round(serving[key]) if key == "bundle_bytes" else serving[key], 3)

        rows = [[name, *(cost(e["serving"][side], k) for side in ("ours", "best_trial")
                         for k in ("bundle_bytes", "warm_p50_ms", "cold_ms"))]
                for name, e in datasets.items() if "serving" in e]
        if rows:
            lines += ["What our model costs to serve, beside the study's best trial alone (means over the "
                      "seeds; one row, in-process):", ""]
            lines += table(["data set", "ours: bytes", "ours: warm ms", "ours: cold ms", "best trial: bytes",
                            "best trial: warm ms", "best trial: cold ms"], rows, "lrrrrrr")
        defaults = ("random_forest", "hist_gradient_boosting", "catboost_defaults", "lightgbm_defaults")
        rows = [[name, *(score(e["contenders"][k]) for k in defaults)] for name, e in datasets.items()]
        lines += ["Every default model:", ""]
        lines += table(["data set", *defaults], rows)
    throughput = d.get("tuning_throughput")
    if throughput:
        one, two = throughput["one_worker"], throughput["two_workers"]
        lines += [f"Tuning throughput, breast cancer: {num(one['trials_per_minute'])} trials per minute with "
                  f"one worker, {num(two['trials_per_minute'])} with two sharing the study "
                  f"({num(throughput['speedup'])}×).", ""]
    return lines


# --- load ----------------------------------------------------------------------------------------

def load_section(path: Path, d: dict) -> list[str]:
    settings = d.get("run", {}).get("settings", {})
    m = d.get("machine", {})
    statuses = ", ".join(f"{status}: {num(n)}" for status, n in sorted(d.get("statuses", {}).items()))
    lines = ["## The API under load: `make load`", "", source(path, d), "",
             f"{settings.get('clients')} clients for {num(settings.get('minutes'))} minutes on "
             f"{', '.join(settings.get('models', []))} through LocalStack's API Gateway, a promotion every "
             f"{num(settings.get('promote_every_s'))} s ({d.get('promotions')} in all), on "
             f"{m.get('cores')} cores and {num(m.get('memory_gib'))} GiB. Answers by status: {statuses}.", ""]
    rows = [[route, num(f["requests"]), num(f["requests_per_s"]), num(f["p50_ms"]), num(f["p99_ms"]),
             num(f["max_ms"])] for route, f in d.get("latency", {}).items()]
    lines += table(["route", "requests", "requests/s", "p50 (ms)", "p99 (ms)", "max (ms)"], rows)
    environments = d.get("environments", {})
    lines += [f"The function's execution environments (the local executor's processes), sampled every "
              f"second: at most {environments.get('max')}, median {environments.get('median')}.", ""]
    return lines


def render(folder: Path) -> str:
    found = {kind: R.newest(kind, folder) for kind in ("serving", "training")}
    found = {kind: f for kind, f in found.items() if f}
    load = R.newest("load", folder)
    lines = [INTRO]
    if not found and not load:
        lines.append("No result file yet: run `make bench` or `make bench-train`.\n")
        return "\n".join(lines)
    if found:
        lines += machine_section({kind: document for kind, (_, document) in found.items()})
    if "serving" in found:
        lines += serving_section(*found["serving"])
    if "training" in found:
        lines += training_section(*found["training"])
    if load:
        lines += load_section(*load)
    text = "\n".join(lines).rstrip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=R.RESULTS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or (DOCS_PAGE if args.results.resolve() == DEFAULT_RESULTS.resolve()
                       else args.results / "benchmark-results.md")
    out.write_text(render(args.results))
    print(f"[render] wrote {out.relative_to(R.ROOT) if out.is_relative_to(R.ROOT) else out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
