"""Encrypted dead-letter queues: where undelivered schedule starts and failed asynchronous
Lambda invocations end up, encrypted with the environment's KMS key.

The sender encrypts with its own identity (the scheduler's role, the function's execution
role): CDK's ``grant_send_messages`` grants it sqs:SendMessage and kms:GenerateDataKey/Decrypt
on the key (SQS developer guide, "Key management": producers need both on the queue's key).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from mlops_cdk.nag import GRANT_ACTION_WILDCARDS, ack

# The KMS wildcards a key grant writes (GRANT_ACTION_WILDCARDS explains each).
KEY_WILDCARDS = ("kms:GenerateDataKey*", "kms:ReEncrypt*")

RETENTION = Duration.days(14)  # SQS's maximum: time to notice the alarm and replay


def encrypted_dead_letter_queue(
    scope: Construct, id: str, *, key: kms.IKey, removal: RemovalPolicy, purpose: str
) -> sqs.Queue:
    """A TLS-only queue encrypted with ``key``, kept 14 days, that is itself a dead end."""
    queue = sqs.Queue(
        scope,
        id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        data_key_reuse=Duration.hours(1),  # fewer KMS calls; the default is 5 minutes
        enforce_ssl=True,
        retention_period=RETENTION,
        removal_policy=removal,
    )
    ack(
        queue,
        "AwsSolutions-SQS3",
        f"This queue is the dead-letter queue of {purpose}; it has no consumer and so needs no "
        "dead-letter queue of its own.",
    )
    return queue


def ack_sender_key_wildcards(sender: IConstruct) -> None:
    """The KMS action wildcards ``grant_send_messages`` writes for the queue's key."""
    for action in KEY_WILDCARDS:
        ack(sender, f"AwsSolutions-IAM5[Action::{action}]", GRANT_ACTION_WILDCARDS[action])
