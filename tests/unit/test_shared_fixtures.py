"""tests/shared_fixtures.py on a small suite of its own, collected by an inner pytest."""

from __future__ import annotations

import pytest

from tests.shared_fixtures import (
    fixture_group,
    group_of_item,
    spread_fixtures,
    widest_fixture_of,
)

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest

@pytest.fixture(scope="module")
def built():
    return object()

@pytest.fixture(scope="session")
def trained():
    return object()

@pytest.fixture(scope="session", params=["a", "b"])
def each(request):
    return request.param

@pytest.fixture(scope="session", autouse=True)
def _every_worker():
    pass
"""

SUITE = """
import pytest

def test_one(built): pass
def test_two(built): pass
def test_both(built, trained): pass

@pytest.mark.xdist_group("other")
def test_elsewhere(built): pass

def test_each(each): pass

@pytest.mark.after_groups
def test_last(built): pass

def test_plain(tmp_path): pass
"""

# Another module: pytest builds it its own instance of the module-scoped fixture.
OTHER_MODULE = """
def test_other(built): pass
"""


SUITE_MODULE = "tests/test_suite.py"


@pytest.fixture
def items(pytester: pytest.Pytester) -> dict[str, pytest.Item]:
    pytester.makepyfile(
        **{"tests/conftest": CONFTEST, "tests/test_suite": SUITE, "tests/test_other": OTHER_MODULE}
    )
    collected, _ = pytester.inline_genitems("tests", "-p", "no:randomly")
    return {item.name: item for item in collected}


def test_a_test_is_grouped_by_the_widest_fixture_it_uses(items: dict[str, pytest.Item]) -> None:
    assert widest_fixture_of(items["test_one"]) == f"{SUITE_MODULE}::built"
    assert widest_fixture_of(items["test_other"]) == "tests/test_other.py::built"
    assert widest_fixture_of(items["test_both"]) == "tests::trained"  # session beats module
    assert widest_fixture_of(items["test_each[a]"]) == "tests::each['a']"  # one per parameter
    # Function-scoped, pytest's own (tmp_path) and autouse fixtures group nothing.
    assert widest_fixture_of(items["test_plain"]) is None


def test_a_fixture_whose_users_fall_in_several_groups_is_reported(
    items: dict[str, pytest.Item],
) -> None:
    spread = spread_fixtures(items.values())
    # Ungrouped, each test is a group of its own; after_groups tests are left out.
    users = ("test_both", "test_one", "test_two")
    assert spread[f"{SUITE_MODULE}::built"] == [
        *(f"(ungrouped) {SUITE_MODULE}::{name}" for name in users),
        "other",
    ]
    # One user per instance: the other module's, each parameter's.
    assert set(spread) == {f"{SUITE_MODULE}::built"}

    # Grouped as tests/conftest.py groups them, only the test held in another group remains.
    for item in items.values():
        group = fixture_group(item)
        if group is not None and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
    assert group_of_item(items["test_one"]) == f"fixture-{SUITE_MODULE}::built"
    assert spread_fixtures(items.values()) == {
        f"{SUITE_MODULE}::built": [
            f"fixture-{SUITE_MODULE}::built",
            "fixture-tests::trained",
            "other",
        ]
    }
