"""CDK's own custom-resource handler functions: a dead-letter queue and reserved concurrency.

CDK's singleton custom-resource providers (``Custom::S3AutoDeleteObjects`` for buckets emptied
on delete, ``Custom::VpcRestrictDefaultSG`` for the VPC's default security group) are
``CustomResourceProviderBase`` constructs directly under their stack, with a raw
``AWS::Lambda::Function`` (``Handler``) and ``AWS::IAM::Role`` (``Role``) that no props of ours
reach. :func:`harden_cdk_providers` finds them in a stack once its constructs exist and:

- gives their functions one dead-letter queue per stack. CloudFormation invokes a custom-resource
  function asynchronously ("CloudFormation invokes your Lambda function asynchronously with an
  event that includes a callback URL",
  https://docs.aws.amazon.com/lambda/latest/dg/services-cloudformation.html), so an event whose
  invocations all failed (Lambda retries twice) lands in the queue, and alarms, instead of
  leaving the stack waiting for its custom-resource timeout with nothing to look at.
  Lambda sends it with the execution role (Lambda developer guide, "Dead-letter queues":
  sqs:SendMessage, and the queue's key for an encrypted queue), so the provider's inline role
  policy gets both (``CustomResourceProviderBase.add_to_role_policy``: the role's ``Policies``,
  which exist before the function, which depends on the role; Lambda checks the role may send
  to the queue when it creates the function).
- reserves ``reserved_concurrency`` runs for each function (``None``: the unreserved pool).
  The reservation is also a cap: the storage stack's auto-delete resources (one per bucket)
  are created and deleted in parallel, and an event over the cap is throttled and retried
  by Lambda, with an interval growing from 1 s to at most 5 minutes, for up to 6 hours
  (Lambda developer guide, invocation-async-error-handling.html): a slower destroy, not a
  lost event.

The properties are set on the function resource the provider holds, not by logical id, so they
follow the function if CDK renames it. CKV_AWS_117 (not in a VPC) stays acknowledged: the
functions call only AWS APIs, the restrict-default-SG one while the VPC itself is being made;
in the VPC they would need an EC2 interface endpoint (S3 has a gateway one) that the cost
targets of docs/cost.md cannot carry for a handler that runs a few times per deploy.
"""

from __future__ import annotations

from aws_cdk import CfnResource, CustomResourceProviderBase, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from mlops_cdk.checkov import NO_RESERVATION, skip
from mlops_cdk.constructs.dead_letter import encrypted_dead_letter_queue

NOT_IN_VPC_CDK_HANDLER = (
    "CDK's own custom-resource handler: calls only AWS APIs (S3, or EC2 while the VPC is being "
    "made); in the VPC it would need an EC2 interface endpoint the cost target cannot carry for "
    "a function that runs a few times per deploy, and leave network interfaces that slow "
    "stack deletion."
)


def cdk_providers(stack: Stack) -> list[CustomResourceProviderBase]:
    """CDK's singleton custom-resource providers of ``stack`` (children of the stack)."""
    return [c for c in stack.node.children if isinstance(c, CustomResourceProviderBase)]


def harden_cdk_providers(
    stack: Stack,
    *,
    key: kms.IKey,
    removal: RemovalPolicy,
    reserved_concurrency: int | None,
) -> sqs.Queue | None:
    """Dead-letter queue (encrypted with ``key``) and reserved concurrency for the functions of
    CDK's providers in ``stack``; returns the queue, or None when the stack has no provider.

    Call it after the stack's constructs are made (the providers are made with them).
    """
    providers = cdk_providers(stack)
    if not providers:
        return None
    queue = encrypted_dead_letter_queue(
        stack,
        "CdkHandlersDeadLetterQueue",
        key=key,
        removal=removal,
        purpose="CDK's custom-resource handler functions of this stack",
    )
    for provider in providers:
        handler = provider.node.find_child("Handler")
        if not isinstance(handler, CfnResource):
            raise TypeError(f"{provider.node.path}/Handler is not a CloudFormation resource")
        handler.add_property_override("DeadLetterConfig", {"TargetArn": queue.queue_arn})
        if reserved_concurrency is not None:
            handler.add_property_override("ReservedConcurrentExecutions", reserved_concurrency)
        else:
            skip(handler, "CKV_AWS_115", NO_RESERVATION)
        provider.add_to_role_policy(
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue.queue_arn}
        )
        # The queue's key, as CDK's grant_send_messages grants it (SQS developer guide, "Key
        # management": producers need kms:GenerateDataKey and kms:Decrypt on the queue's key).
        provider.add_to_role_policy(
            {
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": key.key_arn,
            }
        )
        skip(handler, "CKV_AWS_117", NOT_IN_VPC_CDK_HANDLER)
    return queue
