"""Run a batch of IAM requests through ``@cloud-copilot/iam-simulate`` in one Node process.

``tests/iam/simulate.mjs`` reads the batch on stdin and prints one decision per request.
The simulator evaluates identity policies AND the resource policy (a KMS key policy must
allow the account, or the principal, before identity policies count; a bucket, topic or
queue policy may deny), as IAM does for a request within one account.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("simulate.mjs")
PACKAGE = ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate"


@dataclass(frozen=True)
class Request:
    principal: str  # a role ARN or a service principal (cloudwatch.amazonaws.com)
    action: str  # service:Action as IAM spells it
    resource: str  # the concrete ARN
    account: str
    identity_policies: Sequence[Mapping[str, Any]] = ()
    resource_policy: Mapping[str, Any] | None = None
    context: Mapping[str, str | list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "accountId": self.account,
            "identityPolicies": list(self.identity_policies),
            "resourcePolicy": self.resource_policy,
            "context": dict(self.context),
        }


@dataclass(frozen=True)
class Decision:
    result: str  # Allowed, ImplicitlyDenied, ExplicitlyDenied, Error
    identity: str | None
    resource: str | None
    errors: Any = None

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    @property
    def reason(self) -> str:
        if self.result == "Error":
            return f"simulator error: {json.dumps(self.errors)[:400]}"
        return (
            f"{self.result} (identity policies: {self.identity}, resource policy: {self.resource})"
        )


def available() -> str | None:
    """Why the simulator cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not PACKAGE.is_dir():
        return "@cloud-copilot/iam-simulate is not installed (npm ci)"
    return None


def simulate(requests: Sequence[Request]) -> list[Decision]:
    """One decision per request, in order, from a single ``node`` process."""
    if not requests:
        return []
    missing = available()
    if missing is not None:  # a check that cannot run must fail, not skip
        raise RuntimeError(f"the IAM simulator cannot run: {missing}")
    done = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps([r.as_json() for r in requests]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tests/iam/simulate.mjs failed: {done.stderr.strip()[-2000:]}")
    raw: list[dict[str, Any]] = json.loads(done.stdout)
    return [
        Decision(
            result=r["result"],
            identity=r.get("identity"),
            resource=r.get("resource"),
            errors=r.get("errors"),
        )
        for r in raw
    ]
