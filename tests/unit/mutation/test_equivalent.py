"""tests/mutation/equivalent.txt is read by `make mutation`'s report: every line must parse."""

import importlib.util
import re

from tests.conftest import ROOT


def test_every_listed_equivalent_names_a_function_a_valid_pattern_and_a_reason():
    spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "tests" / "mutation" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    listed = run.equivalent()  # compiles every pattern: a bad one raises here, not in a report
    assert len(listed) > 100
    for function, _, reason in listed:
        assert function.startswith(("serving.", "handlers.")) and ".x" in function and reason
        assert re.fullmatch(r"[\w.ǁ]+", function), f"{function}: a function's name, compared as it is (no pattern)"
