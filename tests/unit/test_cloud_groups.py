"""How `make test` spreads the local-cloud tests over its two workers (tests/conftest.py)."""

from pathlib import Path

from tests.conftest import CLOUD_SUITES, SECOND_CLOUD, cloud_group

TESTS = Path(__file__).resolve().parents[1]


def test_every_cloud_test_file_has_one_group_and_unit_tests_none():
    files = sorted(str(p.relative_to(TESTS.parent)) for suite in CLOUD_SUITES
                   for p in (TESTS.parent / suite).glob("test_*.py"))
    groups = {f: cloud_group(f"{f}::test_x") for f in files}
    assert set(groups.values()) == {"the local cloud", "the second local cloud"}
    assert all(Path(TESTS.parent / f).exists() for f in SECOND_CLOUD)  # no stale name
    assert groups["tests/integration/test_faults.py"] == "the second local cloud"
    assert groups["tests/e2e/test_console.py"] == groups["tests/integration/test_fuzz.py"] == "the local cloud"
    assert cloud_group("tests/unit/serving/api/test_app.py::test_x") is None


def test_the_two_groups_are_the_first_units_handed_out():
    # the scheduler hands out units in collection order: the first group's first file (the browser
    # tests) comes first, the second group's before any unit test
    files = sorted(str(p.relative_to(TESTS.parent)) for p in TESTS.rglob("test_*.py"))
    order = list(dict.fromkeys(cloud_group(f"{f}::t") or f for f in files))
    assert order[:2] == ["the local cloud", "the second local cloud"]
