"""Settings: command-line option, else environment variable, else default; validated once.

SageMaker Processing passes `ContainerArguments` on the command line and `Environment` as
variables, so every option accepts both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from iris_inference.errors import UserError
from iris_inference.shard_contract import OUTPUT_URI_ENV, SHARDED_ENV, STAGING_DIR

MAX_WORKERS = 256
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"  # what the SageMaker toolkits use to move /opt/ml
DEFAULT_BASE_DIR = Path("/opt/ml")


@dataclass(frozen=True)
class Option:
    flag: str
    env: str | None  # None: a command-line option only, never read from a job's Environment
    help: str

    @property
    def names(self) -> str:
        return self.flag if self.env is None else f"{self.flag}/{self.env}"


# Field name -> how it is set. The README's options table follows this.
OPTIONS = {
    "input_dir": Option("--input-dir", "INPUT_DIR", "directory scanned for .csv/.parquet files"),
    "output_dir": Option("--output-dir", "OUTPUT_DIR", "where date=YYYY-MM-DD/ is written"),
    "output_uri": Option(
        "--output-uri",
        OUTPUT_URI_ENV,
        "publish date=YYYY-MM-DD/ here instead (s3://bucket/prefix/ or a directory), in the "
        "reader's contract's order; SageMaker's end-of-job upload of --output-dir orders nothing",
    ),
    "date": Option("--date", "INFERENCE_DATE", "partition date YYYY-MM-DD (default: today, UTC)"),
    "model_name": Option("--model-name", "MODEL_NAME", "registered model name"),
    "model_alias": Option("--model-alias", "MODEL_ALIAS", "alias of the version to use"),
    # Generated rows are a demo and benchmark convenience: only an explicit command-line option
    # turns them on, never a default or a job's Environment, so a job started on a mistyped or
    # empty input fails instead of publishing made-up predictions over the day's real ones.
    "generate_rows": Option(
        "--generate-rows",
        None,
        "rows to generate when the input is empty (demo and benchmark only; default 0: off)",
    ),
    "seed": Option("--seed", None, "seed of generated rows (default: from the date)"),
    "chunk_rows": Option("--chunk-rows", "CHUNK_ROWS", "rows read, scored and written at a time"),
    "drift_threshold": Option(
        "--drift-threshold", "DRIFT_THRESHOLD", "PSI above which a feature is flagged as drifted"
    ),
    "workers": Option(
        "--workers", "INFERENCE_WORKERS", "threads scoring chunks at once (default: every core)"
    ),
    "sharded": Option(
        "--sharded",
        SHARDED_ENV,
        "1: score this host's share into the staging directory for the commit step "
        "(set by the sharded pipeline); 0 (default): publish the partition",
    ),
}


# Variables older images read; a job setting them expects behaviour this image refuses to have.
RETIRED_ENVIRONMENT = {
    "GENERATE_ROWS": "a job never generates rows; only make demo and the benchmark pass "
    "--generate-rows",
    "GENERATE_SEED": "a job never generates rows; only make demo and the benchmark pass --seed",
}


def check_job_environment(env: Mapping[str, str]) -> None:
    """A job's extra Environment: refuse what this container would refuse at start.

    Shared with synth (mlops_cdk.settings), so a value that would fail every run fails `cdk synth`.
    """
    for name, reason in RETIRED_ENVIRONMENT.items():
        if name in env:
            raise UserError(f"{name} is not read by the inference container: {reason}")
    values: dict[str, object] = {"tracking_uri": "checked-at-run-time", "input_dir": ".",
                                 "output_dir": ".", "date": "2026-01-01"}  # fmt: skip
    for field, option in OPTIONS.items():
        if option.env is not None and env.get(option.env, "") != "":
            values[field] = env[option.env]
    try:
        InferenceSettings.model_validate(values)
    except ValidationError as err:
        raise UserError("; ".join(_describe(error, values) for error in err.errors())) from None


def available_cores() -> int:
    """Cores this process may run on (the instance's, in a SageMaker job)."""
    try:
        return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))
    except AttributeError:  # not Linux
        return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


class InferenceSettings(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    tracking_uri: str = Field(
        min_length=1, description="an MLflow tracking URI or SageMaker MLflow ARN"
    )
    input_dir: Path = Field(description="a directory path")
    output_dir: Path = Field(description="a directory path")
    output_uri: str | None = Field(
        None,
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|[^:]+|file://.+)$",
        description="an s3://bucket/prefix/ URI or a directory path",
    )
    base_dir: Path = Field(DEFAULT_BASE_DIR, description="a directory path")
    date: dt.date = Field(description="a date written YYYY-MM-DD")
    model_name: str = Field(
        "iris-model",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="a name of letters, digits, '.', '_' or '-' (at most 100)",
    )
    model_alias: str = Field(
        "production",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$",
        description="an alias of letters, digits, '_' or '-'",
    )
    generate_rows: int = Field(
        0, ge=0, le=1_000_000_000, description="an integer between 0 and 1000000000"
    )
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="an integer between 0 and 4294967295"
    )
    chunk_rows: int = Field(
        100_000, ge=1, le=5_000_000, description="an integer between 1 and 5000000"
    )
    drift_threshold: float = Field(
        0.2,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="a number greater than 0 and at most 100 (PSI; 0.2 is the usual alarm level)",
    )

    workers: int = Field(
        default_factory=available_cores,
        ge=1,
        le=MAX_WORKERS,
        description=f"an integer between 1 and {MAX_WORKERS} (default: every core)",
    )
    sharded: bool = Field(False, description="1 (sharded) or 0 (publish the partition)")

    @field_validator("sharded", mode="before")
    @classmethod
    def _zero_or_one(cls, value: object) -> object:
        # Only the two spellings the pipeline writes: "yes", "true" or "2" are more likely a
        # mistake than a wish, and a wrong guess either publishes half a day or publishes nothing.
        if isinstance(value, str) and value not in ("0", "1"):
            raise ValueError("not 0 or 1")
        return value

    @field_validator("date", mode="before")
    @classmethod
    def _strict_date(cls, value: object) -> object:
        # date.fromisoformat also takes 20240101 and 2024-W01-1; partitions need one spelling.
        if isinstance(value, str):
            parsed = dt.datetime.strptime(value, "%Y-%m-%d").date()
            if parsed.isoformat() != value:
                raise ValueError("not YYYY-MM-DD")
            return parsed
        return value

    @property
    def staging_dir(self) -> Path:
        """shard_contract.STAGING_DIR, under SAGEMAKER_BASE_DIR when that moves /opt/ml."""
        return self.base_dir / Path(STAGING_DIR).relative_to(DEFAULT_BASE_DIR)

    @property
    def resource_config(self) -> Path:
        """Where SageMaker Processing describes the job's hosts ("current_host", "hosts"):
        https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html
        (How Amazon SageMaker Processing Provides Information About Your Processing Container)."""
        return self.base_dir / "config" / "resourceconfig.json"

    @property
    def generation_seed(self) -> int:
        """Explicit seed, else one per date: each day's generated rows differ, reruns repeat."""
        return self.seed if self.seed is not None else int(self.date.strftime("%Y%m%d"))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m iris_inference",
        description="Score every CSV/Parquet file under the input directory (or, with "
        "--generate-rows, generated rows when it is empty) with models:/MODEL_NAME@MODEL_ALIAS; write "
        "OUTPUT_DIR/date=YYYY-MM-DD/ (data parts, drift.json, summary.json, then _manifest.json "
        "and _SUCCESS: a partition is what its manifest lists). "
        "MLFLOW_TRACKING_URI must be set.",
    )
    for option in OPTIONS.values():
        if option.env is None:
            parser.add_argument(option.flag, metavar="N", help=option.help)
        else:
            parser.add_argument(
                option.flag, metavar=option.env, help=f"{option.help} [${option.env}]"
            )
    return parser


def load_settings(argv: Sequence[str] | None, env: Mapping[str, str]) -> InferenceSettings:
    args = vars(parser().parse_args(argv))
    for name, reason in RETIRED_ENVIRONMENT.items():
        if name in env:
            raise UserError(f"{name} is not read by the inference container: {reason}")
    base = Path(env.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)
    values: dict[str, object] = {
        "base_dir": str(base),
        "input_dir": str(base / "processing" / "input"),
        "output_dir": str(base / "processing" / "output"),
        "date": dt.datetime.now(dt.UTC).date().isoformat(),
    }
    for field, option in OPTIONS.items():
        given = args[field]
        if given is None and option.env is not None:
            given = env.get(option.env)
        if given not in (None, ""):
            values[field] = given
    if env.get("MLFLOW_TRACKING_URI"):
        values["tracking_uri"] = env["MLFLOW_TRACKING_URI"]
    try:
        return InferenceSettings.model_validate(values)
    except ValidationError as err:
        raise UserError("; ".join(_describe(error, values) for error in err.errors())) from None


def _describe(error: ErrorDetails, values: Mapping[str, object]) -> str:
    field = str(error["loc"][0])
    allowed = InferenceSettings.model_fields[field].description
    if field == "tracking_uri":
        if error["type"] == "missing":
            return f"setting MLFLOW_TRACKING_URI is not set (expected {allowed})"
        return f"setting MLFLOW_TRACKING_URI={values.get(field)!r} is not {allowed}"
    if field == "base_dir":
        return f"setting {BASE_DIR_ENV}={values.get(field)!r} is not {allowed}"
    option = OPTIONS[field]
    return f"setting {option.names}={values.get(field)!r} is not {allowed}"
