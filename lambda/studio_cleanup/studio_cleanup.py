"""Custom resource that empties a SageMaker Studio domain so CloudFormation can delete it.

SageMaker refuses to delete a domain that still has apps, spaces or user profiles, and users
create those from the Studio UI, outside the template. Emptying a domain takes longer than one
Lambda invocation may run (apps stop in minutes each, then spaces, then profiles, then the home
EFS): up to 55 minutes, inside the custom resource's one-hour ``ServiceTimeout``.

One function, :func:`handler`, is the custom resource's ServiceToken. CloudFormation invokes it
asynchronously with a pre-signed ``ResponseURL`` to answer
(https://docs.aws.amazon.com/lambda/latest/dg/services-cloudformation.html):

- ``Create``/``Update``: nothing to do; answers ``SUCCESS`` at once with the physical ID
  ``<domain-id>-cleanup``.
- ``Delete``: runs :meth:`Cleaner.step` every 30 s until nothing is left (``SUCCESS``). When
  the invocation's remaining time runs short it invokes itself again asynchronously
  (``InvocationType=Event``) with the same request plus its absolute deadline
  (:data:`DEADLINE_KEY`) and returns without answering; the new invocation carries on. Past the
  deadline it answers ``FAILED`` with what is still left.

A step is idempotent and never waits for SageMaker: it looks at what is left, issues the next
deletes, and returns. In order: apps (skipping those already ``Deleting``/``Deleted``/
``Failed``), then spaces, then user profiles; when ``DeleteHomeEfs`` is ``"true"``, then the
domain itself with ``RetentionPolicy.HomeEfsFileSystem=Delete`` (CloudFormation's own delete
keeps the EFS) and, once the domain is gone, the two NFS security groups SageMaker created in
the VPC for this domain, so the network stack can be deleted afterwards.

Errors: a malformed event or an unknown ``RequestType`` is answered ``FAILED`` with one line
naming the field and what is allowed (:class:`MalformedEventError`); any other error in a
teardown is answered ``FAILED`` with its one-line message, so CloudFormation never waits for a
missing answer and never gets ``SUCCESS`` for a request this handler did not understand.
Throttling is retried with back-off inside a step until the invocation's hand-over margin,
then left to the next poll.

Exactly one answer per request: each request is answered by the one invocation that ends it,
after which the handler returns normally; it raises only when it cannot answer at all (no
``ResponseURL``, or the PUT itself keeps failing), so Lambda's retries of a failed
asynchronous invocation (and then the dead-letter queue) never follow a sent answer. An
invocation that hands over answers nothing.

boto3 only (the Lambda runtime provides it); no bundling.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import urllib.parse
import urllib.request
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
# The whole teardown answers within this, inside the custom resource's ServiceTimeout (1 hour).
TOTAL_SECONDS = 55 * 60
POLL_SECONDS = 30.0
# Time an invocation keeps back from its timeout: a step stops backing off before it, and the
# invocation hands over to a new one when less than this would be left after the next poll
# (one more step's calls, under botocore's 10 s connect and 30 s read timeouts, and the
# hand-over or the answer).
HAND_OVER_MARGIN_SECONDS = 120.0
# Added to the event when an invocation hands over: the absolute deadline (epoch seconds).
DEADLINE_KEY = "StudioCleanupDeadline"
SUCCESS, FAILED, CONTINUED = "SUCCESS", "FAILED", "CONTINUED"
RESPONSE_ATTEMPTS = 3
RESPONSE_TIMEOUT_SECONDS = 10
REASON_LIMIT = 400  # characters; the whole response object is limited to 4096 bytes


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
    deadline: float | None = None  # set when a previous invocation handed over

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
        deadline = event.get(DEADLINE_KEY)
        if deadline is not None and (
            request_type != "Delete"
            or isinstance(deadline, bool)
            or not isinstance(deadline, (int, float))
        ):
            raise MalformedEventError(
                f"malformed event: {DEADLINE_KEY}={deadline!r}; only a Delete handed over "
                "by this function carries one, as epoch seconds"
            )
        return cls(
            request_type=str(request_type),
            domain_id=domain_id,
            domain_arn=str(domain_arn),
            delete_home_efs=delete_home_efs == "true",
            vpc_id=vpc_id,
            physical_id=physical_id if isinstance(physical_id, str) else None,
            deadline=float(deadline) if deadline is not None else None,
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


# -- the custom resource's handler ------------------------------------------------------------


@dataclass(frozen=True)
class Clients:
    """The AWS clients a teardown uses (stubbed in tests)."""

    sagemaker: Any
    ec2: Any
    lambda_: Any


def handler(event: Any, context: Any) -> str:
    """The custom resource's ServiceToken: CloudFormation invokes it asynchronously."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=30
    )
    clients = Clients(
        sagemaker=boto3.client("sagemaker", config=config),
        ec2=boto3.client("ec2", config=config),
        lambda_=boto3.client("lambda", config=config),
    )
    return serve(event, context, clients)


def serve(
    event: Any,
    context: Any,
    clients: Clients,
    *,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Answer one request, or continue its teardown in a new invocation.

    Returns what was done, for the log: ``SUCCESS`` or ``FAILED`` (answered), or ``CONTINUED``
    (handed over to a new invocation of this function, which answers later).
    """
    url = event.get("ResponseURL") if isinstance(event, Mapping) else None
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        # Nothing to answer: raise, so Lambda retries and then keeps the event in the
        # function's dead-letter queue.
        raise MalformedEventError(
            f"malformed event: ResponseURL={url!r} is not an http(s) URL; CloudFormation sends "
            "every request with its pre-signed https URL"
        )
    LOG.info("event: %s", _loggable(event))
    try:
        request = Request.parse(event)
    except MalformedEventError as err:
        LOG.error("%s", err)
        return respond(event, context, FAILED, reason=_one_line(err))
    if request.request_type != "Delete":
        # Nothing to create or update; the ID names the domain, so a replaced domain gets a
        # new one and CloudFormation sends Delete for the old (its teardown).
        return respond(event, context, SUCCESS, physical_id=f"{request.domain_id}-cleanup")
    deadline = request.deadline if request.deadline is not None else now() + TOTAL_SECONDS
    try:
        outcome = _tear_down(request, context, clients, deadline, now=now, sleep=sleep)
        if outcome is None:
            _continue(event, context, clients, deadline)
            return CONTINUED
    except Exception as err:  # every error is answered, once, in one line
        LOG.exception("teardown of %s failed", request.domain_id)
        outcome = (FAILED, _one_line(err))
    status, reason = outcome
    return respond(event, context, status, reason=reason)


def _tear_down(
    request: Request,
    context: Any,
    clients: Clients,
    deadline: float,
    *,
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[str, str] | None:
    """Step until nothing is left (SUCCESS), the deadline passes (FAILED) or this invocation
    runs short of time (None: continue in a new invocation)."""
    while True:
        remaining = context.get_remaining_time_in_millis() / 1000.0
        cleaner = Cleaner(
            clients.sagemaker,
            ec2=clients.ec2,
            deadline=time.monotonic() + remaining - HAND_OVER_MARGIN_SECONDS,
        )
        try:
            left = cleaner.step(request)
        except StillThrottledError as err:
            left = f"{err}; retried at the next poll"
        LOG.info("still left: %s", left or "nothing")
        if left is None:
            return SUCCESS, f"{request.domain_id} is empty"
        if now() >= deadline:
            return FAILED, (
                f"Studio teardown of {request.domain_id} timed out after "
                f"{TOTAL_SECONDS // 60} minutes; still left: {left}"
            )
        remaining = context.get_remaining_time_in_millis() / 1000.0
        if remaining - POLL_SECONDS < HAND_OVER_MARGIN_SECONDS:
            return None
        sleep(POLL_SECONDS)


def _continue(event: Mapping[str, Any], context: Any, clients: Clients, deadline: float) -> None:
    """Invoke this function again, asynchronously, with the same request and its deadline."""
    payload = json.dumps({**event, DEADLINE_KEY: deadline}).encode()
    LOG.info("continuing in a new invocation (deadline %.0f)", deadline)
    clients.lambda_.invoke(
        FunctionName=context.invoked_function_arn, InvocationType="Event", Payload=payload
    )


def respond(
    event: Mapping[str, Any],
    context: Any,
    status: str,
    *,
    reason: str = "",
    physical_id: str | None = None,
) -> str:
    """PUT CloudFormation's response object to the request's pre-signed ``ResponseURL``.

    The body is the custom resource response object (CloudFormation user guide, "Custom
    resource response objects", crpg-ref-responses.html): Status, Reason, PhysicalResourceId,
    StackId, RequestId and LogicalResourceId copied from the request; sent with an empty
    Content-Type, as AWS's own ``cfn-response`` module does (the URL is signed for it;
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cfn-lambda-function-code-cfnresponsemodule.html).
    A PUT that still fails after a few tries raises: Lambda retries the invocation (the
    steps are idempotent) and, after its retries, keeps the event in the dead-letter queue.
    """
    physical = physical_id or event.get("PhysicalResourceId") or context.log_stream_name
    body = {
        "Status": status,
        "Reason": reason or status,
        "PhysicalResourceId": str(physical),
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
    }
    data = json.dumps(body).encode()
    put = urllib.request.Request(  # noqa: S310 -- the scheme is checked in serve()
        str(event["ResponseURL"]),
        data=data,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(data))},
    )
    for attempt in range(1, RESPONSE_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(put, timeout=RESPONSE_TIMEOUT_SECONDS) as reply:  # noqa: S310
                LOG.info("answered %s (HTTP %s): %s", status, reply.status, body["Reason"])
                return status
        except OSError as err:  # URLError and HTTPError are OSErrors
            if attempt == RESPONSE_ATTEMPTS:
                raise
            LOG.warning("answering %s failed (%s); trying again", status, err)
            time.sleep(attempt)
    raise AssertionError("unreachable")


def _one_line(err: BaseException) -> str:
    """``err`` as one line of at most ``REASON_LIMIT`` characters (the whole response is
    limited to 4096 bytes)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, (MalformedEventError, ClientError)):
        text = f"{type(err).__name__}: {text}"
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."


def _loggable(event: Any) -> str:
    return json.dumps({k: v for k, v in dict(event).items() if k != "ResponseURL"}, default=str)
