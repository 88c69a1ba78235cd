"""The Studio teardown's delete sequence, against botocore's Stubber (no AWS, no moto).

Stubber checks each call's operation and parameters in order, so these tests pin the sequence:
apps (skipping those already deleting or deleted), then spaces, then user profiles, each
waited for; throttled calls are retried after a back-off.
"""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import studio_cleanup
from botocore.stub import Stubber
from studio_cleanup import Cleaner, DeadlineExceededError

DOMAIN = "d-abc123"


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _client(service: str) -> Any:
    return boto3.client(
        service,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (a fake for the stub)
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


def _cleaner(sagemaker: Any, clock: FakeTime, ec2: Any = None, deadline: float = 3600) -> Cleaner:
    return Cleaner(
        sagemaker, ec2=ec2, deadline=deadline, clock=clock.clock, sleep=clock.sleep, poll_seconds=10
    )


def test_empties_the_domain_in_order_waiting_and_backing_off(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stub = sagemaker
    by_domain = {"DomainIdEquals": DOMAIN}
    # Apps: one running (deleted, its first delete throttled), one already deleting (waited
    # for, not deleted again), one deleted long ago (ignored); two pages.
    stub.add_response(
        "list_apps",
        {"Apps": [_app("default", "InService"), _app("old", "Deleted")], "NextToken": "p2"},
        by_domain,
    )
    stub.add_response(
        "list_apps",
        {"Apps": [_app("other", "Deleting", space=None)]},
        {**by_domain, "NextToken": "p2"},
    )
    delete_default = {
        "DomainId": DOMAIN,
        "AppType": "JupyterLab",
        "AppName": "default",
        "SpaceName": "alice-space",
    }
    _throttle(stub, "delete_app")
    stub.add_response("delete_app", {}, delete_default)
    stub.add_response(
        "list_apps",
        {"Apps": [_app("default", "Deleting"), _app("other", "Deleted", space=None)]},
        by_domain,
    )
    stub.add_response("list_apps", {"Apps": [_app("default", "Deleted")]}, by_domain)
    # Spaces: listing throttled once, then deleted and waited for.
    _throttle(stub, "list_spaces")
    stub.add_response(
        "list_spaces",
        {"Spaces": [{"DomainId": DOMAIN, "SpaceName": "alice-space", "Status": "InService"}]},
        by_domain,
    )
    stub.add_response("delete_space", {}, {"DomainId": DOMAIN, "SpaceName": "alice-space"})
    stub.add_response(
        "list_spaces",
        {"Spaces": [{"DomainId": DOMAIN, "SpaceName": "alice-space", "Status": "Deleting"}]},
        by_domain,
    )
    stub.add_response("list_spaces", {"Spaces": []}, by_domain)
    # User profiles: one in service, one whose earlier delete failed (deleted again).
    profiles = [
        {"DomainId": DOMAIN, "UserProfileName": "alice", "Status": "InService"},
        {"DomainId": DOMAIN, "UserProfileName": "bob", "Status": "Delete_Failed"},
    ]
    stub.add_response("list_user_profiles", {"UserProfiles": profiles}, by_domain)
    stub.add_response("delete_user_profile", {}, {"DomainId": DOMAIN, "UserProfileName": "alice"})
    stub.add_response("delete_user_profile", {}, {"DomainId": DOMAIN, "UserProfileName": "bob"})
    stub.add_response("list_user_profiles", {"UserProfiles": []}, by_domain)

    time = FakeTime()
    _cleaner(client, time).empty_domain(DOMAIN)

    polls = [s for s in time.sleeps if s == 10]
    backoffs = [s for s in time.sleeps if s != 10]
    assert len(polls) == 5  # apps twice, spaces twice, profiles once
    assert len(backoffs) == 2 and all(0.5 <= s <= 2 for s in backoffs)


def test_a_domain_that_is_already_gone_is_a_success(sagemaker: tuple[Any, Stubber]) -> None:
    client, stub = sagemaker
    stub.add_client_error(
        "list_apps", service_error_code="ResourceNotFound", service_message="no domain"
    )
    _cleaner(client, FakeTime()).empty_domain(DOMAIN)


def test_an_app_gone_between_listing_and_delete_is_not_an_error(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stub = sagemaker
    stub.add_response("list_apps", {"Apps": [_app("default", "InService")]})
    stub.add_client_error(
        "delete_app", service_error_code="ResourceNotFound", service_message="gone"
    )
    stub.add_response("list_apps", {"Apps": []})
    _cleaner(client, FakeTime()).delete_apps(DOMAIN)


def test_gives_up_at_the_deadline_with_what_it_waited_for(sagemaker: tuple[Any, Stubber]) -> None:
    client, stub = sagemaker
    for _ in range(3):
        stub.add_response("list_apps", {"Apps": [_app("stuck", "Deleting")]})
    with pytest.raises(DeadlineExceededError, match=r"1 app\(s\) of d-abc123"):
        _cleaner(client, FakeTime(), deadline=25).delete_apps(DOMAIN)


def test_other_errors_are_raised(sagemaker: tuple[Any, Stubber]) -> None:
    client, stub = sagemaker
    stub.add_client_error(
        "list_apps", service_error_code="AccessDeniedException", service_message="no"
    )
    with pytest.raises(Exception, match="AccessDenied"):
        _cleaner(client, FakeTime()).empty_domain(DOMAIN)


def test_deletes_the_domain_with_its_home_efs_and_sagemakers_nfs_groups(
    sagemaker: tuple[Any, Stubber], ec2: tuple[Any, Stubber]
) -> None:
    client, stub = sagemaker
    ec2_client, ec2_stub = ec2
    stub.add_response(
        "delete_domain",
        {},
        {"DomainId": DOMAIN, "RetentionPolicy": {"HomeEfsFileSystem": "Delete"}},
    )
    stub.add_response("describe_domain", {"Status": "Deleting"}, {"DomainId": DOMAIN})
    stub.add_client_error(
        "describe_domain", service_error_code="ResourceNotFound", service_message="gone"
    )
    rule = {
        "IpProtocol": "tcp",
        "FromPort": 2049,
        "ToPort": 2049,
        "UserIdGroupPairs": [{"GroupId": "sg-out"}],
    }
    ec2_stub.add_response(
        "describe_security_groups",
        {
            "SecurityGroups": [
                {
                    "GroupId": "sg-in",
                    "GroupName": f"security-group-for-inbound-nfs-{DOMAIN}",
                    "IpPermissions": [rule],
                },
                {
                    "GroupId": "sg-out",
                    "GroupName": f"security-group-for-outbound-nfs-{DOMAIN}",
                    "IpPermissionsEgress": [rule],
                },
            ]
        },
        {
            "Filters": [
                {"Name": "vpc-id", "Values": ["vpc-1"]},
                {
                    "Name": "group-name",
                    "Values": [
                        f"security-group-for-inbound-nfs-{DOMAIN}",
                        f"security-group-for-outbound-nfs-{DOMAIN}",
                    ],
                },
            ]
        },
    )
    ec2_stub.add_response(
        "revoke_security_group_ingress", {}, {"GroupId": "sg-in", "IpPermissions": [rule]}
    )
    ec2_stub.add_response(
        "revoke_security_group_egress", {}, {"GroupId": "sg-out", "IpPermissions": [rule]}
    )
    ec2_stub.add_client_error(
        "delete_security_group", service_error_code="DependencyViolation", service_message="in use"
    )
    ec2_stub.add_response("delete_security_group", {}, {"GroupId": "sg-in"})
    ec2_stub.add_response("delete_security_group", {}, {"GroupId": "sg-out"})

    time = FakeTime()
    _cleaner(client, time, ec2=ec2_client).delete_domain_and_home(DOMAIN, "vpc-1")
    assert time.sleeps == [10, 10]  # domain deleting, security group still attached


def test_a_domain_sagemaker_cannot_delete_is_left_to_cloudformation(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stub = sagemaker
    stub.add_response("delete_domain", {})
    stub.add_response("describe_domain", {"Status": "Delete_Failed"})
    _cleaner(client, FakeTime(), ec2=None).delete_domain_and_home(DOMAIN, "vpc-1")


# -- the CloudFormation contract ------------------------------------------------------------------


class FakeContext:
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _event(request_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/abc",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
        "RequestId": "req-1",
        "LogicalResourceId": "CleanupResource",
        "ResourceType": "Custom::StudioDomainCleanup",
        "ResourceProperties": {"ServiceToken": "arn", "DomainId": DOMAIN, "DeleteHomeEfs": "false"},
        **extra,
    }


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    class Response(io.BytesIO):
        status = 200

    def urlopen(request: Any, timeout: float) -> Response:
        assert request.get_method() == "PUT"
        sent.append(json.loads(request.data))
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return sent


def test_create_touches_nothing_and_succeeds(
    responses: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(studio_cleanup, "run_delete", lambda *a: pytest.fail("deleted on Create"))
    studio_cleanup.handler(_event("Create"), FakeContext())
    assert responses == [
        {
            "Status": "SUCCESS",
            "Reason": "See the log stream of this function (SUCCESS)",
            "PhysicalResourceId": f"{DOMAIN}-cleanup",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
            "RequestId": "req-1",
            "LogicalResourceId": "CleanupResource",
            "NoEcho": False,
            "Data": {},
        }
    ]


def test_delete_runs_the_cleanup_and_reports_success(
    responses: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(studio_cleanup, "run_delete", lambda props, ctx: calls.append(props))
    studio_cleanup.handler(_event("Delete", PhysicalResourceId="old-id"), FakeContext())
    assert calls == [{"ServiceToken": "arn", "DomainId": DOMAIN, "DeleteHomeEfs": "false"}]
    assert responses[0]["Status"] == "SUCCESS"
    assert responses[0]["PhysicalResourceId"] == "old-id"


def test_a_failed_delete_still_answers_cloudformation_with_the_reason(
    responses: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(props: Any, ctx: Any) -> None:
        raise DeadlineExceededError("gave up waiting: 1 app(s) of d-abc123 to be deleted")

    monkeypatch.setattr(studio_cleanup, "run_delete", fail)
    studio_cleanup.handler(_event("Delete", PhysicalResourceId="x"), FakeContext())
    assert responses[0]["Status"] == "FAILED"
    assert responses[0]["Reason"] == (
        "DeadlineExceededError: gave up waiting: 1 app(s) of d-abc123 to be deleted"
    )


def test_run_delete_deletes_the_domain_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[str] = []
    monkeypatch.setattr(Cleaner, "empty_domain", lambda self, d: done.append(f"empty {d}"))
    monkeypatch.setattr(
        Cleaner, "delete_domain_and_home", lambda self, d, vpc: done.append(f"delete {d} {vpc}")
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    studio_cleanup.run_delete({"DomainId": DOMAIN, "DeleteHomeEfs": "false"}, FakeContext())
    studio_cleanup.run_delete(
        {"DomainId": DOMAIN, "DeleteHomeEfs": "true", "VpcId": "vpc-1"}, FakeContext()
    )
    assert done == [f"empty {DOMAIN}", f"empty {DOMAIN}", f"delete {DOMAIN} vpc-1"]
