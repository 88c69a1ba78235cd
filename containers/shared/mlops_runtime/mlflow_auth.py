"""MLflow client settings of a job: bounded HTTP retries, and basic auth for a self-hosted
server (credentials from a Secrets Manager secret).

The pipelines pass ``MLFLOW_CREDENTIALS_SECRET_ARN`` (a secret ``{"username", "password"}``)
instead of the password; the job's role may read it. MLflow reads the two variables returned
here. Credentials already in the environment win. The password is never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from mlops_runtime.errors import UserError

SECRET_ARN_ENV = "MLFLOW_CREDENTIALS_SECRET_ARN"  # noqa: S105 -- a variable name
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 -- a variable name


# MLflow retries a failed request MLFLOW_HTTP_REQUEST_MAX_RETRIES times (default 7) with
# exponential backoff (factor 2): about four minutes before an unreachable server is reported.
# A scheduled job should fail fast and say where it tried. These defaults apply unless the job's
# environment sets them; MLflow caps retries at 10 and the backoff factor at 120
# (mlflow.environment_variables, https://mlflow.org/docs/latest/python_api/mlflow.environment_variables.html).
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": ("2", 0, 10),
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": ("1", 0, 120),
    "MLFLOW_HTTP_REQUEST_TIMEOUT": ("20", 1, 3600),
}


def point_mlflow_at(tracking_uri: str) -> None:
    """Point this process's MLflow client at ``tracking_uri``.

    sagemaker-mlflow's header plugin parses every tracking URI as an ARN and logs a warning on
    each request when it is not one; it only matters for ARNs, so it is quieted for the others.
    """
    import mlflow  # noqa: PLC0415 -- heavy; synth imports this module for http_environment

    mlflow.set_tracking_uri(tracking_uri)
    if not tracking_uri.startswith("arn:"):
        logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)


def http_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The MLflow HTTP retry settings to apply: the job's own when valid, else the defaults."""
    settings = {}
    for name, (default, low, high) in HTTP_DEFAULTS.items():
        value = env.get(name, "").strip() or default
        if not value.isdigit() or not low <= int(value) <= high:
            raise UserError(f"setting {name}={value!r} is not an integer between {low} and {high}")
        settings[name] = value
    return settings


def mlflow_failure(tracking_uri: str, err: Exception) -> UserError:
    """One line for a failed MLflow call, saying plainly when the server could not be reached."""
    text = str(getattr(err, "message", None) or err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    unreachable = ("Max retries exceeded", "Connection refused", "NewConnectionError",
                   "Failed to establish", "timed out", "Name or service not known")  # fmt: skip
    if any(marker in text for marker in unreachable):
        return UserError(f"MLflow at {tracking_uri} is unreachable: {first}")
    return UserError(f"MLflow at {tracking_uri} failed: {first}")


def credentials_from_secret(env: Mapping[str, str]) -> dict[str, str]:
    """``{MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD}`` to set; empty when not needed."""
    arn = env.get(SECRET_ARN_ENV, "").strip()
    if not arn or env.get(USERNAME_ENV):
        return {}
    import boto3  # noqa: PLC0415 -- only jobs against a self-hosted server need it
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    parts = arn.split(":")
    region = parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else None
    try:
        client = boto3.client("secretsmanager", region_name=region)
        text = client.get_secret_value(SecretId=arn).get("SecretString")
    except ClientError as err:
        error = err.response.get("Error", {})
        raise _error(arn, f"{error.get('Code', 'error')}: {error.get('Message', '')}") from None
    except BotoCoreError as err:
        raise _error(arn, str(err)) from None
    if text is None:
        raise _error(arn, "the secret has no SecretString")
    try:
        value = json.loads(text)
    except ValueError:
        raise _error(arn, 'the secret is not JSON {"username": ..., "password": ...}') from None
    if not isinstance(value, dict):
        raise _error(arn, 'the secret is not a JSON object {"username": ..., "password": ...}')
    missing = [
        k for k in ("username", "password") if not isinstance(value.get(k), str) or not value[k]
    ]
    if missing:
        raise _error(arn, f"the secret has no non-empty string {' or '.join(missing)}")
    return {USERNAME_ENV: value["username"], PASSWORD_ENV: value["password"]}


def _error(arn: str, reason: str) -> UserError:
    return UserError(f"MLflow credentials secret {SECRET_ARN_ENV}={arn} unusable: {reason}")
