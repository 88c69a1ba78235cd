"""Custom resource that empties a SageMaker Studio domain so CloudFormation can delete it.

SageMaker refuses to delete a domain that still has apps, spaces or user profiles, and users
create those from the Studio UI, outside the template. On ``Delete`` this handler:

1. deletes every app of the domain (skipping apps already ``Deleting``/``Deleted``/``Failed``)
   and waits until none is left running;
2. deletes every space and waits until they are gone;
3. deletes every user profile (the template's own included: CloudFormation treats a resource
   that is already gone as deleted) and waits until they are gone;
4. when ``DeleteHomeEfs`` is ``"true"``: deletes the domain itself with
   ``RetentionPolicy.HomeEfsFileSystem=Delete`` (CloudFormation's own delete keeps the EFS),
   waits for it, and removes the two NFS security groups SageMaker created in the VPC, so the
   network stack can be deleted afterwards.

Every call backs off and retries on throttling; listings are paginated. ``Create`` and
``Update`` do nothing. The handler always answers CloudFormation, with FAILED and the reason
when the domain could not be emptied before the Lambda's deadline.

boto3 only (the Lambda runtime provides it); no bundling.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
# Apps in these states no longer block the domain's deletion.
APP_DONE = frozenset({"Deleted", "Failed"})
# States where a delete is already under way: wait, don't delete again.
IN_PROGRESS = frozenset({"Deleting"})
POLL_SECONDS = 15.0
# Time kept back from the Lambda timeout to answer CloudFormation.
SAFETY_MARGIN_SECONDS = 45.0


class DeadlineExceededError(Exception):
    """The domain could not be emptied in the time the Lambda had."""


class Cleaner:
    """Empties one domain with an injectable client, clock and sleep (for tests)."""

    def __init__(
        self,
        sagemaker: Any,
        *,
        ec2: Any = None,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_seconds: float = POLL_SECONDS,
        max_backoff_seconds: float = 20.0,
    ) -> None:
        self.sagemaker = sagemaker
        self.ec2 = ec2
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds

    # -- calls -------------------------------------------------------------------------------

    def call(self, client: Any, operation: str, **kwargs: Any) -> Any:
        """Call ``operation``, backing off exponentially (with jitter) while it is throttled."""
        attempt = 0
        while True:
            try:
                return getattr(client, operation)(**kwargs)
            except ClientError as err:
                if _code(err) not in THROTTLING_CODES:
                    raise
                attempt += 1
                delay = min(self.max_backoff_seconds, 2.0**attempt) * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not crypto)
                LOG.warning(
                    "%s throttled (attempt %d); retrying in %.1fs", operation, attempt, delay
                )
                self._pause(delay, f"{operation} stayed throttled")

    def pages(self, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated SageMaker listing (NextToken), each page throttle-safe."""
        token: str | None = None
        while True:
            page = self.call(
                self.sagemaker, operation, **kwargs, **({"NextToken": token} if token else {})
            )
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return

    def _pause(self, seconds: float, waiting_for: str) -> None:
        if self.clock() + seconds > self.deadline:
            raise DeadlineExceededError(f"gave up waiting: {waiting_for}")
        self.sleep(seconds)

    # -- the sequence ------------------------------------------------------------------------

    def empty_domain(self, domain_id: str) -> None:
        try:
            self.delete_apps(domain_id)
            self.delete_spaces(domain_id)
            self.delete_user_profiles(domain_id)
        except ClientError as err:
            if _code(err) in NOT_FOUND_CODES:
                LOG.info("domain %s is already gone", domain_id)
                return
            raise

    def delete_apps(self, domain_id: str) -> None:
        while True:
            apps = [
                app
                for app in self.pages("list_apps", "Apps", DomainIdEquals=domain_id)
                if app.get("Status") not in APP_DONE
            ]
            if not apps:
                return
            for app in apps:
                if app.get("Status") in IN_PROGRESS:
                    continue
                owner = (
                    {"SpaceName": app["SpaceName"]}
                    if app.get("SpaceName")
                    else {"UserProfileName": app["UserProfileName"]}
                )
                LOG.info("deleting app %s/%s of %s", app["AppType"], app["AppName"], owner)
                self._delete(
                    "delete_app",
                    DomainId=domain_id,
                    AppType=app["AppType"],
                    AppName=app["AppName"],
                    **owner,
                )
            self._pause(self.poll_seconds, f"{len(apps)} app(s) of {domain_id} to be deleted")

    def delete_spaces(self, domain_id: str) -> None:
        self._delete_all(
            domain_id,
            listing="list_spaces",
            key="Spaces",
            name="SpaceName",
            delete="delete_space",
        )

    def delete_user_profiles(self, domain_id: str) -> None:
        self._delete_all(
            domain_id,
            listing="list_user_profiles",
            key="UserProfiles",
            name="UserProfileName",
            delete="delete_user_profile",
        )

    def _delete_all(
        self, domain_id: str, *, listing: str, key: str, name: str, delete: str
    ) -> None:
        while True:
            items = list(self.pages(listing, key, DomainIdEquals=domain_id))
            if not items:
                return
            for item in items:
                if item.get("Status") not in IN_PROGRESS:  # Delete_Failed is deleted again
                    LOG.info("%s %s", delete, item[name])
                    self._delete(delete, DomainId=domain_id, **{name: item[name]})
            self._pause(self.poll_seconds, f"{len(items)} {key} of {domain_id} to be deleted")

    def _delete(self, operation: str, **kwargs: Any) -> None:
        try:
            self.call(self.sagemaker, operation, **kwargs)
        except ClientError as err:
            # Gone meanwhile, or still busy (e.g. a space whose app is stopping): the next
            # listing tells which, and the loop tries again.
            if _code(err) not in NOT_FOUND_CODES | {"ResourceInUse", "ValidationException"}:
                raise
            LOG.info("%s(%s): %s", operation, kwargs, err)

    def delete_domain_and_home(self, domain_id: str, vpc_id: str | None) -> None:
        """Delete the domain with its EFS home directories, then SageMaker's NFS groups."""
        try:
            self.call(
                self.sagemaker,
                "delete_domain",
                DomainId=domain_id,
                RetentionPolicy={"HomeEfsFileSystem": "Delete"},
            )
        except ClientError as err:
            if _code(err) in NOT_FOUND_CODES:
                return
            if _code(err) != "AccessDeniedException":
                raise
            LOG.warning(
                "cannot delete %s with its home EFS (%s); CloudFormation keeps it", domain_id, err
            )
            return
        while True:
            try:
                status = self.call(self.sagemaker, "describe_domain", DomainId=domain_id)["Status"]
            except ClientError as err:
                if _code(err) in NOT_FOUND_CODES:
                    break
                raise
            if status == "Delete_Failed":
                # CloudFormation's own delete follows and keeps the EFS: the stack still goes.
                LOG.warning("SageMaker could not delete %s with its home EFS", domain_id)
                return
            self._pause(self.poll_seconds, f"domain {domain_id} to be deleted")
        if vpc_id and self.ec2 is not None:
            self.delete_nfs_security_groups(domain_id, vpc_id)

    def delete_nfs_security_groups(self, domain_id: str, vpc_id: str) -> None:
        names = [f"security-group-for-{d}-nfs-{domain_id}" for d in ("inbound", "outbound")]
        groups = self.call(
            self.ec2,
            "describe_security_groups",
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": names},
            ],
        )["SecurityGroups"]
        # The two groups reference each other: drop the rules first, then the groups.
        for group in groups:
            if group.get("IpPermissions"):
                self.call(
                    self.ec2,
                    "revoke_security_group_ingress",
                    GroupId=group["GroupId"],
                    IpPermissions=group["IpPermissions"],
                )
            if group.get("IpPermissionsEgress"):
                self.call(
                    self.ec2,
                    "revoke_security_group_egress",
                    GroupId=group["GroupId"],
                    IpPermissions=group["IpPermissionsEgress"],
                )
        for group in groups:
            while True:
                try:
                    self.call(self.ec2, "delete_security_group", GroupId=group["GroupId"])
                    break
                except ClientError as err:
                    if _code(err) == "InvalidGroup.NotFound":
                        break
                    if _code(err) != "DependencyViolation":  # EFS mount targets still detaching
                        raise
                    self._pause(self.poll_seconds, f"{group['GroupId']} to be released")


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


# -- the Lambda entry point --------------------------------------------------------------------


def handler(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource entry point: always sends a response."""
    LOG.info("event: %s", json.dumps({k: v for k, v in event.items() if k != "ResponseURL"}))
    props = event.get("ResourceProperties", {})
    domain_id = str(props.get("DomainId", ""))
    physical_id = event.get("PhysicalResourceId") or f"{domain_id}-cleanup"
    if event["RequestType"] in ("Create", "Update"):
        physical_id = f"{domain_id}-cleanup"
    status, reason = "SUCCESS", ""
    try:
        if event["RequestType"] == "Delete" and domain_id:
            run_delete(props, context)
    except Exception as err:  # any failure must still answer CloudFormation
        LOG.exception("cleanup of %s failed", domain_id)
        status, reason = "FAILED", f"{type(err).__name__}: {err}"[:900]
    send_response(event, status=status, physical_id=physical_id, reason=reason)


def run_delete(props: dict[str, Any], context: Any) -> None:
    config = Config(retries={"mode": "standard", "max_attempts": 8})
    remaining = context.get_remaining_time_in_millis() / 1000.0
    cleaner = Cleaner(
        boto3.client("sagemaker", config=config),
        ec2=boto3.client("ec2", config=config),
        deadline=time.monotonic() + remaining - SAFETY_MARGIN_SECONDS,
    )
    domain_id = str(props["DomainId"])
    cleaner.empty_domain(domain_id)
    if str(props.get("DeleteHomeEfs", "false")).lower() == "true":
        cleaner.delete_domain_and_home(domain_id, str(props.get("VpcId") or "") or None)


def send_response(event: dict[str, Any], *, status: str, physical_id: str, reason: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or f"See the log stream of this function ({status})",
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": {},
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (the https URL CloudFormation gave us)
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        LOG.info("CloudFormation answered %s", response.status)
