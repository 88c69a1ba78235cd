"""Run batches of IAM requests through ``@cloud-copilot/iam-simulate`` in one Node process.

``tests/iam/simulate.mjs`` reads one batch per line on stdin and prints one line of decisions,
one per request. A test process keeps one simulator running for all its batches: a process per
batch (about 25 a run) spent most of its CPU starting Node and warming up its JIT (six
variants' batches: 3.4 s in six processes, 1.2 s in one).
The simulator evaluates identity policies AND the resource policy (a KMS key policy must
allow the account, or the principal, before identity policies count; a bucket, topic or
queue policy may deny), as IAM does for a request within one account.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import select
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("simulate.mjs")
PACKAGE = ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate"
ANSWER_TIMEOUT_SECONDS = 120  # for one batch; a variant's takes well under a second


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


class Simulator:
    """A Node process running ``script`` (simulate.mjs's line protocol), started on first use,
    started again after a failure, and ended at exit."""

    def __init__(self, script: Path) -> None:
        self._script = script
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None  # Node's, read only when it fails
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The running Node process's id; None before the first batch and after a failure."""
        return self._process.pid if self._process is not None else None

    def run(self, batch: str) -> str:
        """The line the script answers to ``batch`` (one line of JSON)."""
        with self._lock:
            process = self._started()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(batch + "\n")
                process.stdin.flush()
                # The script writes each answer as one line: nothing is left buffered between
                # batches, so select sees whether the next one has started to arrive.
                ready, _, _ = select.select([process.stdout], [], [], ANSWER_TIMEOUT_SECONDS)
                line = process.stdout.readline() if ready else None
            except OSError:  # a broken pipe: Node has gone, and its stderr says why
                line = ""
            if not line:
                errors = self._errors()
                self.stop(kill=True)
                why = "failed" if line == "" else f"gave no answer in {ANSWER_TIMEOUT_SECONDS} s"
                raise RuntimeError(f"{self._script.name} {why}: {errors[-2000:]}")
            return line

    def _started(self) -> subprocess.Popen[str]:
        if self._process is None:
            self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed in stop()
            self._process = subprocess.Popen(
                ["node", str(self._script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                cwd=ROOT,
            )
            atexit.register(self.stop)
        return self._process

    def _errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().strip()

    def stop(self, *, kill: bool = False) -> None:
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None:
            assert process.stdin is not None and process.stdout is not None
            if kill:
                process.kill()
            with contextlib.suppress(OSError):
                process.stdin.close()  # the script ends when its input does
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


_SIMULATOR = Simulator(SCRIPT)


def simulate(requests: Sequence[Request]) -> list[Decision]:
    """One decision per request, in order, from this process's simulator."""
    if not requests:
        return []
    missing = available()
    if missing is not None:  # a check that cannot run must fail, not skip
        raise RuntimeError(f"the IAM simulator cannot run: {missing}")
    raw: list[dict[str, Any]] = json.loads(
        _SIMULATOR.run(json.dumps([r.as_json() for r in requests]))
    )
    return [
        Decision(
            result=r["result"],
            identity=r.get("identity"),
            resource=r.get("resource"),
            errors=r.get("errors"),
        )
        for r in raw
    ]
