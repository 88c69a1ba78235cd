"""MLflow basic auth for a self-hosted server: credentials from a Secrets Manager secret.

The pipelines pass ``MLFLOW_CREDENTIALS_SECRET_ARN`` (a secret ``{"username", "password"}``)
instead of the password; the job's role may read it. MLflow reads the two variables returned
here. Credentials already in the environment win. The password is never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from iris_training.errors import UserError

SECRET_ARN_ENV = "MLFLOW_CREDENTIALS_SECRET_ARN"  # noqa: S105 -- a variable name
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 -- a variable name


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
