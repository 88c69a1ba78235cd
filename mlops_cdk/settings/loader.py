"""Where settings come from: cdk.json's ``environments.<env>``, then ``-c`` overrides.

Settings come from cdk.json context, in this order (later wins):

1. the defaults written in the section models,
2. ``environments.<env>`` in cdk.json,
3. command-line overrides with dotted keys, e.g. ``-c tracking.mode=fargate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlops_cdk.settings.common import ConfigError
from mlops_cdk.settings.errors import describe

DEFAULT_ENVIRONMENT = "dev"

# Context keys that belong to the CDK itself, never to our settings.
_CDK_CONTEXT_KEYS = frozenset({"acknowledged-issue-numbers"})
_OWN_CONTEXT_KEYS = frozenset({"env", "environments"})

Model = TypeVar("Model", bound=BaseModel)


def settings_from_context(
    model: type[Model], context: Mapping[str, Any], environ: Mapping[str, str]
) -> Model:
    """Build ``model`` from CDK context (cdk.json + ``-c``) and the process environment.

    Raises :class:`ConfigError` with a one-line message for any bad input.
    """
    env_name = context.get("env")
    if env_name is None:
        env_name = DEFAULT_ENVIRONMENT
    environments = _with_nulls(context.get("environments"), environ)
    if not isinstance(environments, Mapping):
        raise ConfigError("cdk.json context has no 'environments' object")
    if env_name not in environments:
        allowed = ", ".join(sorted(environments))
        raise ConfigError(f"env={env_name!r} is not one of {allowed}")
    env_values = environments[env_name]
    if not isinstance(env_values, Mapping):
        raise ConfigError(f"environments.{env_name} in cdk.json must be an object")

    raw: dict[str, Any] = {
        "account": environ.get("CDK_DEFAULT_ACCOUNT"),
        "region": environ.get("CDK_DEFAULT_REGION"),
    }
    raw = _deep_merge(raw, dict(env_values))
    overrides = _overrides(context, field_names=set(model.model_fields))
    raw = _deep_merge(raw, overrides)
    raw["env_name"] = env_name
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        sources = (("-c", overrides), (f"cdk.json environments.{env_name}", env_values))
        raise ConfigError(describe(err, model=model, sources=sources)) from None


# Where the CDK CLI hands the app its context (cdk.json, cdk.context.json, -c), read by CDK's
# App in this order, the file winning: aws-cdk-lib core/lib/app.js loadContext, cx-api
# CONTEXT_ENV and CONTEXT_OVERFLOW_LOCATION_ENV.
CONTEXT_JSON_ENV = "CDK_CONTEXT_JSON"
CONTEXT_FILE_ENV = "CONTEXT_OVERFLOW_LOCATION_ENV"


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def cli_context(environ: Mapping[str, str]) -> dict[str, Any]:
    """The context the CDK CLI hands the app (cdk.json, cdk.context.json, ``-c``), read from
    the same sources as CDK's App and with its nulls; {} when the CLI gave none. Raises
    OSError or ValueError (JSONDecodeError) if a source cannot be read."""
    raw: dict[str, Any] = {}
    if environ.get(CONTEXT_JSON_ENV):
        raw.update(json.loads(environ[CONTEXT_JSON_ENV]))
    if environ.get(CONTEXT_FILE_ENV):
        raw.update(json.loads(Path(environ[CONTEXT_FILE_ENV]).read_text(encoding="utf-8")))
    return raw


def _with_nulls(environments: Any, environ: Mapping[str, str]) -> Any:
    """cdk.json's ``environments`` with the nulls written in it.

    The context an app reads back from CDK (``app.node.get_all_context()``) has lost every
    null value (jsii drops them), so ``"reserved_concurrency": null`` would silently keep the
    default. The CLI's own copy of the context still has them: use it when it holds the same
    environments but for the nulls (it is the app's context), else the context as given.
    """
    try:
        raw = cli_context(environ)
    except (OSError, ValueError):
        return environments  # CDK's App read the same sources and would have failed first
    candidate = raw.get("environments")
    if candidate is not None and _without_nulls(candidate) == environments:
        return candidate
    return environments


def _overrides(context: Mapping[str, Any], *, field_names: set[str]) -> dict[str, Any]:
    """Turn ``-c a.b=value`` context keys into a nested dict; reject unknown keys.

    Merge order: the shorter key first, whatever the order on the command line. A whole
    section (``-c tracking={...}``) is merged into cdk.json's values, and a dotted key inside
    it (``-c tracking.size=Large``) is merged after it, so the more specific setting wins and
    neither silently drops the other.
    """
    keys = [
        key
        for key in context
        if key not in _OWN_CONTEXT_KEYS and key not in _CDK_CONTEXT_KEYS and not _is_cdk_key(key)
    ]
    nested: dict[str, Any] = {}
    for key in sorted(keys, key=lambda k: k.count(".")):  # stable: same depth keeps its order
        path = key.split(".")
        if path[0] not in field_names or path[0] == "env_name":
            allowed = ", ".join(sorted((field_names - {"env_name"}) | _OWN_CONTEXT_KEYS))
            raise ConfigError(f"unknown setting {key!r} (-c); top-level settings are: {allowed}")
        value = _parse_cli_value(key, context[key])
        deeper = [k for k in keys if k.startswith(key + ".")]
        if deeper and not isinstance(value, dict):
            raise ConfigError(
                f"-c {key}={context[key]!r} must be a JSON object: -c {deeper[0]} sets a key "
                "inside it"
            )
        cursor = nested
        for part in path[:-1]:
            cursor = cursor.setdefault(part, {})
        if isinstance(value, dict) and isinstance(cursor.get(path[-1]), dict):
            cursor[path[-1]] = _deep_merge(cursor[path[-1]], value)
        else:
            cursor[path[-1]] = value
    return nested


def _is_cdk_key(key: str) -> bool:
    # Feature flags ("@aws-cdk/..."), CDK internals ("aws:cdk:..."), cached lookups ("...:account=...").
    return key.startswith("@") or ":" in key


def _parse_cli_value(key: str, value: Any) -> Any:
    """``-c`` values arrive as strings; lists, objects and null may be written as JSON."""
    if isinstance(value, str) and (value.lstrip()[:1] in "[{" or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"-c {key}={value!r} is not valid JSON: {err.msg} at line {err.lineno} "
                f"column {err.colno} (char {err.pos})"
            ) from None
    return value


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
