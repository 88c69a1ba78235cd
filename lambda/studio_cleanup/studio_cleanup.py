"""Custom resource that empties a SageMaker Studio domain so CloudFormation can delete it.

SageMaker refuses to delete a domain that still has apps, spaces or user profiles, and users
create those from the Studio UI, outside the template. Emptying a domain takes longer than one
Lambda call may run (apps stop in minutes each, then spaces, then profiles, then the home EFS),
so this runs under the CDK provider framework (``custom_resources.Provider``) as two handlers:

- :func:`on_event` answers ``Create``/``Update`` at once and, on ``Delete``, starts the
  deletions: one :meth:`Cleaner.step`.
- :func:`is_complete` is polled by the framework's waiter (a Step Functions state machine)
  until it returns ``{"IsComplete": True}`` or the provider's total timeout passes. On
  ``Delete`` every poll is another :meth:`Cleaner.step`, which deletes what can be deleted now
  and reports what is left.

A step is idempotent and never waits for SageMaker: it looks at what is left, issues the next
deletes, and returns. In order: apps (skipping those already ``Deleting``/``Deleted``/
``Failed``), then spaces, then user profiles; when ``DeleteHomeEfs`` is ``"true"``, then the
domain itself with ``RetentionPolicy.HomeEfsFileSystem=Delete`` (CloudFormation's own delete
keeps the EFS) and, once the domain is gone, the two NFS security groups SageMaker created in
the VPC for this domain, so the network stack can be deleted afterwards.

Errors: a malformed event or an unknown ``RequestType`` raises :class:`MalformedEventError`
with one line naming the field and what is allowed. The provider framework catches every error
a user handler raises and answers CloudFormation ``FAILED`` with the error message
(aws-cdk-lib ``custom-resources/lib/provider-framework/runtime/framework.js``
``invokeUserFunction`` throws on ``FunctionError``; ``cfn-response.js`` ``safeHandler``
submits ``FAILED`` with ``e.message``), so CloudFormation never waits for a missing answer and
never gets ``SUCCESS`` for a request this handler did not understand. Throttling is retried with
back-off inside a call until the call's deadline, then left to the next poll.

boto3 only (the Lambda runtime provides it); no bundling.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

REQUEST_TYPES = ("Create", "Update", "Delete")
# botocore's sagemaker model: shape DomainId, pattern d-(-*[a-z0-9]){1,61}.
DOMAIN_ID = re.compile(r"d-(-*[a-z0-9]){1,61}")
VPC_ID = re.compile(r"vpc-[0-9a-f]{8,17}")
# arn:<partition>:sagemaker:<region>:<account>:domain/<domain-id>
DOMAIN_ARN = re.compile(r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:domain/(?P<id>d-[-a-z0-9]+)")
# The tag SageMaker puts on the home EFS and on the NFS security groups it creates for a domain;
# its value is the domain ARN.
SAGEMAKER_TAG = "ManagedByAmazonSageMakerResource"

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
# Time kept back from the Lambda timeout: a step stops backing off before it.
SAFETY_MARGIN_SECONDS = 20.0


class MalformedEventError(ValueError):
    """The event is not a CloudFormation request this custom resource understands."""


class StillThrottledError(Exception):
    """A call stayed throttled until this invocation's deadline; the next poll retries."""


@dataclass(frozen=True)
class Request:
    """The fields of a CloudFormation custom-resource request this handler uses."""

    request_type: str
    domain_id: str
    domain_arn: str
    delete_home_efs: bool
    vpc_id: str | None
    physical_id: str | None

    @classmethod
    def parse(cls, event: object) -> Request:
        """Validate ``event``; raise :class:`MalformedEventError` with one line when it is bad."""
        if not isinstance(event, Mapping):
            raise MalformedEventError(
                f"malformed event: expected a JSON object, got {type(event).__name__}"
            )
        request_type = event.get("RequestType")
        if request_type not in REQUEST_TYPES:
            raise MalformedEventError(
                f"malformed event: RequestType={request_type!r} is not one of "
                + ", ".join(REQUEST_TYPES)
            )
        props = event.get("ResourceProperties")
        if not isinstance(props, Mapping):
            raise MalformedEventError(
                "malformed event: ResourceProperties is missing or not an object; expected "
                "DomainId, DomainArn, DeleteHomeEfs and VpcId"
            )
        domain_id = props.get("DomainId")
        if not isinstance(domain_id, str) or not DOMAIN_ID.fullmatch(domain_id):
            raise MalformedEventError(
                f"malformed event: ResourceProperties.DomainId={domain_id!r} is not a SageMaker "
                "domain ID (d- followed by lower-case letters and digits)"
            )
        domain_arn = props.get("DomainArn")
        match = DOMAIN_ARN.fullmatch(domain_arn) if isinstance(domain_arn, str) else None
        if match is None or match["id"] != domain_id:
            raise MalformedEventError(
                f"malformed event: ResourceProperties.DomainArn={domain_arn!r} is not the ARN "
                f"of domain {domain_id} (arn:<partition>:sagemaker:<region>:<account>:domain/"
                f"{domain_id})"
            )
        delete_home_efs = props.get("DeleteHomeEfs")
        if delete_home_efs not in ("true", "false"):
            raise MalformedEventError(
                f"malformed event: ResourceProperties.DeleteHomeEfs={delete_home_efs!r} is not "
                "one of 'true', 'false'"
            )
        vpc_id = props.get("VpcId")
        if vpc_id is not None and (not isinstance(vpc_id, str) or not VPC_ID.fullmatch(vpc_id)):
            raise MalformedEventError(
                f"malformed event: ResourceProperties.VpcId={vpc_id!r} is not a VPC ID "
                "(vpc- followed by 8 or 17 hexadecimal digits)"
            )
        physical_id = event.get("PhysicalResourceId")
        if request_type != "Create" and (not isinstance(physical_id, str) or not physical_id):
            raise MalformedEventError(
                f"malformed event: PhysicalResourceId={physical_id!r}; every {request_type} "
                "request carries the non-empty ID the Create returned"
            )
        return cls(
            request_type=str(request_type),
            domain_id=domain_id,
            domain_arn=str(domain_arn),
            delete_home_efs=delete_home_efs == "true",
            vpc_id=vpc_id,
            physical_id=physical_id if isinstance(physical_id, str) else None,
        )


class Cleaner:
    """Empties one domain step by step, with injectable clients, clock and sleep (for tests)."""

    def __init__(
        self,
        sagemaker: Any,
        *,
        ec2: Any = None,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_backoff_seconds: float = 20.0,
    ) -> None:
        self.sagemaker = sagemaker
        self.ec2 = ec2
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
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
                if self.clock() + delay > self.deadline:
                    raise StillThrottledError(f"{operation} stayed throttled") from err
                LOG.warning(
                    "%s throttled (attempt %d); retrying in %.1fs", operation, attempt, delay
                )
                self.sleep(delay)

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

    # -- one step ----------------------------------------------------------------------------

    def step(self, request: Request) -> str | None:
        """Delete what can be deleted now; return what is still left, or None when done."""
        domain_id = request.domain_id
        try:
            left = (
                self.delete_apps(domain_id)
                or self.delete_spaces(domain_id)
                or self.delete_user_profiles(domain_id)
            )
        except ClientError as err:
            if _code(err) not in NOT_FOUND_CODES:
                raise
            LOG.info("domain %s is already gone", domain_id)
            left = None
        if left or not request.delete_home_efs:
            return left
        left = self.delete_domain_and_home(domain_id)
        if left is not None:
            return left or None  # "" = the domain stays (CloudFormation deletes it, keeps EFS)
        if request.vpc_id and self.ec2 is not None:
            return self.delete_nfs_security_groups(request.domain_arn, domain_id, request.vpc_id)
        return None

    def delete_apps(self, domain_id: str) -> str | None:
        apps = [
            app
            for app in self.pages("list_apps", "Apps", DomainIdEquals=domain_id)
            if app.get("Status") not in APP_DONE
        ]
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
        return f"{len(apps)} app(s) of {domain_id} being deleted" if apps else None

    def delete_spaces(self, domain_id: str) -> str | None:
        return self._delete_all(
            domain_id, listing="list_spaces", key="Spaces", name="SpaceName", delete="delete_space"
        )

    def delete_user_profiles(self, domain_id: str) -> str | None:
        return self._delete_all(
            domain_id,
            listing="list_user_profiles",
            key="UserProfiles",
            name="UserProfileName",
            delete="delete_user_profile",
        )

    def _delete_all(
        self, domain_id: str, *, listing: str, key: str, name: str, delete: str
    ) -> str | None:
        items = list(self.pages(listing, key, DomainIdEquals=domain_id))
        for item in items:
            if item.get("Status") not in IN_PROGRESS:  # Delete_Failed is deleted again
                LOG.info("%s %s", delete, item[name])
                self._delete(delete, DomainId=domain_id, **{name: item[name]})
        return f"{len(items)} {key} of {domain_id} being deleted" if items else None

    def _delete(self, operation: str, **kwargs: Any) -> None:
        try:
            self.call(self.sagemaker, operation, **kwargs)
        except ClientError as err:
            # Gone meanwhile, or still busy (e.g. a space whose app is stopping): the next
            # step's listing tells which, and it tries again.
            if _code(err) not in NOT_FOUND_CODES | {"ResourceInUse", "ValidationException"}:
                raise
            LOG.info("%s(%s): %s", operation, kwargs, err)

    def delete_domain_and_home(self, domain_id: str) -> str | None:
        """Delete the domain with its EFS home directories.

        Returns None when the domain is gone, ``""`` when SageMaker cannot delete it with its
        EFS (CloudFormation's own delete follows and keeps the EFS), else what is under way.
        """
        try:
            status = self.call(self.sagemaker, "describe_domain", DomainId=domain_id)["Status"]
        except ClientError as err:
            if _code(err) in NOT_FOUND_CODES:
                return None
            raise
        if status == "Deleting":
            return f"domain {domain_id} being deleted with its home EFS"
        if status == "Delete_Failed":
            LOG.warning("SageMaker could not delete %s with its home EFS", domain_id)
            return ""
        try:
            self.call(
                self.sagemaker,
                "delete_domain",
                DomainId=domain_id,
                RetentionPolicy={"HomeEfsFileSystem": "Delete"},
            )
        except ClientError as err:
            if _code(err) in NOT_FOUND_CODES:
                return None
            if _code(err) != "AccessDeniedException":
                raise
            LOG.warning(
                "cannot delete %s with its home EFS (%s); CloudFormation keeps it", domain_id, err
            )
            return ""
        return f"domain {domain_id} being deleted with its home EFS"

    def delete_nfs_security_groups(
        self, domain_arn: str, domain_id: str, vpc_id: str
    ) -> str | None:
        """Delete the two NFS security groups SageMaker created for this domain in ``vpc_id``.

        SageMaker names them ``security-group-for-{inbound,outbound}-nfs-<domain-id>`` and tags
        them ``ManagedByAmazonSageMakerResource=<domain ARN>``; only groups with both are
        touched (the role's policy allows no others).
        """
        names = [f"security-group-for-{d}-nfs-{domain_id}" for d in ("inbound", "outbound")]
        groups = self.call(
            self.ec2,
            "describe_security_groups",
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": names},
            ],
        )["SecurityGroups"]
        for group in [g for g in groups if not _tagged_for(g, domain_arn)]:
            LOG.warning(
                "%s (%s) is not tagged %s=%s: left in place",
                group["GroupName"],
                group["GroupId"],
                SAGEMAKER_TAG,
                domain_arn,
            )
        groups = [g for g in groups if _tagged_for(g, domain_arn)]
        try:
            # The two groups reference each other: drop the rules first, then the groups.
            for group in groups:
                for operation, rules in (
                    ("revoke_security_group_ingress", group.get("IpPermissions")),
                    ("revoke_security_group_egress", group.get("IpPermissionsEgress")),
                ):
                    if rules:
                        self._ec2_ignoring(
                            {"InvalidPermission.NotFound", "InvalidGroup.NotFound"},
                            operation,
                            GroupId=group["GroupId"],
                            IpPermissions=rules,
                        )
            in_use = [
                group["GroupId"]
                for group in groups
                if not self._ec2_ignoring(
                    {"InvalidGroup.NotFound"}, "delete_security_group", GroupId=group["GroupId"]
                )
            ]
        except ClientError as err:
            if _code(err) != "UnauthorizedOperation":
                raise
            # Not tagged as SageMaker's group for this domain: leave it, say so.
            LOG.warning("may not delete the NFS security groups of %s: %s", domain_id, err)
            return None
        return f"security group(s) {', '.join(in_use)} still in use" if in_use else None

    def _ec2_ignoring(self, codes: set[str], operation: str, **kwargs: Any) -> bool:
        """Call an EC2 operation; False when it is still in use (``DependencyViolation``)."""
        try:
            self.call(self.ec2, operation, **kwargs)
        except ClientError as err:
            if _code(err) == "DependencyViolation":  # EFS mount targets still detaching
                return False
            if _code(err) not in codes:
                raise
        return True


def _tagged_for(group: Mapping[str, Any], domain_arn: str) -> bool:
    return any(
        tag.get("Key") == SAGEMAKER_TAG and tag.get("Value") == domain_arn
        for tag in group.get("Tags", [])
    )


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


# -- the provider framework's two user handlers -----------------------------------------------


def on_event(event: Any, context: Any) -> dict[str, Any]:
    """Create/Update: nothing to do. Delete: start emptying the domain (one step)."""
    request = Request.parse(event)
    LOG.info("on_event: %s", _loggable(event))
    if request.request_type != "Delete":
        return {"PhysicalResourceId": f"{request.domain_id}-cleanup"}
    left = _step(request, context)
    LOG.info("after the first step: %s", left or "nothing left")
    return {"PhysicalResourceId": request.physical_id}


def is_complete(event: Any, context: Any) -> dict[str, Any]:
    """Delete: one more step; complete when nothing of the domain is left to delete."""
    request = Request.parse(event)
    if request.request_type != "Delete":
        return {"IsComplete": True}
    left = _step(request, context)
    LOG.info("still left: %s", left or "nothing")
    return {"IsComplete": left is None}


def _step(request: Request, context: Any) -> str | None:
    config = Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=30)
    remaining = context.get_remaining_time_in_millis() / 1000.0
    cleaner = Cleaner(
        boto3.client("sagemaker", config=config),
        ec2=boto3.client("ec2", config=config),
        deadline=time.monotonic() + remaining - SAFETY_MARGIN_SECONDS,
    )
    try:
        return cleaner.step(request)
    except StillThrottledError as err:
        return f"{err}; the next poll retries"


def _loggable(event: Any) -> str:
    return json.dumps({k: v for k, v in dict(event).items() if k != "ResponseURL"}, default=str)
