"""Validation errors as one line: the setting, the bad value, what is allowed, where it was set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError


def describe(
    err: ValidationError,
    *,
    model: type[BaseModel],
    sources: tuple[tuple[str, Mapping[str, Any]], ...] = (),
) -> str:
    """One line per the project's error style: setting, bad value, what is allowed, and where
    the value was set (``-c`` or ``cdk.json environments.<env>``) when that is one place."""
    parts = []
    for error in err.errors(include_url=False):
        location = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            part = f"unknown setting {location!r}{_allowed_keys_hint(model, error['loc'])}"
        elif error["type"] == "missing":
            part = f"{location} is required"
        elif not location or isinstance(error["input"], dict):
            part = message  # a model-level check: its message names the settings
        else:
            part = f"{location}={error['input']!r}: {_lower_first(message)}"
        where = [name for name, values in sources if _holds(values, error["loc"])]
        parts.append(f"{part} (set in {where[0]})" if len(where) == 1 else part)
    return "; ".join(parts)


def _holds(values: Mapping[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Whether the nested mapping sets the setting at `loc` (an empty loc is no one place)."""
    cursor: Any = values
    for part in loc:
        if isinstance(cursor, Mapping) and str(part) in cursor:
            cursor = cursor[str(part)]
        elif isinstance(cursor, list | tuple) and isinstance(part, int) and part < len(cursor):
            cursor = cursor[part]
        else:
            return False
    return bool(loc)


def _allowed_keys_hint(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    for part in loc[:-1]:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    allowed = ", ".join(name for name in model.model_fields if name != "env_name")
    return f"; allowed here: {allowed}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
