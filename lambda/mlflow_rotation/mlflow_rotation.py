"""Secrets Manager rotation of an MLflow basic-auth user's secret ``{"username", "password"}``.

MLflow's basic-auth app keeps each user's password hash in its own auth database, so a new
password in the secret alone would lock the user out. This function follows the four-step
contract of a Secrets Manager rotation function (createSecret, setSecret, testSecret,
finishSecret; https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda-functions.html
and the generic template SecretsManagerRotationTemplate/lambda_function.py of
aws-samples/aws-secrets-manager-rotation-lambdas):

- createSecret: a new password (what the template's GetRandomPassword call with
  ExcludePunctuation makes: 32 letters and digits with at least one of each kind, but made
  here with Python's ``secrets``, so the role needs no secretsmanager:GetRandomPassword on "*")
  staged AWSPENDING under the request's token;
- setSecret: the server's password of that user becomes the pending one, through MLflow's auth
  REST API ``PATCH /api/2.0/mlflow/users/update-password`` (mlflow/server/auth/routes.py,
  update_user_password in mlflow/server/auth/__init__.py), authenticated as the admin whose
  secret is ``MLFLOW_ADMIN_SECRET_ARN`` (AWSCURRENT). An admin changing its own password must
  also send ``current_password`` (MLflow's self-service rule), which is the secret's AWSCURRENT;
- testSecret: the pending credentials log in (``GET /api/2.0/mlflow/users/get`` of the user,
  which needs a valid login and allows a user to read itself);
- finishSecret: AWSCURRENT moves to the new version.

Environment: ``MLFLOW_TRACKING_URI`` (the server as clients reach it) and
``MLFLOW_ADMIN_SECRET_ARN``. One function rotates both the admin's and the client user's
secret. Passwords are never logged. boto3 and the standard library only (the runtime has both).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import string
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import boto3

log = logging.getLogger()
log.setLevel(logging.INFO)

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"  # noqa: S105 (a path)
GET_USER = "/api/2.0/mlflow/users/get"
TIMEOUT_SECONDS = 20
PASSWORD_LENGTH = 32  # as the template's GetRandomPassword call (no punctuation)
PASSWORD_KINDS = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
PASSWORD_ALPHABET = "".join(PASSWORD_KINDS)


class RotationError(Exception):
    """The rotation cannot proceed: the secret, its versions or the server refused."""


Opener = Callable[[urllib.request.Request, float], Any]


def _open(request: urllib.request.Request, timeout: float) -> Any:
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (the configured https/http URI)


class MlflowUsers:
    """The two auth REST calls the rotation makes, with basic auth."""

    def __init__(self, tracking_uri: str, opener: Opener = _open) -> None:
        if urllib.parse.urlsplit(tracking_uri).scheme not in ("http", "https"):
            raise RotationError(f"MLFLOW_TRACKING_URI={tracking_uri!r} is not an http(s) URL")
        self.base = tracking_uri.rstrip("/")
        self._open = opener

    def _call(
        self, method: str, path: str, auth: tuple[str, str], body: Mapping[str, str] | None
    ) -> int:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        data = None
        url = self.base + path
        if body is not None and method == "GET":
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self._open(request, TIMEOUT_SECONDS) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except (urllib.error.URLError, OSError) as err:
            raise RotationError(f"MLflow at {self.base} is unreachable: {err}") from None

    def can_log_in(self, username: str, password: str) -> bool:
        status = self._call("GET", GET_USER, (username, password), {"username": username})
        if status in (200, 401):
            return status == 200
        raise RotationError(f"GET {GET_USER} as {username} answered {status}")

    def set_password(
        self,
        username: str,
        password: str,
        *,
        admin: tuple[str, str],
        current_password: str | None,
    ) -> None:
        body = {"username": username, "password": password}
        if current_password is not None:  # self-service: MLflow asks for the current password
            body["current_password"] = current_password
        status = self._call("PATCH", UPDATE_PASSWORD, admin, body)
        if status != 200:
            raise RotationError(
                f"PATCH {UPDATE_PASSWORD} for {username} as {admin[0]} answered {status}"
            )


def new_password(length: int = PASSWORD_LENGTH) -> str:
    """Random letters and digits with at least one of each kind: GetRandomPassword's result for
    ExcludePunctuation=True (its RequireEachIncludedType defaults to true; no spaces), from
    the operating system's CSPRNG (``secrets``)."""
    while True:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if all(any(c in kind for c in password) for kind in PASSWORD_KINDS):
            return password


def _credentials(text: str | None, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "")
    except ValueError:
        raise RotationError(f"{where} is not JSON") from None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) and value[k] for k in ("username", "password")
    ):
        raise RotationError(f'{where} is not {{"username": ..., "password": ...}}')
    return value


class Rotation:
    """One rotation step of one secret."""

    def __init__(self, secrets: Any, users: MlflowUsers, admin_secret_arn: str) -> None:
        self.secrets = secrets
        self.users = users
        self.admin_secret_arn = admin_secret_arn

    def value(self, arn: str, stage: str, token: str | None = None) -> dict[str, Any]:
        kwargs = {"SecretId": arn, "VersionStage": stage}
        if token is not None:
            kwargs["VersionId"] = token
        text = self.secrets.get_secret_value(**kwargs).get("SecretString")
        return _credentials(text, f"secret {arn} ({stage})")

    def run(self, arn: str, token: str, step: str) -> None:
        if step not in STEPS:
            raise RotationError(f"Step={step!r} is not one of {', '.join(STEPS)}")
        metadata = self.secrets.describe_secret(SecretId=arn)
        if not metadata.get("RotationEnabled"):
            raise RotationError(f"secret {arn} is not enabled for rotation")
        stages = metadata.get("VersionIdsToStages", {})
        if token not in stages:
            raise RotationError(f"secret version {token} has no stage for rotation of {arn}")
        if CURRENT in stages[token]:
            log.info("%s: version %s is already AWSCURRENT of %s", step, token, arn)
            return
        if PENDING not in stages[token]:
            raise RotationError(f"secret version {token} is not AWSPENDING for rotation of {arn}")
        getattr(self, step.removesuffix("Secret") + "_secret")(arn, token)

    def create_secret(self, arn: str, token: str) -> None:
        current = self.value(arn, CURRENT)
        try:
            self.value(arn, PENDING, token)
            log.info("createSecret: version %s of %s already exists", token, arn)
            return
        except self.secrets.exceptions.ResourceNotFoundException:
            pass
        password = new_password()
        self.secrets.put_secret_value(
            SecretId=arn,
            ClientRequestToken=token,
            SecretString=json.dumps({**current, "password": password}),
            VersionStages=[PENDING],
        )
        log.info("createSecret: put version %s of %s", token, arn)

    def set_secret(self, arn: str, token: str) -> None:
        current = self.value(arn, CURRENT)
        pending = self.value(arn, PENDING, token)
        if pending["username"] != current["username"]:
            raise RotationError(
                f"the pending version of {arn} names user {pending['username']!r}, "
                f"the current one {current['username']!r}"
            )
        username = pending["username"]
        if self.users.can_log_in(username, pending["password"]):
            log.info("setSecret: %s already has the pending password", username)
            return
        own = arn == self.admin_secret_arn
        if own:
            self.users.set_password(
                username,
                pending["password"],
                admin=(current["username"], current["password"]),
                current_password=current["password"],
            )
        else:
            self.users.set_password(
                username, pending["password"], admin=self.admin(), current_password=None
            )
        log.info("setSecret: set the password of MLflow user %s", username)

    def admin(self) -> tuple[str, str]:
        """The admin's credentials: AWSCURRENT, or AWSPENDING while the admin's own rotation
        is between its setSecret and finishSecret (MLflow already has the new password)."""
        current = self.value(self.admin_secret_arn, CURRENT)
        if self.users.can_log_in(current["username"], current["password"]):
            return current["username"], current["password"]
        try:
            pending = self.value(self.admin_secret_arn, PENDING)
        except self.secrets.exceptions.ResourceNotFoundException:
            pending = None
        if pending is not None and self.users.can_log_in(pending["username"], pending["password"]):
            return pending["username"], pending["password"]
        return current["username"], current["password"]  # refused: set_password says so

    def test_secret(self, arn: str, token: str) -> None:
        pending = self.value(arn, PENDING, token)
        if not self.users.can_log_in(pending["username"], pending["password"]):
            raise RotationError(f"MLflow refuses the pending password of {pending['username']}")
        log.info("testSecret: %s logs in with the pending password", pending["username"])

    def finish_secret(self, arn: str, token: str) -> None:
        stages = self.secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
        current = next((v for v, s in stages.items() if CURRENT in s), None)
        if current == token:
            return
        self.secrets.update_secret_version_stage(
            SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
        )
        log.info("finishSecret: version %s of %s is AWSCURRENT", token, arn)


def handler(event: Mapping[str, Any], context: object = None) -> None:
    """Entry point: ``{"SecretId", "ClientRequestToken", "Step"}`` from Secrets Manager."""
    try:
        arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    except KeyError as err:
        raise RotationError(f"the rotation event has no {err.args[0]}") from None
    rotation = Rotation(
        boto3.client("secretsmanager"),
        MlflowUsers(os.environ["MLFLOW_TRACKING_URI"]),
        os.environ["MLFLOW_ADMIN_SECRET_ARN"],
    )
    rotation.run(arn, token, step)
