"""`python -m iris_inference.preflight`: decide whether a pipeline run has anything to do.

The first step of both pipelines (SageMaker Processing, in the inference image, with the job's
role, network and MLflow settings). It checks what the real job would otherwise fail on:

* ``--require-objects s3://bucket/prefix`` (repeatable): at least one object under the prefix
  (SageMaker refuses to start a job whose S3 input prefix holds no object);
* ``--require-alias``: ``models:/MODEL_NAME@MODEL_ALIAS`` exists in MLflow (no alias until a
  training run has passed the quality gate).

It writes ``{"ready": bool, "reason": "...", "checks": [...]}`` (keys and file name in
:mod:`iris_inference.preflight_contract`, which the pipeline definition reads too) and exits 0
whenever it could decide, ready or not: "not ready" is a skip, not a failure. It exits 1 with
one line on stderr only when it could not check (S3 or MLflow unreachable or denied, bad
settings): that is a real failure, and the failed execution raises the pipelines' alarm.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops_runtime.mlflow_auth import credentials_from_secret, point_mlflow_at

from iris_inference import preflight_contract as contract
from iris_inference.errors import UserError

log = logging.getLogger("iris_inference.preflight")


@dataclass(frozen=True)
class Check:
    check: str  # what was checked, e.g. "objects under s3://b/iris/training/"
    ok: bool
    detail: str  # what was found


@dataclass(frozen=True)
class Decision:
    ready: bool
    reason: str
    checks: tuple[Check, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            contract.READY: self.ready,
            contract.REASON: self.reason,
            contract.CHECKS: [asdict(c) for c in self.checks],
        }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {contract.MODULE}",
        description="Decide whether the pipeline's job has anything to do; write "
        f"OUTPUT_DIR/{contract.FILE_NAME}. Exit 0 when decided (ready or not), 1 when a check "
        "could not run.",
    )
    parser.add_argument(
        contract.OBJECTS_FLAG,
        action="append",
        default=[],
        metavar="S3_URI",
        help="an s3://bucket/prefix that must hold at least one object (repeatable)",
    )
    parser.add_argument(
        contract.ALIAS_FLAG,
        action="store_true",
        help="require models:/$MODEL_NAME@$MODEL_ALIAS in MLflow ($MLFLOW_TRACKING_URI)",
    )
    parser.add_argument(
        contract.OUTPUT_FLAG, default=contract.LOCAL_DIR, help="where the decision file goes"
    )
    parser.add_argument(contract.REGION_FLAG, default=None, help="AWS region of the S3 client")
    return parser


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)``; anything else is a UserError."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise UserError(f"{contract.OBJECTS_FLAG}={uri!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def check_objects(s3: Any, uri: str) -> Check:
    """One ListObjectsV2 call (MaxKeys=1): is there any object under the prefix?"""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, prefix = split_s3_uri(uri)
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as err:
        error = err.response.get("Error", {})
        raise UserError(
            f"cannot list {uri}: {error.get('Code', 'error')}: {error.get('Message', '')}"
        ) from None
    except BotoCoreError as err:
        raise UserError(f"cannot list {uri}: {err}") from None
    found = [o["Key"] for o in listed.get("Contents", [])]
    if not found:
        return Check(f"objects under {uri}", ok=False, detail=f"no object under {uri}")
    return Check(f"objects under {uri}", ok=True, detail=f"found s3://{bucket}/{found[0]}")


def check_alias(tracking_uri: str, name: str, alias: str) -> Check:
    """Does ``models:/name@alias`` exist? Missing model or alias: not ready. Anything else
    (unreachable, denied, server error): a UserError, the preflight cannot decide."""
    from mlflow import MlflowClient  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415
    from mlflow.protos.databricks_pb2 import (  # noqa: PLC0415
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    label = f"models:/{name}@{alias}"
    point_mlflow_at(tracking_uri)
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            detail = f"registered model {name!r} does not exist (no training run registered it)"
            return Check(label, ok=False, detail=detail)
        if err.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE):
            detail = f"registered model {name!r} has no {alias!r} alias (none passed the gate)"
            return Check(label, ok=False, detail=detail)
        first_line = (err.message or str(err)).strip().splitlines()[0]
        raise UserError(f"cannot check {label} in MLflow at {tracking_uri}: {first_line}") from None
    except Exception as err:  # requests/connection errors the client does not wrap
        raise UserError(
            f"cannot check {label} in MLflow at {tracking_uri}: {type(err).__name__}: {err}"
        ) from None
    return Check(label, ok=True, detail=f"{label} is version {version.version}")


def decide(
    *,
    object_uris: Sequence[str],
    require_alias: bool,
    env: Mapping[str, str],
    s3: Any | None = None,
    region: str | None = None,
) -> Decision:
    """Run every check; ready when all pass. Raises UserError when a check cannot run."""
    checks: list[Check] = []
    if object_uris:
        for uri in object_uris:
            split_s3_uri(uri)  # every URI is well-formed before any call
        if s3 is None:
            import boto3  # noqa: PLC0415

            s3 = boto3.client("s3", region_name=region)
        checks += [check_objects(s3, uri) for uri in object_uris]
    if require_alias:
        tracking_uri = env.get("MLFLOW_TRACKING_URI", "").strip()
        if not tracking_uri:
            raise UserError(f"{contract.ALIAS_FLAG} needs MLFLOW_TRACKING_URI")
        name = env.get("MODEL_NAME", "").strip() or "iris-model"
        alias = env.get("MODEL_ALIAS", "").strip() or "production"
        checks.append(check_alias(tracking_uri, name, alias))
    if not checks:
        raise UserError(
            f"nothing to check: give {contract.OBJECTS_FLAG} and/or {contract.ALIAS_FLAG}"
        )
    failed = [c.detail for c in checks if not c.ok]
    if failed:
        return Decision(False, "skipped: " + "; ".join(failed), tuple(checks))
    return Decision(True, "ready: " + "; ".join(c.detail for c in checks), tuple(checks))


def write_decision(decision: Decision, output_dir: Path) -> Path:
    """The decision file, written atomically (the pipeline reads it after the job ends)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / contract.FILE_NAME
    with tempfile.NamedTemporaryFile(
        "w", dir=output_dir, prefix=".decision-", suffix=".json", delete=False
    ) as handle:
        json.dump(decision.as_json(), handle, indent=2)
        handle.write("\n")
    Path(handle.name).replace(target)
    return target


def main(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, s3: Any = None
) -> int:
    env = os.environ if env is None else env
    args = parser().parse_args(argv)
    try:
        if args.require_alias:
            os.environ.update(credentials_from_secret(env))  # MLflow basic auth, when configured
        decision = decide(
            object_uris=args.require_objects,
            require_alias=args.require_alias,
            env=env,
            s3=s3,
            region=args.region or None,
        )
        path = write_decision(decision, Path(args.output_dir))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except OSError as err:
        print(f"error: cannot write the decision: {err}", file=sys.stderr, flush=True)
        return 1
    # One line in the job's log: the decision and why (the file holds the same, for the record).
    print(f"preflight {decision.reason} ({path})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
