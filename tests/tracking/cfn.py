"""Evaluate the CloudFormation intrinsic functions of a synthesized template with test values.

Tests that run a template's values for real (the tracking server's environment, its start-up
script) resolve every token through :class:`Resolver`, so a token the test has no value for
fails loudly instead of reaching the process as a dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class UnresolvedTokenError(Exception):
    """The template holds a token the test has given no value for."""


@dataclass(frozen=True)
class Resolver:
    """Values for ``Ref``, ``Fn::GetAtt`` and ``Fn::ImportValue``, as CloudFormation gives them.

    ``refs`` maps a logical ID (or pseudo parameter) to its ``Ref`` value, ``attributes`` maps
    ``(logical ID, attribute)`` to its ``Fn::GetAtt`` value, ``imports`` maps export names.
    """

    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    imports: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            return self._call(function, argument)
        raise UnresolvedTokenError(f"not a CloudFormation string value: {value!r}")

    def _call(self, function: str, argument: Any) -> str:
        if function == "Ref":
            return self._lookup(self.refs, argument, f"Ref {argument}")
        if function == "Fn::GetAtt":
            logical_id, attribute = (
                argument.split(".", 1) if isinstance(argument, str) else argument
            )
            return self._lookup(
                self.attributes, (logical_id, attribute), f"Fn::GetAtt {logical_id}.{attribute}"
            )
        if function == "Fn::ImportValue":
            name = self(argument)
            return self._lookup(self.imports, name, f"Fn::ImportValue {name}")
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(self(part) for part in parts)
        if function == "Fn::Select":
            index, items = argument
            return self(items[int(self(index))])
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: self._sub(m.group(1), variables), text)
        if function == "Fn::Split":
            raise UnresolvedTokenError("Fn::Split outside Fn::Select")
        if function == "Fn::Base64":
            return self(argument)  # the decoded text is what the instance runs
        raise UnresolvedTokenError(f"{function} is not supported by the test resolver")

    def _sub(self, name: str, variables: Mapping[str, Any]) -> str:
        if name in variables:
            return self(variables[name])
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self._call("Fn::GetAtt", [logical_id, attribute])
        return self._call("Ref", name)

    @staticmethod
    def _lookup(table: Mapping[Any, str], key: Any, what: str) -> str:
        if key not in table:
            raise UnresolvedTokenError(f"the test gives no value for {what}")
        return table[key]
