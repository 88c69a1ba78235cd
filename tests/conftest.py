"""Shared fixtures: one synthesized app per environment (and per override set) per session.

Run in parallel (``make pytest``: pytest-xdist, ``--dist loadgroup``), every test that needs a
synthesized app is put in that app's group (:func:`pytest_collection_modifyitems`), so each
app is synthesized by one worker only; the workers share an on-disk cache for the session
(:data:`tests.session_cache`), e.g. cfn-lint results per distinct template.
"""

from __future__ import annotations

import gc
import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import astuple
from typing import TYPE_CHECKING, Any

import pytest

from tests import session_cache, shared_fixtures
from tools.cdk_json import ENVIRONMENTS

# aws-cdk-lib (with its Node process) and what imports it load where a test first synthesizes,
# not when this module is imported: pytest-xdist's controller imports it too, before it starts
# the workers, and runs no test (tests/unit/test_conftest_imports.py).
if TYPE_CHECKING:
    from mlops_cdk import nag
    from tests.synth import SynthesizedApp
    from tools.synthesis import StackTemplate

AppKey = tuple[str, str, tuple[tuple[str, str], ...]]
_cache: dict[AppKey, SynthesizedApp] = {}


def app_key(env: str, form: str = "agnostic", **overrides: str) -> AppKey:
    """What identifies one synthesized app: environment, form and sorted overrides."""
    return (env, form, tuple(sorted(overrides.items())))


def synthesized(env: str, *, form: str = "agnostic", **overrides: str) -> SynthesizedApp:
    """Synthesize each (environment, form, overrides) at most once per test session.

    Overrides are ``-c``-style dotted keys, e.g. ``synthesized("dev", **{"tracking.mode": "ec2"})``;
    ``form="deployed"`` synthesizes with a concrete account and region (tests/synth.py FORMS).
    """
    from mlops_cdk import nag  # noqa: PLC0415 -- see the imports above
    from tests.synth import synthesize  # noqa: PLC0415
    from tools.synthesis import stacks_of  # noqa: PLC0415

    key = app_key(env, form, **overrides)
    if key not in _cache:
        app = _cache[key] = synthesize(env, overrides, form=form)
        stacks = stacks_of(app.assembly)  # each template crosses from Node once
        session_cache.put(TEMPLATES, repr(key), {s.name: s.template for s in stacks})
        session_cache.put(DEPENDENCIES, repr(key), {s.name: list(s.depends_on) for s in stacks})
        made = nag.acknowledgements(app.platform.storage.node.root)
        recorded = {"name_prefix": app.settings.name_prefix, "made": [astuple(a) for a in made]}
        session_cache.put(ACKNOWLEDGEMENTS, repr(key), recorded)
    return _cache[key]


# What a test over many variants reads of each (tests marked ``after_groups``): stored by the
# worker that synthesized the app, so no other worker synthesizes it again for that.
TEMPLATES = "templates"  # {stack name: template}


def synthesized_templates(key: AppKey) -> dict[str, Any] | None:
    """{stack name: template} of the app ``key`` if a process of this session synthesized it."""
    templates: dict[str, Any] | None = session_cache.get(TEMPLATES, repr(key))
    return templates


DEPENDENCIES = "dependencies"  # {stack name: [stack names it depends on]}, in deployment order


def synthesized_stacks(key: AppKey) -> list[StackTemplate]:
    """App ``key``'s stacks as ``tools.synthesis.stacks_of`` gives them, from this process's
    app or, when another worker synthesized it, from the session cache; synthesized only
    when neither has it. For a test over many variants that reads only their templates."""
    from tools.synthesis import stacks_of  # noqa: PLC0415 -- see the imports above

    if key in _cache:
        return stacks_of(_cache[key].assembly)
    stored = stored_stacks(key)
    if stored is None:
        env, form, overrides = key
        return stacks_of(synthesized(env, form=form, **dict(overrides)).assembly)
    return stored


def stored_stacks(key: AppKey) -> list[StackTemplate] | None:
    """App ``key``'s stacks as the session cache holds them, if a process stored them."""
    from tools.synthesis import StackTemplate  # noqa: PLC0415 -- see the imports above

    templates = synthesized_templates(key)
    order: dict[str, list[str]] | None = session_cache.get(DEPENDENCIES, repr(key))
    if templates is None or order is None:
        return None
    return [StackTemplate(name, templates[name], tuple(after)) for name, after in order.items()]


ACKNOWLEDGEMENTS = "acknowledgements"  # the name prefix, and what the constructs acknowledged


def synthesized_acknowledgements(key: AppKey) -> tuple[str, list[nag.Acknowledgement]] | None:
    """App ``key``'s name prefix and what its constructs acknowledged (mlops_cdk.nag), if a
    process of this session synthesized it."""
    from mlops_cdk import nag  # noqa: PLC0415 -- see the imports above

    recorded = session_cache.get(ACKNOWLEDGEMENTS, repr(key))
    if recorded is None:
        return None
    return recorded["name_prefix"], [nag.Acknowledgement(*row) for row in recorded["made"]]


def of_each_app(namespace: str, key: AppKey, compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON value derived from app ``key``) once per session, by whichever
    test or worker asks first; the others read the stored value and need not synthesize."""
    return session_cache.computed(namespace, repr(key), compute)


@pytest.fixture(scope="session")
def dev() -> SynthesizedApp:
    return synthesized("dev")


@pytest.fixture(scope="session")
def staging() -> SynthesizedApp:
    return synthesized("staging")


@pytest.fixture(scope="session")
def prod() -> SynthesizedApp:
    return synthesized("prod")


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def any_env(request: pytest.FixtureRequest) -> SynthesizedApp:
    """Each environment in turn, as configured in cdk.json: for checks that hold everywhere."""
    return synthesized(request.param)


# --- running in parallel (pytest-xdist) ------------------------------------------------------


def group_of(key: AppKey) -> str:
    env, form, overrides = key
    return "app-" + "-".join([env, form, *(f"{k}={v}" for k, v in overrides)])


def with_app(key: AppKey) -> pytest.MarkDecorator:
    """Run a test in the worker of app ``key``'s group: for a test that synthesizes that app
    itself (through a helper, not a parameter or fixture that :func:`_app_of` reads), which
    would otherwise run ungrouped and synthesize the app a second time in the other worker."""
    return pytest.mark.xdist_group(group_of(key))


def _app_of(item: pytest.Item) -> AppKey | None:
    """The synthesized app a test needs first, as far as its parameters and fixtures say."""
    from tests.matrix import Variant  # noqa: PLC0415 (matrix imports this module)
    from tools.synthesis import default_mode  # noqa: PLC0415 (loads aws-cdk-lib)

    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    for value in params.values():
        if isinstance(value, Variant):
            return value.key
    if params.get("any_env") in ENVIRONMENTS:
        return app_key(params["any_env"])
    env = params.get("env")
    if env in ENVIRONMENTS:
        mode = params.get("mode")
        if isinstance(mode, str) and mode != default_mode(env):
            return app_key(env, **{"tracking.mode": mode})
        return app_key(env)
    for name in getattr(item, "fixturenames", ()):
        if name in ENVIRONMENTS:
            return app_key(name)
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's hook turns the marks into groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, keep each synthesized app's tests in one worker (``--dist loadgroup``), and
    the users of each wider-than-a-test fixture of ours (tests/shared_fixtures.py)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    # Tests over many variants (the checkov scan, the IAM and nag summaries) last: by then the
    # app groups have stored (nearly) everything they read from the session cache. --dist
    # loadgroup hands out the biggest groups first and ungrouped tests (groups of one) last, in
    # this order, so these tests must stay ungrouped (or in groups of one) to run last.
    items.sort(key=lambda item: item.get_closest_marker("after_groups") is not None)
    for item in items:
        if item.get_closest_marker("after_groups") or item.get_closest_marker("xdist_group"):
            continue
        key = _app_of(item)
        if key is not None:
            item.add_marker(pytest.mark.xdist_group(group_of(key)))
            continue
        # A fixture wider than the test (an app.py run, a trained model) is built once per
        # worker: its users share one (tests/shared_fixtures.py checks that none is spread).
        group = shared_fixtures.fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Notice when ``--dist loadgroup`` silently stops grouping (every test then errors).

    pytest-xdist groups by appending ``@group`` to each node id on the worker, after the
    collection hooks: a group added later (or by a pytest whose node ids live elsewhere, 9.2:
    https://github.com/pytest-dev/pytest-xdist/issues/1386) is lost without a word, and every
    group's module fixtures (a checkov scan, real MLflow servers, synthesized apps) run in
    every worker.
    """
    config = session.config
    if getattr(config, "workerinput", None) is None or not config.getvalue("loadgroup"):
        return
    lost = [
        item.nodeid
        for item in session.items
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid
    ]
    if lost:
        config.stash[_GROUPING_LOST] = (
            f"--dist loadgroup is not grouping: {len(lost)} tests lost their xdist_group "
            f"(e.g. {lost[0]}) under pytest {pytest.__version__}; see tests/conftest.py"
        )
        return
    spread = shared_fixtures.spread_fixtures(session.items)
    if spread:
        config.stash[_GROUPING_LOST] = shared_fixtures.describe(spread)


_GROUPING_LOST = pytest.StashKey[str]()


@pytest.fixture(scope="session", autouse=True)
def _tests_run_in_their_groups(request: pytest.FixtureRequest) -> None:
    lost = request.config.stash.get(_GROUPING_LOST, None)
    if lost is not None:
        pytest.fail(lost, pytrace=False)


# Python's cyclic GC runs a collection every 700 net allocations by default; a test process
# allocates millions (pandas, MLflow, moto, jsii proxies) and most survive to the oldest
# generation, so full collections kept rescanning them: 13-15 s of the workers' CPU in the quick
# loop (gc.callbacks), against 5 s with collections 30x rarer. Memory peaks stayed ~1 GB a worker.
GC_THRESHOLDS = (20_000, 10, 10)


def pytest_configure(config: pytest.Config) -> None:
    """One cache directory per test session, shared by the xdist workers, and pytest's own
    cache directory for the results kept between sessions (tests/session_cache.py); rarer
    garbage collections (:data:`GC_THRESHOLDS`)."""
    gc.set_threshold(*GC_THRESHOLDS)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        session_cache.use(workerinput["mlops_session_cache"])
    else:
        session_cache.use(tempfile.mkdtemp(prefix="mlops-tests-"))
        config.stash[_OWNS_CACHE] = True
    cache: pytest.Cache | None = getattr(config, "cache", None)  # None: -p no:cacheprovider
    session_cache.keep_in(cache.mkdir("mlops-results") if cache is not None else None)


_OWNS_CACHE = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist: the controller starting a worker
    node.workerinput["mlops_session_cache"] = str(session_cache.directory())


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_OWNS_CACHE, False):
        shutil.rmtree(session_cache.directory(), ignore_errors=True)
    # Everything the session built is garbage now and the process is about to end: spare the
    # interpreter's shutdown a collection over it (a worker holds every app it synthesized,
    # MLflow, pandas, moto's backends). As app.py does after synthesis.
    gc.freeze()
