"""`make mutation`: how many mutants of the serving code the fast tests kill, per module.

mutmut (3.8) changes one thing at a time in functions/serving/ and
functions/handlers/ (a `<=` into `<`, a constant, a dropped call...) and runs the
tests that reach the changed function; a mutant the tests do not notice
*survives*. Survivors that cannot change behaviour are listed, with why, in
tests/mutation/equivalent.txt.

mutmut names modules from file paths and strips only a `src.` prefix, while the
tests import `serving.x` and `handlers.x`: so it runs in a workspace,
.local/mutation/, where `src` is a link to functions/. The test models are
built first, in their own process (tests/models.py): the forked workers then
read arrays and never start LightGBM's OpenMP threads.

Prints one JSON document: per module, mutants killed, survived (listed as
equivalent or not), timed out and not reached, and the score; the diffs of the
survivors nobody explained go to stderr.

    python tests/mutation/run.py               # everything, from a fresh workspace
    python tests/mutation/run.py --survivors   # only the last run's survivors that equivalent.txt does not
                                                # explain, against the tests as they are now
    python tests/mutation/run.py serving.batch.steps serving.batch.csvfile   # only these modules' mutants, in the
                                                # last run's workspace (after changing them); the
                                                # report keeps the other modules' last results
    python tests/mutation/run.py --resume      # only the mutants the workspace has not run yet (a
                                                # run stopped part way goes on where it stopped; a
                                                # function changed since is run again)
    python tests/mutation/run.py --report      # run nothing: the workspace's scores as they are
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".local" / "mutation"
EQUIVALENT = Path(__file__).with_name("equivalent.txt")
TARGET = 0.90
KILLED = {1, 3, -9}  # -9: the kernel killed the tests' process (a mutant that fills the memory)
TIMEOUT = {36, -24, 24, 152, 255}


def log(message: str) -> None:
    print(f"[mutation] {message}", file=sys.stderr, flush=True)


def workspace(fresh: bool) -> None:
    if WORK.exists() and fresh:
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True, exist_ok=True)
    for name, target in (("src", "functions"), ("tests", "tests"), ("training", "training"), ("events", "events")):
        link = WORK / name
        if not link.exists():
            link.symlink_to(ROOT / target, target_is_directory=True)
    shutil.copy2(ROOT / "pyproject.toml", WORK / "pyproject.toml")


def equivalent() -> list[tuple[str, re.Pattern, str]]:
    """(function, pattern of the mutated line, why the change cannot alter what the code does).

    A line of equivalent.txt is ``function | regular expression | reason``: it explains every
    surviving mutant of that function whose changed line matches the expression. Mutant numbers
    change whenever a function is edited; functions and lines do not.
    """
    listed = []
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            function, pattern, reason = (part.strip() for part in line.split(" | ", 2))
            listed.append((function, re.compile(pattern), reason))
    return listed


def changed_lines(survivors: dict[str, Path]) -> dict[str, list[str]]:
    """mutant name → the lines it changed (as "+ line"), read from the mutated sources."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    lines = {}
    cwd = os.getcwd()
    os.chdir(WORK)
    try:
        for name, path in survivors.items():
            # no `source=`: mutmut then parses only the two functions, found by its line-span index
            # (given the source it parses the whole mutated file per mutant: minutes per module)
            diff = get_diff_for_mutant(name, path=path).splitlines()
            lines[name] = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    finally:
        os.chdir(cwd)
    return lines


def explain(name: str, changed: list[str], listed) -> str | None:
    function = name.partition("__mutmut_")[0]
    added = [line[1:] for line in changed if line.startswith("+")] or ["<removed>"]
    for listed_function, pattern, reason in listed:
        if listed_function == function and any(pattern.search(line) for line in added):
            return reason
    return None


def scores() -> dict:
    listed = equivalent()
    modules = {}
    metas = sorted((WORK / "mutants" / "src").rglob("*.py.meta"))
    codes_by_meta = {meta: json.loads(meta.read_text())["exit_code_by_key"] for meta in metas}
    alive_paths = {k: meta.relative_to(WORK / "mutants").with_suffix("")
                   for meta, codes in codes_by_meta.items() for k, c in codes.items()
                   if c is not None and c not in KILLED and c not in TIMEOUT}
    changed = changed_lines(alive_paths)
    for meta, codes in codes_by_meta.items():
        if not codes:
            continue  # an `__init__.py` with nothing to mutate
        module = ".".join(meta.relative_to(WORK / "mutants" / "src").with_suffix("").with_suffix("").parts)
        killed = [k for k, c in codes.items() if c in KILLED]
        timeout = [k for k, c in codes.items() if c in TIMEOUT]
        not_run = [k for k, c in codes.items() if c is None]  # a run stopped part way: `--resume`
        alive = sorted(k for k in codes if k not in killed and k not in timeout and k not in not_run)
        explained = [k for k in alive if explain(k, changed[k], listed)]
        unexplained = [k for k in alive if k not in explained]
        for k in unexplained:
            print(f"# survived: {k}\n" + "\n".join(changed[k]), file=sys.stderr)
        total = len(codes)
        score = (len(killed) + len(timeout)) / total if total else 1.0
        modules[module] = {
            "mutants": total, "killed": len(killed), "timeout": len(timeout),
            "survived_equivalent": len(explained), "survived": unexplained, "not_run": len(not_run),
            "score": round(score, 3),
            "score_without_equivalent": round((len(killed) + len(timeout)) / (total - len(explained)), 3)
            if total > len(explained) else 1.0,
        }
    return modules


def frozen_models() -> Path:
    """A copy of the test models for this run: edits made meanwhile cannot rebuild them under it."""
    index = json.loads((ROOT / ".local" / "test-models" / "index.json").read_text())
    folder = WORK / "test-models"
    shutil.rmtree(folder, ignore_errors=True)
    copied = {}
    for name, path in index.items():
        copied[name] = str(shutil.copytree(path, folder / Path(path).name))
    (folder / "index.json").write_text(json.dumps(copied))
    return folder / "index.json"


def mutants_where(keep) -> list[str]:
    """The workspace's mutants whose exit code (None: not run yet) ``keep`` accepts."""
    names = []
    for meta in (WORK / "mutants" / "src").rglob("*.py.meta"):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        names += [k for k, c in codes.items() if keep(c)]
    return sorted(names)


def previous_survivors() -> list[str]:
    """The last run's survivors that equivalent.txt does not explain (an explained one survives again
    by definition: re-running it only costs its tests' time)."""
    alive = {}
    for meta in (WORK / "mutants" / "src").rglob("*.py.meta"):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        alive.update({k: meta.relative_to(WORK / "mutants").with_suffix("") for k, c in codes.items()
                      if c is not None and c not in KILLED and c not in TIMEOUT})
    changed, listed = changed_lines(alive), equivalent()
    return sorted(k for k in alive if not explain(k, changed[k], listed))


def regenerate() -> None:
    """mutmut's first step alone: mutants of the code as it is now, a changed function's results reset.

    (mutmut does it at the start of every run; without it, --resume and --report would read the
    results of functions changed since.) These are mutmut's own functions, called in the order
    its `run` calls them (mutmut 3.8, pinned in uv.lock): it has no command for this step alone.
    """
    code = ("import os, mutmut.__main__ as m; m.set_mutant_under_test('mutant_generation'); "
            "os.makedirs('mutants', exist_ok=True); m.copy_src_dir(); m.copy_also_copy_files(); "
            "m.setup_source_paths(); m.store_lines_covered_by_tests(); m.create_mutants(os.cpu_count() or 2)")
    subprocess.run([sys.executable, "-c", code], cwd=WORK, check=True, stdout=subprocess.DEVNULL)


def report() -> int:
    modules = scores()
    total = sum(m["mutants"] for m in modules.values())
    caught = sum(m["killed"] + m["timeout"] for m in modules.values())
    failing = sorted(name for name, m in modules.items() if m["score"] < TARGET or m["survived"])
    partial = sorted(name for name, m in modules.items() if m["not_run"])
    print(json.dumps({"target_per_module": TARGET, "mutants": total,
                      "score": round(caught / total, 3) if total else None,
                      "modules_below_target_or_with_unexplained_survivors": failing,
                      "modules_not_run_whole": partial, "modules": modules}, indent=2))
    return 1 if failing or partial else 0


def main() -> int:
    flags = {arg for arg in sys.argv[1:] if arg.startswith("--")}
    unknown = flags - {"--survivors", "--resume", "--report"}
    if unknown:
        sys.exit(f"unknown option {', '.join(sorted(unknown))}: see the docstring of {__file__}")
    if flags & {"--report", "--resume"}:
        workspace(fresh=False)
        regenerate()
    if "--report" in flags:
        return report()
    survivors_only = "--survivors" in flags
    modules = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    log("building the test models (tests/models.py)")
    subprocess.run([sys.executable, "-m", "tests.models"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    names = []
    if "--resume" in flags and (WORK / "mutants").exists():
        names = mutants_where(lambda c: c is None)
        if not names:
            log("every mutant of the workspace has run")
            return report()
        (WORK / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)  # map the tests as they are now
        log(f"running the {len(names)} mutants the workspace has not run yet")
    if survivors_only and (WORK / "mutants").exists():
        names = previous_survivors()
        (WORK / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)  # map the tests as they are now
        log(f"re-running the {len(names)} survivors of the last run")
    if modules and (WORK / "mutants").exists():
        names = [f"{module}.*" for module in modules]
        (WORK / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)  # map the tests as they are now
        log(f"re-running the mutants of {', '.join(modules)}")
    workspace(fresh=not names)
    log(f"running mutmut in {WORK.relative_to(ROOT)} (a full run: under an hour on 2 cores)")
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {**os.environ, "TEST_MODELS_INDEX": str(frozen_models()), "TESTS_HYPOTHESIS_PROFILE": "mutation"}
    subprocess.run([str(mutmut), "run", "--max-children", str(os.cpu_count() or 2), *names], cwd=WORK,
                   env=env, stdout=sys.stderr, check=False)  # its progress, beside ours
    return report()


if __name__ == "__main__":
    sys.exit(main())
