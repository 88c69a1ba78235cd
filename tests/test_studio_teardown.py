"""The Studio teardown in every variant with Studio: one function is the custom resource.

CloudFormation invokes a custom resource's Lambda function asynchronously with a callback URL
(https://docs.aws.amazon.com/lambda/latest/dg/services-cloudformation.html), so one function
answers it and continues a long teardown by invoking itself: no CDK Provider framework (its
three Node.js functions and a Step Functions waiter). That function has the reserved
concurrency of ``studio.cleanup_reserved_concurrency`` and a dead-letter queue for an event
whose every asynchronous invocation failed.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlops_cdk.settings import Settings
from tests.conftest import synthesized
from tests.matrix import VARIANTS, Variant, variant_params
from tests.replacement import create_only
from tests.synth import SynthesizedApp
from tools import cdk_json

# The ServiceToken's function keeps the logical ID of the Provider framework's onEvent function
# it replaces: CloudFormation refuses to change a deployed custom resource's ServiceToken
# ("Modifying service token is not allowed"), and the same logical ID keeps the same function
# (updated in place), so the token's value stays the same.
SERVICE_TOKEN_FUNCTION = "CleanupProviderframeworkonEventF80A3986"


def _studio(app: SynthesizedApp) -> dict[str, Any]:
    resources: dict[str, Any] = app.template_json("studio")["Resources"]
    return resources


def _of_type(resources: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == resource_type}


def _check(app: SynthesizedApp) -> None:
    resources = _studio(app)
    functions = _of_type(resources, "AWS::Lambda::Function")
    assert list(functions) == [SERVICE_TOKEN_FUNCTION], (
        f"expected one function, the custom resource's own; got {sorted(functions)}"
    )
    assert not _of_type(resources, "AWS::StepFunctions::StateMachine")
    (cleanup,) = _of_type(resources, "Custom::StudioDomainCleanup").values()
    token = cleanup["Properties"]["ServiceToken"]
    assert token == {"Fn::GetAtt": [SERVICE_TOKEN_FUNCTION, "Arn"]}
    function = functions[SERVICE_TOKEN_FUNCTION]["Properties"]
    assert function["Handler"] == "studio_cleanup.handler"
    assert function["Timeout"] == 900  # Lambda's maximum; a Delete hands over before it
    reserved = app.settings.studio.cleanup_reserved_concurrency
    assert function.get("ReservedConcurrentExecutions") == reserved
    queue_id = function["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
    queue = resources[queue_id]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert "KmsMasterKeyId" in queue["Properties"]  # the environment's key
    assert "VpcConfig" not in function  # calls AWS APIs only (checkov skip CKV_AWS_117)
    # The custom resource waits for the policy that lets the function invoke itself.
    (self_invoke,) = [
        policy_id
        for policy_id, policy in _of_type(resources, "AWS::IAM::Policy").items()
        if any(
            statement["Action"] == "lambda:InvokeFunction"
            and statement["Resource"] == {"Fn::GetAtt": [SERVICE_TOKEN_FUNCTION, "Arn"]}
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    ]
    assert self_invoke in cleanup["DependsOn"]


STUDIO_VARIANTS = tuple(v for v in VARIANTS if v.env != "dev")


def test_dev_has_no_studio() -> None:
    """The variants left out above have no Studio stack (if dev gets one, include it)."""
    assert not Settings.from_context({**cdk_json.context(), "env": "dev"}, {}).studio.enabled


@pytest.mark.parametrize("variant", variant_params(STUDIO_VARIANTS))
def test_the_teardown_is_one_function_with_a_dead_letter_queue(variant: Variant) -> None:
    _check(variant.app())


def test_no_reserved_concurrency_when_the_setting_is_null() -> None:
    app = synthesized("staging", **{"studio.cleanup_reserved_concurrency": "null"})
    assert app.settings.studio.cleanup_reserved_concurrency is None
    _check(app)


# The Provider framework's entry function as deployed before (the staging snapshot of the studio
# stack at the commit that replaced it), the properties an update compares.
FRAMEWORK_ON_EVENT = {
    "Code": {"S3Bucket": "assets", "S3Key": "framework.zip"},
    "Description": "AWS CDK resource provider framework - onEvent (mlops-staging-studio/Cleanup/Provider)",
    "Environment": {"Variables": {"USER_ON_EVENT_FUNCTION_ARN": "arn"}},
    "Handler": "framework.onEvent",
    "KmsKeyArn": "arn",
    "LoggingConfig": {"ApplicationLogLevel": "FATAL", "LogFormat": "JSON", "LogGroup": "logs"},
    "Role": "arn",
    "Runtime": "nodejs24.x",
    "Timeout": 900,
}


def test_the_deployed_service_token_function_is_updated_in_place(staging: SynthesizedApp) -> None:
    """The ServiceToken's value stays: the same function, no create-only property changed
    (cfn-lint's resource schema), no name set (the generated name, and so the ARN, stays)."""
    function = _studio(staging)[SERVICE_TOKEN_FUNCTION]["Properties"]
    changed = {
        key
        for key in set(function) | set(FRAMEWORK_ON_EVENT)
        if function.get(key) != FRAMEWORK_ON_EVENT.get(key)
    }
    assert {"Runtime", "Handler", "Role"} <= changed
    replacing = {p.removeprefix("/properties/") for p in create_only("AWS::Lambda::Function")}
    assert not changed & replacing
    assert "FunctionName" not in function
