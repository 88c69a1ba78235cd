"""checkov over the synthesized templates of every variant, and docs/checkov.md from the result.

checkov runs in its own virtual environment (``make checkov``: ``.local/checkov-venv``, its pins
clash with the app's), once over a directory holding each distinct template of every variant
(framework cloudformation). A finding is either FAILED (unacknowledged: tests/test_checkov.py
fails) or SKIPPED by a ``Metadata.checkov.skip`` entry beside its resource
(:func:`mlops_cdk.checkov.skip`), whose comment is the reason listed in docs/checkov.md.

``python -m tools.checkov_report --write`` regenerates the page (``make checkov-docs``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from tools import generated_doc
from tools.cdk_json import ENVIRONMENTS
from tools.json_files import write_json_atomically

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".local" / "checkov-venv" / "bin" / "checkov"
DOC = ROOT / "docs" / "checkov.md"


@dataclass(frozen=True, order=True)
class Finding:
    """One checkov result on one resource of one variant's stack."""

    check_id: str
    stack: str  # <project>-<env>-<unit>
    resource: str  # AWS::Type.LogicalId
    variant: str
    check_name: str
    reason: str | None  # the skip comment; None: not acknowledged

    @property
    def env(self) -> str:
        return self.variant.split("-", 1)[0]

    @property
    def unit(self) -> str:
        return self.stack.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class Report:
    failed: tuple[Finding, ...]
    skipped: tuple[Finding, ...]
    templates: int

    def acknowledged_in(self, variant: str) -> set[tuple[str, str, str]]:
        """Each acknowledged (check, stack unit, resource) of one variant: checkov's count."""
        return {(f.check_id, f.unit, f.resource) for f in self.skipped if f.variant == variant}

    def acknowledged_by_env(self) -> Mapping[str, list[tuple[str, str, str, str]]]:
        """Per environment, each distinct (check, stack unit, resource, reason) over its variants."""
        rows: dict[str, set[tuple[str, str, str, str]]] = defaultdict(set)
        for f in self.skipped:
            rows[f.env].add((f.check_id, f.unit, f.resource, f.reason or ""))
        return {env: sorted(rows.get(env, set())) for env in ENVIRONMENTS}


def write_templates(
    templates: Iterable[tuple[str, str, Mapping[str, Any]]], directory: Path
) -> dict[str, list[tuple[str, str]]]:
    """Write each distinct template once, as ``<variant>--<stack>.json``.

    Returns, per written file's stem, every (variant, stack) whose template it is: a finding
    in a shared template (e.g. one storage stack for every tracking mode) belongs to each.
    """
    stems: dict[str, str] = {}  # digest -> the stem it was written under
    sharing: dict[str, list[tuple[str, str]]] = {}
    for variant, stack, template in templates:
        text = json.dumps(template, sort_keys=True, indent=1)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest not in stems:
            stems[digest] = f"{variant}--{stack}"
            (directory / f"{stems[digest]}.json").write_text(text)
        sharing.setdefault(stems[digest], []).append((variant, stack))
    return sharing


CHECKOV_ENV = {"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}


def _checkov_command(directory: Path) -> list[str]:
    return [
        str(CHECKOV),
        "--directory",
        str(directory),
        "--framework",
        "cloudformation",
        "--output",
        "json",
        "--compact",
        "--skip-download",  # offline: no policy download, no platform
    ]


# The kinds of result a report reads (passed checks are counted by checkov, never read here).
KINDS = ("failed_checks", "skipped_checks")


@cache
def checkov_version() -> str:
    """The version installed in checkov's virtual environment (read without starting it)."""
    site = [str(p) for p in (CHECKOV.parent.parent / "lib").glob("python*/site-packages")]
    for distribution in metadata.distributions(path=site):
        if distribution.metadata["Name"] == "checkov":
            return distribution.version
    raise FileNotFoundError(f"no checkov in {CHECKOV.parent.parent}: run `make install`")


@dataclass(frozen=True)
class KeptResults:
    """checkov's results on each template, kept in ``directory`` between runs.

    A template's results depend only on its text, checkov's version and how checkov is run,
    which together are the key; any change to one of them is a miss, and checkov runs.
    """

    directory: Path

    def _entry(self, text: str) -> Path:
        how = json.dumps([checkov_version(), _checkov_command(Path()), CHECKOV_ENV, KINDS])
        key = "\0".join([how, text])
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def get(self, text: str) -> dict[str, list[dict[str, Any]]] | None:
        """The results kept for a template of this text, else None."""
        entry = self._entry(text)
        return json.loads(entry.read_text()) if entry.exists() else None

    def put(self, text: str, results: Mapping[str, list[dict[str, Any]]]) -> None:
        write_json_atomically(self._entry(text), results)


def run_checkov(
    directory: Path, processes: int = 1, kept: KeptResults | None = None
) -> dict[str, Any]:
    """checkov's results (:data:`KINDS`) over every template in ``directory``, the templates
    split among ``processes`` checkov processes run at once (checkov itself runs on one core).
    With ``kept``, a template whose results are kept is not scanned again, and the results of
    each template scanned are kept."""
    if not CHECKOV.exists():
        raise FileNotFoundError(f"{CHECKOV} is missing: run `make install` (target checkov)")
    merged: dict[str, Any] = {"results": {kind: [] for kind in KINDS}}
    to_scan: dict[Path, str] = {}  # template -> its text
    for template in sorted(directory.glob("*.json")):
        text = template.read_text()
        known = kept.get(text) if kept is not None else None
        if known is None:
            to_scan[template] = text
            continue
        for kind in KINDS:  # as a scan of this file would name it
            merged["results"][kind] += [
                {**c, "file_path": f"/{template.name}"} for c in known[kind]
            ]
    if not to_scan:
        return merged
    scanned = _scan_in_processes(directory, list(to_scan), processes)
    for kind in KINDS:
        merged["results"][kind] += scanned[kind]
    if kept is not None:
        for template, text in to_scan.items():
            kept.put(
                text,
                {
                    kind: [c for c in scanned[kind] if Path(c["file_path"]).stem == template.stem]
                    for kind in KINDS
                },
            )
    return merged


def _scan_in_processes(
    directory: Path, templates: list[Path], processes: int
) -> dict[str, list[dict[str, Any]]]:
    shares = [directory / f"share-{i}" for i in range(max(1, min(processes, len(templates))))]
    for share in shares:
        share.mkdir()
    for index, template in enumerate(templates):
        template.rename(shares[index % len(shares)] / template.name)
    running = [
        subprocess.Popen(
            _checkov_command(share),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=CHECKOV_ENV,
        )
        for share in shares
    ]
    # Every process finishes before any failure is raised: none is left scanning a directory
    # that the caller is about to delete.
    outputs = [(process, *process.communicate()) for process in running]
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for process, stdout, stderr in outputs:
        if process.returncode not in (0, 1):  # 1: some check failed
            raise RuntimeError(f"checkov exited {process.returncode}: {stderr.strip()[-2000:]}")
        results = json.loads(stdout).get("results", {})
        for kind in KINDS:
            found[kind] += results.get(kind, [])
    return found


def parse(result: Mapping[str, Any], sharing: Mapping[str, list[tuple[str, str]]]) -> Report:
    def findings(kind: str) -> tuple[Finding, ...]:
        out = []
        for check in result.get("results", {}).get(kind, []):
            stem = Path(check["file_path"]).stem
            reason = (
                check["check_result"].get("suppress_comment") if kind == "skipped_checks" else None
            )
            for variant, stack in sharing.get(stem, [tuple(stem.split("--"))]):
                out.append(
                    Finding(
                        check_id=check["check_id"],
                        stack=stack,
                        resource=check["resource"],
                        variant=variant,
                        check_name=check["check_name"],
                        reason=reason,
                    )
                )
        return tuple(sorted(out))

    return Report(
        failed=findings("failed_checks"),
        skipped=findings("skipped_checks"),
        templates=len(sharing),
    )


def scan(
    templates: Iterable[tuple[str, str, Mapping[str, Any]]],
    processes: int = 2,
    kept: KeptResults | None = None,
) -> Report:
    """Write the distinct templates to a temporary directory and run checkov over them (over
    those whose results ``kept`` does not hold)."""
    with tempfile.TemporaryDirectory(prefix="checkov-") as tmp:
        sharing = write_templates(templates, Path(tmp))
        return parse(run_checkov(Path(tmp), processes, kept), sharing)


def render(report: Report, variants: Iterable[str], defaults: Mapping[str, str]) -> str:
    """docs/checkov.md: every acknowledged finding per environment, with its reason.

    ``defaults``: each environment's variant as cdk.json configures it (its tracking mode).
    """
    names = {f.check_id: f.check_name for f in (*report.skipped, *report.failed)}
    by_env = report.acknowledged_by_env()
    lines = [
        "# checkov: acknowledged findings",
        "",
        "<!-- generated by `make checkov-docs` (python -m tools.checkov_report --write); "
        "tests/test_checkov.py checks it is current -->",
        "",
        "checkov (framework cloudformation) runs over every synthesized template of these "
        "variants (tests/matrix.py plus the optional features) in `tests/test_checkov.py`, "
        "which fails on any finding that is not acknowledged. An acknowledgement is a "
        "`Metadata.checkov.skip` entry on the resource, written with "
        "`mlops_cdk.checkov.skip(resource, check_id, reason)` in the construct that makes it.",
        "",
        "Variants: " + ", ".join(f"`{v}`" for v in variants) + ".",
        "",
        'Counted as checkov counts a finding, one per (check, resource). "As configured" is '
        "the environment as cdk.json sets it, synthesized as `cdk deploy` does (account and "
        "region known), and environment-agnostic (offline, no region).",
        "",
        "| environment | as configured, deployed | as configured, agnostic "
        "| every mode: (check, resource) | every mode: distinct checks |",
        "|---|---|---|---|---|",
    ]
    for env in ENVIRONMENTS:
        rows = by_env[env]
        deployed = report.acknowledged_in(defaults[env])
        agnostic = report.acknowledged_in(defaults[env].replace("-deployed", "-agnostic"))
        lines.append(
            f"| {env} (`{defaults[env]}`) | {len(deployed)} | {len(agnostic)} | {len(rows)} "
            f"| {len({r[0] for r in rows})} |"
        )
    for env in ENVIRONMENTS:
        lines += ["", f"## {env}", ""]
        rows = by_env[env]
        if not rows:
            lines.append("Nothing acknowledged.")
            continue
        lines += ["| check | stack | resource | reason |", "|---|---|---|---|"]
        for check_id, unit, resource, reason in rows:
            title = names.get(check_id, "")
            lines.append(f"| {check_id}: {title} | {unit} | `{resource}` | {reason} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    write = generated_doc.write_flag(
        argv, prog="python -m tools.checkov_report", description=__doc__.splitlines()[0], path=DOC
    )
    sys.path.insert(0, str(ROOT))
    from tests.checkov_variants import DEFAULTS, VARIANTS, templates_of  # noqa: PLC0415

    report = scan(templates_of(VARIANTS))
    text = render(report, [v.id for v in VARIANTS], DEFAULTS)
    for f in report.failed:
        print(f"UNACKNOWLEDGED {f.check_id} {f.variant} {f.stack} {f.resource}", file=sys.stderr)
    generated_doc.publish(text, DOC, write=write)
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
