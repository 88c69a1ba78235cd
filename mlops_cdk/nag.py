"""cdk-nag: the AwsSolutions pack on the whole app, and every acknowledgement with its reason.

cdk-nag 3 runs as a policy-validation plugin: an unacknowledged finding fails synthesis.
Acknowledgements are made on the narrowest construct that produces the finding, and each
wildcard is acknowledged by its own finding id (cdk-nag 3 has no prefix matching).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import jsii
from aws_cdk import (
    Acknowledgment,
    App,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    Stack,
    Validations,
)
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from mlops_cdk.constructs.mlflow_tracking_server import MlflowTrackingServer
from mlops_cdk.constructs.sagemaker_mlflow import SageMakerMlflow

if TYPE_CHECKING:
    from mlops_cdk.constructs.ec2_mlflow import Ec2Mlflow
    from mlops_cdk.constructs.fargate_mlflow import FargateMlflow
    from mlops_cdk.platform import Platform

# The action wildcards CDK's grant_* methods write, and why each is acceptable.
GRANT_ACTION_WILDCARDS = {
    "s3:GetObject*": "CDK's grant_read: GetObject plus its Acl/Tagging/Version variants on objects only",
    "s3:GetBucket*": "CDK's grant_read: bucket location/versioning metadata an S3 client reads first",
    "s3:List*": "CDK's grant_read: listing the bucket, limited to the bucket's own ARN",
    "s3:DeleteObject*": "CDK's grant_write: delete object and object version, limited to one prefix",
    "s3:Abort*": "CDK's grant_write: abort this grantee's multipart uploads under its prefix",
    "kms:GenerateDataKey*": "CDK's key grant: data keys for SSE-KMS on this one key",
    "kms:ReEncrypt*": "CDK's key grant: re-encryption under this one key, needed by SSE-KMS",
}


def add_nag_checks(app: App) -> None:
    """Run the AwsSolutions pack over every stack of ``app`` at synthesis."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def ack(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on ``scope`` (and what it contains)."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


@jsii.implements(IPolicyValidationPlugin)
class DeferredAcknowledgments:
    """Acknowledges resource wildcards once cross-stack references have their final form.

    A finding names the resource as the template will hold it, and a reference to another
    stack only takes that form (``Fn::GetStackOutput``) during synthesis. Registered before the
    AwsSolutions pack, this plugin runs first and adds the acknowledgements then.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[IConstruct, str, str]] = []

    def add(self, grantee: IConstruct, resource: str, reason: str) -> None:
        self._entries.append((grantee, resource, reason))

    @property
    def name(self) -> str:
        return "mlops-cdk-deferred-acknowledgments"

    @property
    def version(self) -> str | None:
        return None

    @property
    def rule_ids(self) -> list[str] | None:
        return None

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        for grantee, resource, reason in self._entries:
            finding = _flatten_cfn_reference(Stack.of(grantee).resolve(resource))
            ack(grantee, f"AwsSolutions-IAM5[Resource::{finding}]", reason)
        return PolicyValidationPluginReport(success=True, violations=[])


def ack_grant_wildcards(
    grantee: IConstruct,
    *,
    deferred: DeferredAcknowledgments,
    actions: Iterable[str],
    resources: Iterable[str] = (),
    reason: str,
) -> None:
    """Acknowledge the IAM5 wildcards of CDK grants on ``grantee``'s policy, finding by finding.

    ``actions`` must be wildcards from :data:`GRANT_ACTION_WILDCARDS`; ``resources`` are the
    (token) ARNs with a wildcard, e.g. ``storage.artifacts_objects_arn``, each explained by
    ``reason``.
    """
    for action in actions:
        ack(grantee, f"AwsSolutions-IAM5[Action::{action}]", GRANT_ACTION_WILDCARDS[action])
    for resource in resources:
        deferred.add(grantee, resource, reason)


S3_READ_WRITE = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*")
KMS_ENCRYPT_DECRYPT = ("kms:GenerateDataKey*", "kms:ReEncrypt*")


def _flatten_cfn_reference(node: Any) -> str:
    """The string cdk-nag uses to name a resource finding (port of its flattenCfnReference)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict) and len(node) == 1:
        ((function, args),) = node.items()
        if function == "Fn::Join":
            delimiter, items = args
            return str(delimiter).join(_flatten_cfn_reference(item) for item in items)
        if function == "Fn::Sub":
            return _flatten_cfn_reference(args)
        if function == "Fn::GetAtt":
            resource, attribute = args
            return f"<{_flatten_cfn_reference(resource)}.{_flatten_cfn_reference(attribute)}>"
        if function == "Fn::ImportValue":
            return _flatten_cfn_reference(args)
        if function == "Ref":
            return f"<{_flatten_cfn_reference(args)}>"
    return json.dumps(node, separators=(",", ":"))


def acknowledge(app: App, platform: Platform) -> None:
    """Acknowledge, with reasons, the findings that are deliberate in this design.

    Call before :func:`add_nag_checks`, so the deferred acknowledgements run before the pack.
    """
    deferred = DeferredAcknowledgments()
    _acknowledge_storage(platform)
    _acknowledge_network(platform)
    _acknowledge_tracking(platform, deferred)
    _acknowledge_studio(platform, deferred)
    _acknowledge_pipelines(platform, deferred)
    Validations.of(app).add_plugins(deferred)


def _acknowledge_storage(platform: Platform) -> None:
    ack(
        platform.storage.access_logs,
        "AwsSolutions-S1",
        "This is the server-access-log destination; logging it into itself would loop.",
    )


def _acknowledge_network(platform: Platform) -> None:
    if platform.network is None:
        return
    for nat in platform.network.nat_instances:
        ack(
            nat,
            "AwsSolutions-EC26",
            "The NAT instance's root volume holds only the stock AMI, no data, and "
            "NatProvider.instanceV2 offers no block-device setting.",
        )
        ack(
            nat,
            "AwsSolutions-EC28",
            "A NAT instance is chosen to save cost; 5-minute basic monitoring is enough for it.",
        )
        ack(
            nat,
            "AwsSolutions-EC29",
            "The NAT instance is stateless and replaced by redeploying; termination "
            "protection would only block that.",
        )


def _acknowledge_tracking(platform: Platform, deferred: DeferredAcknowledgments) -> None:
    storage = platform.storage
    backend = platform.tracking.backend
    ack_grant_wildcards(
        backend.role,
        deferred=deferred,
        actions=S3_READ_WRITE + (KMS_ENCRYPT_DECRYPT if storage.artifacts_key else ()),
        resources=[storage.artifacts_objects_arn],
        reason="MLflow writes run artifacts as objects of any name under its own prefix only.",
    )
    _acknowledge_tracking_mode(platform, deferred)


def _acknowledge_tracking_mode(platform: Platform, deferred: DeferredAcknowledgments) -> None:
    """What each tracking mode adds beyond the shared artifact-prefix grant."""
    tracking = platform.tracking
    backend = tracking.backend
    for arn in tracking.aws_managed_policy_arns:
        ack(
            backend.role,
            f"AwsSolutions-IAM4[Policy::{arn}]",
            "Attached by the operator through tracking.extra_policy_arns, reviewed in cdk.json.",
        )
    if isinstance(backend, SageMakerMlflow):
        for arn in backend.model_registry_arns:
            deferred.add(
                backend.role,
                arn,
                "Automatic model registration creates a model package group per MLflow model "
                "name, which is only known at run time.",
            )
    # By mode, not isinstance: the self-hosted constructs are imported only when used.
    if tracking.mode == "fargate":
        _acknowledge_fargate_tracking(cast("FargateMlflow", backend))
    if tracking.mode == "ec2":
        _acknowledge_ec2_tracking(cast("Ec2Mlflow", backend), deferred)


def _acknowledge_ec2_tracking(backend: Ec2Mlflow, deferred: DeferredAcknowledgments) -> None:
    for policy in ("AmazonSSMManagedInstanceCore", "CloudWatchAgentServerPolicy"):
        ack(
            backend.role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
            "AWS's minimal policy for Session Manager shell access and the CloudWatch agent, "
            "kept current by AWS as those agents change.",
        )
    # The finding names the bucket as the stack resolves it: tokens when environment-agnostic,
    # literals once the CLI supplies an account and region. Build it from the asset itself.
    deferred.add(
        backend.role,
        backend.entrypoint.bucket.arn_for_objects("*"),
        "CDK's asset grant: the instance downloads its entrypoint script from the bootstrap "
        "assets bucket, whose object keys are content hashes.",
    )
    for secret in (backend.database, backend.admin_secret, backend.client_secret):
        ack(
            secret,
            "AwsSolutions-SMG4",
            "The MLflow service reads credentials only at start; rotate by updating the secret "
            "and restarting the service (docs/tracking.md), not by a rotation Lambda.",
        )
    ack(
        backend.database,
        "AwsSolutions-RDS11",
        "The database admits only the MLflow instance's security group; a non-standard port "
        "would add no protection to a private database.",
    )
    if not backend.multi_az:
        ack(
            backend.database,
            "AwsSolutions-RDS3",
            "Single-AZ by choice outside prod to halve the cost; tracking.ec2.db_multi_az "
            "turns the standby on (prod sets it).",
        )
    if not backend.deletion_protection:
        ack(
            backend.database,
            "AwsSolutions-RDS10",
            "Deletion protection is on where removal_policy is retain (prod); this environment "
            "tears its tracking database down with the stack on purpose.",
        )
    ack(
        backend.group,
        "AwsSolutions-AS3",
        "A group of one: its only scaling events are replacements of an unhealthy instance, "
        "which the status-check alarm already reports.",
    )


def _acknowledge_fargate_tracking(backend: FargateMlflow) -> None:
    ack(
        backend.task_definition,
        "AwsSolutions-ECS2",
        "Only non-secret settings (artifact URI, port, auth mode, host names) are plain "
        "environment; every credential is injected from Secrets Manager as an ECS secret.",
    )
    ack(
        backend.task_definition.obtain_execution_role(),
        "AwsSolutions-IAM5[Resource::*]",
        "CDK's execution role: ecr:GetAuthorizationToken has no resource-level permissions.",
    )
    ack(
        backend.load_balancer,
        "AwsSolutions-ELB2",
        "Internal ALB in front of MLflow, whose request log goes to CloudWatch; ALB access "
        "logs need a region at synth and this app synthesizes environment-agnostic.",
    )
    for secret in (backend.database, backend.admin_secret, backend.client_secret):
        if secret is not None:
            ack(
                secret,
                "AwsSolutions-SMG4",
                "MLflow tasks read credentials only at start; rotate by updating the secret and "
                "forcing a new deployment (docs/tracking.md), not by a rotation Lambda.",
            )
    if not backend.deletion_protection:
        ack(
            backend.database,
            "AwsSolutions-RDS10",
            "Deletion protection is on where removal_policy is retain (prod); this environment "
            "tears its tracking database down with the stack on purpose.",
        )


def _acknowledge_studio(platform: Platform, deferred: DeferredAcknowledgments) -> None:
    """The Studio execution role (MLflow, data prefixes, its own domain) and the cleanup role."""
    studio = platform.studio
    if studio is None:
        return
    storage = platform.storage
    domain = studio.domain
    role = domain.role
    ack_grant_wildcards(
        role,
        deferred=deferred,
        actions=S3_READ_WRITE + KMS_ENCRYPT_DECRYPT,
        resources=[
            storage.artifacts_objects_arn,
            *(
                storage.data_objects_arn(prefix)
                for prefix in studio.read_prefixes + studio.read_write_prefixes
            ),
        ],
        reason="Notebooks read and write objects of any name, but only under the MLflow "
        "artifact prefix and the data prefixes the Studio stack grants.",
    )
    if isinstance(platform.tracking.backend, MlflowTrackingServer):
        ack(
            role,
            "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]",
            "The MLflow client API (runs, metrics, registry) of this one SageMaker MLflow "
            "tracking server ARN: an MLflow client calls all of it.",
        )
    ack(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "sagemaker:ListSpaces/ListApps/ListUserProfiles support no resource-level "
        "permissions; the Studio UI lists with them, every change is domain-scoped.",
    )
    for resource in ("space", "user-profile", "app"):
        deferred.add(
            role,
            domain.domain_scoped_arn(resource),
            f"The Studio UI manages the user's {resource}s: limited to those of this one domain.",
        )
    deferred.add(
        role,
        domain.studio_log_group_arn,
        "Studio writes lifecycle-configuration output to streams of its fixed log group only.",
    )

    cleanup = studio.cleanup
    ack(
        cleanup.role,
        "AwsSolutions-IAM5[Resource::*]",
        "List* on SageMaker and ec2:DescribeSecurityGroups support no resource-level "
        "permissions; every delete is scoped to this domain or its VPC.",
    )
    for resource in cleanup.scoped_resources:
        deferred.add(
            cleanup.role,
            resource,
            "Teardown deletes every app, space and user profile, limited to this one domain.",
        )
    if cleanup.deletes_home_efs:
        for resource in cleanup.home_efs_resources:
            deferred.add(
                cleanup.role,
                resource,
                "File system and security group IDs are created by SageMaker; conditions "
                "limit them to this domain's tag and this VPC.",
            )
    # The provider framework that polls the teardown (custom_resources.Provider).
    for framework_role in cleanup.framework_roles:
        for handler in (cleanup.on_event, cleanup.is_complete):
            deferred.add(
                framework_role,
                f"{handler.function_arn}:*",
                "CDK's Provider grants lambda:InvokeFunction on the teardown handler's own "
                "versions and aliases, nothing else.",
            )
    for target in cleanup.waiter_targets:
        deferred.add(
            cleanup.waiter,
            f"{target.function_arn}:*",
            "CDK's Provider waiter invokes the framework's is-complete and timeout functions, "
            "their versions and aliases only.",
        )
    ack(
        cleanup.waiter,
        "AwsSolutions-IAM5[Resource::*]",
        "Step Functions log delivery (logs:CreateLogDelivery, PutResourcePolicy, ...) supports "
        "no resource-level permissions; the waiter logs to its own log group only.",
    )
    ack(
        cleanup.waiter,
        "AwsSolutions-SF2",
        "CDK's Provider offers no tracing setting for its waiter; it only polls one Lambda "
        "and its every transition is logged to CloudWatch Logs.",
    )


def _acknowledge_pipelines(platform: Platform, deferred: DeferredAcknowledgments) -> None:
    """The SageMaker job role, the pipelines' own role and the launcher's role."""
    pipelines = platform.pipelines
    if pipelines is None:
        return
    storage = platform.storage
    roles = pipelines.roles
    execution = roles.execution
    ack_grant_wildcards(
        execution,
        deferred=deferred,
        actions=S3_READ_WRITE + KMS_ENCRYPT_DECRYPT,
        resources=[
            storage.artifacts_objects_arn,
            *(storage.data_objects_arn(prefix) for prefix in pipelines.data_prefixes),
        ],
        reason="Jobs read and write objects of any name (one file per run or date), but only "
        "under the MLflow artifact prefix and the data prefixes each job uses.",
    )
    if isinstance(platform.tracking.backend, MlflowTrackingServer):
        ack(
            execution,
            "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]",
            "The MLflow client API (runs, metrics, registry) of this one SageMaker MLflow "
            "tracking server ARN: training logs and registers, inference loads the model.",
        )
    ack(
        execution,
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken, cloudwatch:PutMetricData (namespace-limited) and the EC2 "
        "calls that attach a job to the VPC (VPC-limited) have no resource-level permissions.",
    )
    for log_group in roles.job_log_groups:
        deferred.add(
            execution,
            log_group,
            "SageMaker writes one log stream per job into its fixed job log group only.",
        )
    deferred.add(
        roles.orchestration,
        pipelines.decision_objects,
        "The pipelines read each execution's preflight decision file (JsonGet), written under "
        "<pipeline>/<execution id>/ of this one prefix; s3:GetObject only.",
    )
    for grantee, reason in (
        (roles.orchestration, "SageMaker Pipelines names its jobs pipelines-<execution>-<step>-*"),
        *(
            ((pipelines.launcher.role, "The launcher names its jobs <prefix>-<yyyymmddHHMM>"),)
            if pipelines.launcher is not None
            else ()
        ),
    ):
        for arn in roles.started_job_arns(grantee):
            deferred.add(grantee, arn, f"{reason}; only jobs with that name prefix.")
    if pipelines.launcher is not None:
        launcher = pipelines.launcher
        deferred.add(
            launcher.role,
            launcher.log_group.log_group_arn,  # CDK's log-group ARN ends with :*
            "The function writes log streams (named by Lambda) into its own log group only.",
        )
        if pipelines.schedules is not None:
            deferred.add(
                pipelines.schedules.role,
                f"{launcher.function.function_arn}:*",
                "CDK's Lambda target: invoking the launcher function's own versions and aliases.",
            )
        if launcher.runtime_is_pinned_below_latest:
            ack(
                launcher.function,
                "AwsSolutions-L1",
                "The runtime is pinned on purpose by pipelines.lambda_launcher.runtime in cdk.json.",
            )
