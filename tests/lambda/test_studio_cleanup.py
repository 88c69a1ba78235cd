"""The Studio teardown's two provider-framework handlers, against botocore's Stubber (no AWS).

Stubber checks each call's operation and parameters in order, so these tests pin the sequence a
teardown goes through over the framework's polls: apps (skipping those already deleting or
deleted), then spaces, then user profiles, then (when the removal policy destroys) the domain
with its home EFS and SageMaker's two NFS security groups. Each call to a handler makes one
step and never waits for SageMaker; throttled calls are retried after a back-off, and a call
still throttled at the invocation's deadline is left to the next poll.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import studio_cleanup
from botocore.stub import ANY, Stubber
from studio_cleanup import Cleaner, MalformedEventError, Request

DOMAIN = "d-abc123def456"
DOMAIN_ARN = f"arn:aws:sagemaker:eu-west-1:111122223333:domain/{DOMAIN}"
VPC = "vpc-0123456789abcdef0"


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeContext:
    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@functools.cache  # one per service: each test stubs it anew (a client takes ~25 ms to build)
def _client(service: str) -> Any:
    return boto3.client(
        service,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    client = _client("sagemaker")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def ec2() -> Iterator[tuple[Any, Stubber]]:
    client = _client("ec2")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def clients(
    sagemaker: tuple[Any, Stubber], ec2: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> tuple[Stubber, Stubber]:
    """The handlers' boto3 clients are the stubbed ones; sleeping is instant."""
    by_service = {"sagemaker": sagemaker[0], "ec2": ec2[0]}
    monkeypatch.setattr(boto3, "client", lambda service, **_: by_service[service])
    monkeypatch.setattr(time, "sleep", lambda _: None)
    return sagemaker[1], ec2[1]


def _app(name: str, status: str, *, space: str | None = "alice-space") -> dict[str, Any]:
    owner = {"SpaceName": space} if space else {"UserProfileName": "alice"}
    return {"DomainId": DOMAIN, "AppType": "JupyterLab", "AppName": name, "Status": status, **owner}


def _throttle(stubber: Stubber, operation: str) -> None:
    stubber.add_client_error(
        operation,
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
    )


def _not_found(stubber: Stubber, operation: str) -> None:
    stubber.add_client_error(
        operation, service_error_code="ResourceNotFound", service_message="gone"
    )


def _request(*, delete_home_efs: bool = False) -> Request:
    return Request.parse(_event("Delete", delete_home_efs=delete_home_efs))


def _event(request_type: str, *, delete_home_efs: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/abc",
        "StackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/s/1",
        "RequestId": "req-1",
        "LogicalResourceId": "CleanupResource",
        "ResourceType": "Custom::StudioDomainCleanup",
        "ResourceProperties": {
            "ServiceToken": "arn",
            "DomainId": DOMAIN,
            "DomainArn": DOMAIN_ARN,
            "DeleteHomeEfs": "true" if delete_home_efs else "false",
            "VpcId": VPC,
        },
        **({"PhysicalResourceId": f"{DOMAIN}-cleanup"} if request_type != "Create" else {}),
        **extra,
    }


def _cleaner(sagemaker: Any, clock: FakeTime, ec2: Any = None, deadline: float = 600) -> Cleaner:
    return Cleaner(sagemaker, ec2=ec2, deadline=deadline, clock=clock.clock, sleep=clock.sleep)


BY_DOMAIN = {"DomainIdEquals": DOMAIN}


# -- one step ---------------------------------------------------------------------------------


def test_a_step_deletes_the_running_apps_over_every_page_and_reports_them(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stub = sagemaker
    # One running (deleted, its first delete throttled), one already deleting (not deleted
    # again), one deleted long ago (ignored); two pages.
    stub.add_response(
        "list_apps",
        {"Apps": [_app("default", "InService"), _app("old", "Deleted")], "NextToken": "p2"},
        BY_DOMAIN,
    )
    stub.add_response(
        "list_apps",
        {"Apps": [_app("other", "Deleting", space=None)]},
        {**BY_DOMAIN, "NextToken": "p2"},
    )
    _throttle(stub, "delete_app")
    stub.add_response(
        "delete_app",
        {},
        {
            "DomainId": DOMAIN,
            "AppType": "JupyterLab",
            "AppName": "default",
            "SpaceName": "alice-space",
        },
    )
    fake = FakeTime()
    left = _cleaner(client, fake).step(_request())
    assert left == f"2 app(s) of {DOMAIN} being deleted"
    assert len(fake.sleeps) == 1 and 0.5 <= fake.sleeps[0] <= 2  # the back-off, no polling


def test_spaces_then_profiles_are_deleted_once_the_apps_are_gone(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stub = sagemaker
    cleaner = _cleaner(client, FakeTime())
    # Step 1: no apps left; spaces listing throttled once, the space deleted.
    stub.add_response("list_apps", {"Apps": [_app("default", "Deleted")]}, BY_DOMAIN)
    _throttle(stub, "list_spaces")
    space = {"DomainId": DOMAIN, "SpaceName": "alice-space", "Status": "InService"}
    stub.add_response("list_spaces", {"Spaces": [space]}, BY_DOMAIN)
    stub.add_response("delete_space", {}, {"DomainId": DOMAIN, "SpaceName": "alice-space"})
    assert cleaner.step(_request()) == f"1 Spaces of {DOMAIN} being deleted"
    # Step 2: the space is still deleting: wait, don't delete it again.
    stub.add_response("list_apps", {"Apps": []}, BY_DOMAIN)
    stub.add_response("list_spaces", {"Spaces": [{**space, "Status": "Deleting"}]}, BY_DOMAIN)
    assert cleaner.step(_request()) == f"1 Spaces of {DOMAIN} being deleted"
    # Step 3: profiles, one in service and one whose earlier delete failed (deleted again).
    stub.add_response("list_apps", {"Apps": []}, BY_DOMAIN)
    stub.add_response("list_spaces", {"Spaces": []}, BY_DOMAIN)
    profiles = [
        {"DomainId": DOMAIN, "UserProfileName": "alice", "Status": "InService"},
        {"DomainId": DOMAIN, "UserProfileName": "bob", "Status": "Delete_Failed"},
    ]
    stub.add_response("list_user_profiles", {"UserProfiles": profiles}, BY_DOMAIN)
    stub.add_response("delete_user_profile", {}, {"DomainId": DOMAIN, "UserProfileName": "alice"})
    stub.add_response("delete_user_profile", {}, {"DomainId": DOMAIN, "UserProfileName": "bob"})
    assert cleaner.step(_request()) == f"2 UserProfiles of {DOMAIN} being deleted"
    # Step 4: empty; the domain itself is left to CloudFormation (removal policy retains).
    stub.add_response("list_apps", {"Apps": []}, BY_DOMAIN)
    stub.add_response("list_spaces", {"Spaces": []}, BY_DOMAIN)
    stub.add_response("list_user_profiles", {"UserProfiles": []}, BY_DOMAIN)
    assert cleaner.step(_request()) is None


def test_a_domain_that_is_already_gone_is_done(sagemaker: tuple[Any, Stubber]) -> None:
    client, stub = sagemaker
    _not_found(stub, "list_apps")
    assert _cleaner(client, FakeTime()).step(_request()) is None


def test_an_app_gone_between_listing_and_delete_is_not_an_error(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stub = sagemaker
    stub.add_response("list_apps", {"Apps": [_app("default", "InService")]})
    _not_found(stub, "delete_app")
    assert _cleaner(client, FakeTime()).step(_request()) == f"1 app(s) of {DOMAIN} being deleted"


def test_a_call_throttled_past_the_deadline_is_left_to_the_next_poll(
    sagemaker: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stub = sagemaker
    monkeypatch.setattr(random, "random", lambda: 1.0)  # back-offs 2 s, 4 s
    for _ in range(2):  # 2 s fits before the deadline at 5 s, 2 + 4 s does not
        _throttle(stub, "list_apps")
    with pytest.raises(studio_cleanup.StillThrottledError, match="list_apps stayed throttled"):
        _cleaner(client, FakeTime(), deadline=5).step(_request())


def test_other_errors_are_raised(sagemaker: tuple[Any, Stubber]) -> None:
    client, stub = sagemaker
    stub.add_client_error(
        "list_apps", service_error_code="AccessDeniedException", service_message="no"
    )
    with pytest.raises(Exception, match="AccessDenied"):
        _cleaner(client, FakeTime()).step(_request())


def _empty_domain(stub: Stubber) -> None:
    stub.add_response("list_apps", {"Apps": []}, BY_DOMAIN)
    stub.add_response("list_spaces", {"Spaces": []}, BY_DOMAIN)
    stub.add_response("list_user_profiles", {"UserProfiles": []}, BY_DOMAIN)


NFS_RULE = {
    "IpProtocol": "tcp",
    "FromPort": 2049,
    "ToPort": 2049,
    "UserIdGroupPairs": [{"GroupId": "sg-out"}],
}
NFS_FILTERS = {
    "Filters": [
        {"Name": "vpc-id", "Values": [VPC]},
        {
            "Name": "group-name",
            "Values": [
                f"security-group-for-inbound-nfs-{DOMAIN}",
                f"security-group-for-outbound-nfs-{DOMAIN}",
            ],
        },
    ]
}


def _nfs_groups(tag_value: str = DOMAIN_ARN) -> dict[str, Any]:
    tags = [{"Key": "ManagedByAmazonSageMakerResource", "Value": tag_value}]
    return {
        "SecurityGroups": [
            {
                "GroupId": "sg-in",
                "GroupName": f"security-group-for-inbound-nfs-{DOMAIN}",
                "IpPermissions": [NFS_RULE],
                "Tags": tags,
            },
            {
                "GroupId": "sg-out",
                "GroupName": f"security-group-for-outbound-nfs-{DOMAIN}",
                "IpPermissionsEgress": [NFS_RULE],
                "Tags": tags,
            },
        ]
    }


def test_a_destroying_teardown_deletes_the_domain_with_its_home_efs_then_the_nfs_groups(
    sagemaker: tuple[Any, Stubber], ec2: tuple[Any, Stubber]
) -> None:
    client, stub = sagemaker
    ec2_client, ec2_stub = ec2
    cleaner = _cleaner(client, FakeTime(), ec2=ec2_client)
    request = _request(delete_home_efs=True)
    # Step 1: empty, so the domain is deleted with its home EFS.
    _empty_domain(stub)
    stub.add_response("describe_domain", {"Status": "InService"}, {"DomainId": DOMAIN})
    stub.add_response(
        "delete_domain",
        {},
        {"DomainId": DOMAIN, "RetentionPolicy": {"HomeEfsFileSystem": "Delete"}},
    )
    assert cleaner.step(request) == f"domain {DOMAIN} being deleted with its home EFS"
    # Step 2: still deleting.
    _not_found(stub, "list_apps")
    stub.add_response("describe_domain", {"Status": "Deleting"}, {"DomainId": DOMAIN})
    assert cleaner.step(request) == f"domain {DOMAIN} being deleted with its home EFS"
    # Step 3: gone; SageMaker's NFS groups lose their rules, one is still attached.
    _not_found(stub, "list_apps")
    _not_found(stub, "describe_domain")
    ec2_stub.add_response("describe_security_groups", _nfs_groups(), NFS_FILTERS)
    ec2_stub.add_response(
        "revoke_security_group_ingress", {}, {"GroupId": "sg-in", "IpPermissions": [NFS_RULE]}
    )
    ec2_stub.add_response(
        "revoke_security_group_egress", {}, {"GroupId": "sg-out", "IpPermissions": [NFS_RULE]}
    )
    ec2_stub.add_client_error(
        "delete_security_group", service_error_code="DependencyViolation", service_message="in use"
    )
    ec2_stub.add_response("delete_security_group", {}, {"GroupId": "sg-out"})
    assert cleaner.step(request) == "security group(s) sg-in still in use"
    # Step 4: the rules are gone already; the last group goes.
    _not_found(stub, "list_apps")
    _not_found(stub, "describe_domain")
    groups = _nfs_groups()["SecurityGroups"][:1]
    del groups[0]["IpPermissions"]
    ec2_stub.add_response("describe_security_groups", {"SecurityGroups": groups}, NFS_FILTERS)
    ec2_stub.add_response("delete_security_group", {}, {"GroupId": "sg-in"})
    assert cleaner.step(request) is None


def test_nfs_groups_not_tagged_for_this_domain_are_left_alone(
    sagemaker: tuple[Any, Stubber], ec2: tuple[Any, Stubber]
) -> None:
    client, stub = sagemaker
    ec2_client, ec2_stub = ec2
    _not_found(stub, "list_apps")
    _not_found(stub, "describe_domain")
    other = "arn:aws:sagemaker:eu-west-1:111122223333:domain/d-other0000000"
    ec2_stub.add_response("describe_security_groups", _nfs_groups(other), NFS_FILTERS)
    assert _cleaner(client, FakeTime(), ec2=ec2_client).step(_request(delete_home_efs=True)) is None


def test_groups_the_role_may_not_delete_are_reported_and_left(
    sagemaker: tuple[Any, Stubber], ec2: tuple[Any, Stubber]
) -> None:
    client, stub = sagemaker
    ec2_client, ec2_stub = ec2
    _not_found(stub, "list_apps")
    _not_found(stub, "describe_domain")
    ec2_stub.add_response("describe_security_groups", _nfs_groups(), NFS_FILTERS)
    ec2_stub.add_client_error(
        "revoke_security_group_ingress",
        service_error_code="UnauthorizedOperation",
        service_message="not authorized",
    )
    assert _cleaner(client, FakeTime(), ec2=ec2_client).step(_request(delete_home_efs=True)) is None


def test_a_domain_sagemaker_cannot_delete_is_left_to_cloudformation(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stub = sagemaker
    _empty_domain(stub)
    stub.add_response("describe_domain", {"Status": "Delete_Failed"})
    assert _cleaner(client, FakeTime()).step(_request(delete_home_efs=True)) is None


# -- the custom resource's handler: answers over HTTP, hand-over, deadline ------------------

FUNCTION_ARN = "arn:aws:lambda:eu-west-1:111122223333:function:mlops-staging-studio-Cleanup-abc"
START = 1_800_000_000.0  # epoch seconds


@dataclass
class Received:
    """One request CloudFormation's (local) response endpoint received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ResponseEndpoint:
    """A real HTTP server (http.server in a thread) standing in for the pre-signed S3 URL."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[Received] = []
        self.failures = failures  # answer the first N PUTs 503, as S3 may
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if endpoint.failures:
                    endpoint.failures -= 1
                    self.send_response(503)
                else:
                    endpoint.received.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(data),
                        )
                    )
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll: shutdown() waits up to one interval (the default 0.5 s, every test).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/cfn-response/req-1?X-Amz-Signature=abc"

    def answers(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received]


@pytest.fixture
def endpoint() -> Iterator[ResponseEndpoint]:
    server = ResponseEndpoint()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


class Clock(FakeTime):
    """Wall clock and the invocation's remaining time, moved only by the handler's sleeps."""

    def __init__(self, remaining_s: float = 900.0) -> None:
        super().__init__(start=START)
        self.ends = START + remaining_s

    def time(self) -> float:
        return self.now


class Context:
    """The Lambda context fields the handler reads."""

    invoked_function_arn = FUNCTION_ARN
    log_stream_name = "2026/12/01/[$LATEST]0123456789abcdef"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def get_remaining_time_in_millis(self) -> int:
        return int((self.clock.ends - self.clock.now) * 1000)


@pytest.fixture
def aws(
    sagemaker: tuple[Any, Stubber], ec2: tuple[Any, Stubber]
) -> Iterator[tuple[studio_cleanup.Clients, Stubber, list[dict[str, Any]]]]:
    """Stubbed clients; the Lambda client records the parameters of each Invoke."""
    lambda_client = _client("lambda")
    invoked: list[dict[str, Any]] = []
    event = "provide-client-params.lambda.Invoke"
    unique_id = "record-invoke"
    lambda_client.meta.events.register(
        event, lambda params, **_: invoked.append(dict(params)), unique_id=unique_id
    )
    try:
        with Stubber(lambda_client) as lambda_stub:
            clients = studio_cleanup.Clients(
                sagemaker=sagemaker[0], ec2=ec2[0], lambda_=lambda_client
            )
            yield clients, lambda_stub, invoked
            lambda_stub.assert_no_pending_responses()
    finally:  # the client is shared by the module's tests
        lambda_client.meta.events.unregister(event, unique_id=unique_id)


Aws = tuple[studio_cleanup.Clients, Stubber, list[dict[str, Any]]]


def _serve(event: dict[str, Any], aws: Aws, clock: Clock) -> str:
    return studio_cleanup.serve(event, Context(clock), aws[0], now=clock.time, sleep=clock.sleep)


def _answered(endpoint: ResponseEndpoint, event: dict[str, Any]) -> dict[str, Any]:
    """The one answer the endpoint received, checked against CloudFormation's contract."""
    (received,) = endpoint.received
    assert received.method == "PUT"
    assert received.path == "/cfn-response/req-1?X-Amz-Signature=abc"
    # The URL is pre-signed for an empty Content-Type (what cfn-response sends).
    assert received.headers["content-type"] == ""
    assert int(received.headers["content-length"]) > 0
    body = received.body
    assert set(body) == {
        "Status",
        "Reason",
        "PhysicalResourceId",
        "StackId",
        "RequestId",
        "LogicalResourceId",
    }
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert body[key] == event[key]
    assert "\n" not in body["Reason"] and len(json.dumps(body)) < 4096
    return body


def _in_use(stub: Stubber) -> None:
    stub.add_response("list_apps", {"Apps": [_app("default", "Deleting")]}, BY_DOMAIN)


def test_create_and_update_answer_success_at_once(aws: Aws, endpoint: ResponseEndpoint) -> None:
    # No stubbed responses: any AWS call would fail the test.
    for request_type in ("Create", "Update"):
        endpoint.received.clear()
        event = _event(request_type, ResponseURL=endpoint.url)
        assert _serve(event, aws, Clock()) == "SUCCESS"
        body = _answered(endpoint, event)
        assert body["Status"] == "SUCCESS"
        assert body["PhysicalResourceId"] == f"{DOMAIN}-cleanup"  # stable: never a replacement


def test_delete_polls_until_the_domain_is_empty_then_answers_success(
    aws: Aws, sagemaker: tuple[Any, Stubber], endpoint: ResponseEndpoint
) -> None:
    _, stub = sagemaker
    stub.add_response("list_apps", {"Apps": [_app("default", "InService")]}, BY_DOMAIN)
    stub.add_response(
        "delete_app",
        {},
        {
            "DomainId": DOMAIN,
            "AppType": "JupyterLab",
            "AppName": "default",
            "SpaceName": "alice-space",
        },
    )
    _in_use(stub)
    _empty_domain(stub)
    event = _event("Delete", ResponseURL=endpoint.url)
    clock = Clock()
    assert _serve(event, aws, clock) == "SUCCESS"
    assert clock.sleeps == [30.0, 30.0]  # polled every 30 s, in this one invocation
    body = _answered(endpoint, event)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == f"{DOMAIN}-cleanup"  # the request's own
    assert aws[2] == []  # no hand-over


def test_a_delete_running_out_of_time_hands_over_to_itself_and_answers_nothing(
    aws: Aws, sagemaker: tuple[Any, Stubber], endpoint: ResponseEndpoint
) -> None:
    _, stub = sagemaker
    _, lambda_stub, invoked = aws
    event = _event("Delete", ResponseURL=endpoint.url)
    # 140 s left: after a 30 s poll less than the 120 s margin would be left.
    clock = Clock(remaining_s=140)
    _in_use(stub)
    lambda_stub.add_response(
        "invoke",
        {"StatusCode": 202},
        {"FunctionName": FUNCTION_ARN, "InvocationType": "Event", "Payload": ANY},
    )
    assert _serve(event, aws, clock) == "CONTINUED"
    assert endpoint.received == []  # the new invocation answers
    (params,) = invoked
    handed_over = json.loads(params["Payload"])
    deadline = START + 55 * 60
    assert handed_over == {**event, studio_cleanup.DEADLINE_KEY: deadline}
    # The new invocation (a fresh 15 minutes) keeps the first one's deadline and finishes.
    later = Clock()
    later.now = START + 600
    _in_use(stub)
    _empty_domain(stub)
    assert _serve(handed_over, aws, later) == "SUCCESS"
    assert _answered(endpoint, event)["Status"] == "SUCCESS"


def test_past_the_deadline_it_answers_failed_once(
    aws: Aws, sagemaker: tuple[Any, Stubber], endpoint: ResponseEndpoint
) -> None:
    _, stub = sagemaker
    clock = Clock()
    # Handed over with 45 s to go: steps at 0 s and 30 s, the deadline passes at 60 s.
    event = _event("Delete", ResponseURL=endpoint.url)
    event[studio_cleanup.DEADLINE_KEY] = START + 45
    for _ in range(3):
        _in_use(stub)
    assert _serve(event, aws, clock) == "FAILED"
    assert clock.sleeps == [30.0, 30.0]
    body = _answered(endpoint, event)
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        f"Studio teardown of {DOMAIN} timed out after 55 minutes; "
        f"still left: 1 app(s) of {DOMAIN} being deleted"
    )
    assert body["PhysicalResourceId"] == f"{DOMAIN}-cleanup"
    assert aws[2] == []


def test_an_aws_error_answers_failed_once_in_one_line(
    aws: Aws, sagemaker: tuple[Any, Stubber], endpoint: ResponseEndpoint
) -> None:
    _, stub = sagemaker
    stub.add_client_error(
        "list_apps", service_error_code="AccessDeniedException", service_message="no"
    )
    event = _event("Delete", ResponseURL=endpoint.url)
    assert _serve(event, aws, Clock()) == "FAILED"  # returned: Lambda does not retry
    body = _answered(endpoint, event)
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        "An error occurred (AccessDeniedException) when calling the ListApps operation: no"
    )


def test_any_other_error_answers_failed_once_in_one_line(
    aws: Aws, endpoint: ResponseEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Cleaner, request: Request) -> str | None:
        raise RuntimeError("first line\n  second line " + "x" * 1000)

    monkeypatch.setattr(Cleaner, "step", broken)
    event = _event("Delete", ResponseURL=endpoint.url)
    assert _serve(event, aws, Clock()) == "FAILED"
    reason = _answered(endpoint, event)["Reason"]
    assert reason.startswith("RuntimeError: first line second line xxx")
    assert reason.endswith("...") and len(reason) == studio_cleanup.REASON_LIMIT


def test_a_failed_hand_over_answers_failed_once(
    aws: Aws, sagemaker: tuple[Any, Stubber], endpoint: ResponseEndpoint
) -> None:
    _, stub = sagemaker
    _, lambda_stub, _ = aws
    _in_use(stub)
    lambda_stub.add_client_error(
        "invoke", service_error_code="AccessDeniedException", service_message="denied"
    )
    event = _event("Delete", ResponseURL=endpoint.url)
    assert _serve(event, aws, Clock(remaining_s=100)) == "FAILED"
    assert "when calling the Invoke operation: denied" in _answered(endpoint, event)["Reason"]


def test_a_rejected_answer_is_sent_again_and_received_once(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)  # between the PUT attempts
    flaky = ResponseEndpoint(failures=1)
    flaky.thread.start()
    try:
        event = _event("Create", ResponseURL=flaky.url)
        assert _serve(event, aws, Clock()) == "SUCCESS"
        assert _answered(flaky, event)["Status"] == "SUCCESS"
    finally:
        flaky.server.shutdown()
        flaky.server.server_close()


def test_an_answer_that_cannot_be_delivered_raises_for_lambda_to_retry(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was answered: Lambda's retry (then the dead-letter queue) takes over."""
    monkeypatch.setattr(time, "sleep", lambda _: None)  # between the PUT attempts
    gone = ResponseEndpoint(failures=3)
    gone.thread.start()
    try:
        with pytest.raises(OSError, match="503"):
            _serve(_event("Create", ResponseURL=gone.url), aws, Clock())
        assert gone.received == []
    finally:
        gone.server.shutdown()
        gone.server.server_close()


@pytest.mark.parametrize("url", [None, "", "file:///etc/passwd", 12])
def test_an_event_without_a_response_url_raises(aws: Aws, url: Any) -> None:
    """No one to answer: raise, so Lambda retries and then keeps it in the dead-letter queue."""
    event = {**_event("Delete"), "ResponseURL": url}
    with pytest.raises(MalformedEventError, match="malformed event: ResponseURL="):
        _serve(event, aws, Clock())


def test_the_lambda_entry_point_builds_its_clients_and_answers(
    endpoint: ResponseEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    services: list[str] = []
    real = {service: _client(service) for service in ("sagemaker", "ec2", "lambda")}

    def client(service: str, **_: Any) -> Any:
        services.append(service)
        return real[service]

    monkeypatch.setattr(boto3, "client", client)
    event = _event("Create", ResponseURL=endpoint.url)
    assert studio_cleanup.handler(event, Context(Clock())) == "SUCCESS"
    assert sorted(services) == ["ec2", "lambda", "sagemaker"]
    assert _answered(endpoint, event)["Status"] == "SUCCESS"


def _without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != key}


def _props(**changes: Any) -> dict[str, Any]:
    event = _event("Delete")
    props = {**event["ResourceProperties"], **changes}
    return {**event, "ResourceProperties": {k: v for k, v in props.items() if v is not None}}


MALFORMED = {
    "not an object": (["Delete"], "expected a JSON object, got list"),
    "no event": (None, "expected a JSON object, got NoneType"),
    "no RequestType": (_without(_event("Delete"), "RequestType"), "RequestType=None is not one of"),
    "unknown RequestType": (
        _event("Replace"),
        "RequestType='Replace' is not one of Create, Update, Delete",
    ),
    "lower-case RequestType": (_event("delete"), "RequestType='delete' is not one of"),
    "no properties": (
        _without(_event("Delete"), "ResourceProperties"),
        "ResourceProperties is missing",
    ),
    "properties not an object": (
        {**_event("Delete"), "ResourceProperties": "d-abc"},
        "ResourceProperties is missing or not an object",
    ),
    "no DomainId": (
        _props(DomainId=None),
        "ResourceProperties.DomainId=None is not a SageMaker domain ID",
    ),
    "empty DomainId": (_props(DomainId=""), "ResourceProperties.DomainId='' is not"),
    "DomainId not a string": (_props(DomainId=12), "ResourceProperties.DomainId=12 is not"),
    "DomainId with upper case": (_props(DomainId="d-ABC"), "DomainId='d-ABC' is not"),
    "DomainArn of another domain": (
        _props(DomainArn="arn:aws:sagemaker:eu-west-1:111122223333:domain/d-other"),
        "is not the ARN of domain d-abc123def456",
    ),
    "no DomainArn": (_props(DomainArn=None), "ResourceProperties.DomainArn=None"),
    "DeleteHomeEfs a boolean": (
        _props(DeleteHomeEfs=True),
        "DeleteHomeEfs=True is not one of 'true', 'false'",
    ),
    "DeleteHomeEfs yes": (_props(DeleteHomeEfs="yes"), "DeleteHomeEfs='yes' is not one of"),
    "bad VpcId": (_props(VpcId="subnet-1"), "ResourceProperties.VpcId='subnet-1' is not a VPC ID"),
    "Delete without physical ID": (
        _without(_event("Delete"), "PhysicalResourceId"),
        "PhysicalResourceId=None; every Delete request carries",
    ),
    "Update with empty physical ID": (
        _event("Update", PhysicalResourceId=""),
        "PhysicalResourceId=''; every Update request carries",
    ),
    "deadline on a Create": (
        _event("Create", StudioCleanupDeadline=START),
        "StudioCleanupDeadline=1800000000.0; only a Delete handed over",
    ),
    "deadline not a number": (
        _event("Delete", StudioCleanupDeadline="soon"),
        "StudioCleanupDeadline='soon'; only a Delete handed over",
    ),
    "deadline a boolean": (
        _event("Delete", StudioCleanupDeadline=True),
        "StudioCleanupDeadline=True;",
    ),
}


@pytest.mark.parametrize(("event", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_event_is_one_clear_line(event: Any, message: str) -> None:
    with pytest.raises(MalformedEventError) as raised:
        Request.parse(event)
    text = str(raised.value)
    assert text.startswith("malformed event: ") and "\n" not in text
    assert message in text


ANSWERABLE = {k: v for k, v in MALFORMED.items() if isinstance(v[0], dict)}


@pytest.mark.parametrize(("event", "message"), ANSWERABLE.values(), ids=ANSWERABLE.keys())
def test_a_malformed_event_is_answered_failed_and_calls_nothing(
    aws: Aws, endpoint: ResponseEndpoint, event: Any, message: str
) -> None:
    """Never SUCCESS, never silence: FAILED with the one line."""
    event = {**event, "ResponseURL": endpoint.url}
    assert _serve(event, aws, Clock()) == "FAILED"
    body = _answered(endpoint, event)
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("malformed event: ") and message in body["Reason"]
    # The request's physical ID, or (a Create has none) the log stream, as cfn-response does.
    assert body["PhysicalResourceId"] == event.get("PhysicalResourceId") or Context.log_stream_name
