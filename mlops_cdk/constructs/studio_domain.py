"""A SageMaker Studio domain wired to MLflow: users, apps with idle shutdown, a scoped role."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import ArnFormat, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.constructs.data_stores import ObjectStore
from mlops_cdk.settings import StudioSettings
from mlops_cdk.tracking_backend import CREDENTIALS_SECRET_ENV, TrackingBackend

# Runs at every start of a JupyterLab or Code Editor app (the domain's built-in lifecycle
# configuration, which users cannot switch off): notebooks, kernels and terminals get
# MLFLOW_TRACKING_URI without anyone copying it. Idempotent; rewrites the values each start.
# Self-hosted MLflow with basic auth: secret_arn names the client credentials secret; each
# IPython kernel reads it at start (the execution role may) and sets MLFLOW_TRACKING_USERNAME
# and MLFLOW_TRACKING_PASSWORD in its own environment, so no password is written to disk.
# Terminals get MLFLOW_CREDENTIALS_SECRET_ARN and the shell function mlflow_login.
# The URI and the secret's ARN come from an SSM parameter read at each start, not from the
# script: every property of a lifecycle configuration is create-only and its name is written,
# so the script must not change when the tracking server behind it does (a replaced load
# balancer or secret); the parameter's value can. Without the parameter (no network path to
# SSM, no permission) the app still starts, without MLflow settings, and says why.
#
# The script is studio_startup.sh beside this module: a str.format template ({parameter},
# {region}; braces of the shell doubled), read at synth. It keeps its own few lines of secret
# reading rather than the jobs' mlops_runtime: it runs in Studio's image, where that package
# is not installed, and shipping it would change the script (and so the lifecycle
# configurations' names) for no change in behaviour.
MLFLOW_ENV_SCRIPT = (Path(__file__).parent / "studio_startup.sh").read_text()

# What the Studio web UI does with the user's execution role inside this domain.
STUDIO_SPACE_ACTIONS = [
    "sagemaker:CreateSpace",
    "sagemaker:UpdateSpace",
    "sagemaker:DeleteSpace",
    "sagemaker:DescribeSpace",
]
STUDIO_APP_ACTIONS = ["sagemaker:CreateApp", "sagemaker:DeleteApp", "sagemaker:DescribeApp"]
STUDIO_LIST_ACTIONS = ["sagemaker:ListSpaces", "sagemaker:ListApps", "sagemaker:ListUserProfiles"]


class StudioDomain(Construct):
    """``AWS::SageMaker::Domain`` with its execution role, security group and user profiles."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: StudioSettings,
        vpc: ec2.IVpc,
        subnet_ids: Sequence[str],
        key: kms.IKey,
        tracking: TrackingBackend,
        data: ObjectStore,
        read_prefixes: Sequence[str],
        read_write_prefixes: Sequence[str],
    ) -> None:
        super().__init__(scope, id)
        self.network_access = settings.network_access
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="SageMaker Studio apps: their own traffic, HTTPS out, MLflow",
            allow_all_outbound=False,
        )
        self.security_group.connections.allow_internally(
            ec2.Port.all_tcp(), "Studio apps talk to each other (kernels, EFS, UI)"
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.HTTPS, "AWS APIs through the VPC endpoints or NAT"
        )
        self.connections: ec2.Connections = self.security_group.connections
        if tracking.connections is not None:  # self-hosted MLflow inside the VPC
            self.connections.allow_to_default_port(
                tracking.connections, "Studio notebooks to MLflow"
            )

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Studio users: MLflow, the data prefixes, and their own spaces and apps",
        )
        grants = [
            tracking.grant_use(self.role),
            *(data.grant_read(self.role, prefix) for prefix in read_prefixes),
            *(data.grant_read_write(self.role, prefix) for prefix in read_write_prefixes),
        ]
        for grant in grants:
            nag.ack_grant(
                self.role,
                grant,
                resources="Notebooks read and write objects of any name, but only under the MLflow "
                "artifact prefix and the data prefixes the Studio stack grants.",
                actions="The MLflow client API (runs, metrics, registry) of this one SageMaker "
                "MLflow tracking server ARN: an MLflow client calls all of it.",
            )

        self.mlflow_settings = ssm.StringParameter(
            self,
            "MlflowSettings",
            description="MLflow tracking URI and client credentials secret for Studio apps",
            string_value=Stack.of(self).to_json_string(
                {
                    "uri": tracking.tracking_uri,
                    "secret_arn": tracking.client_environment.get(CREDENTIALS_SECRET_ENV, ""),
                }
            ),
        )
        self.role.add_to_policy(  # the one call the lifecycle script makes
            iam.PolicyStatement(
                actions=["ssm:GetParameter"], resources=[self.mlflow_settings.parameter_arn]
            )
        )
        lifecycle = {
            app_type: self._lifecycle_config(name, app_type, self.mlflow_settings)
            for app_type in ("JupyterLab", "CodeEditor")
        }
        idle = sagemaker.CfnDomain.AppLifecycleManagementProperty(
            idle_settings=sagemaker.CfnDomain.IdleSettingsProperty(
                lifecycle_management="ENABLED",
                idle_timeout_in_minutes=settings.idle_timeout_minutes,
                min_idle_timeout_in_minutes=60,
                max_idle_timeout_in_minutes=settings.max_idle_timeout_minutes,
            )
        )
        jupyter_lab = sagemaker.CfnDomain.JupyterLabAppSettingsProperty(
            app_lifecycle_management=idle,
            built_in_lifecycle_config_arn=lifecycle["JupyterLab"].attr_studio_lifecycle_config_arn,
            default_resource_spec=sagemaker.CfnDomain.ResourceSpecProperty(
                instance_type=settings.jupyterlab_instance_type
            ),
        )
        code_editor = sagemaker.CfnDomain.CodeEditorAppSettingsProperty(
            app_lifecycle_management=idle,
            built_in_lifecycle_config_arn=lifecycle["CodeEditor"].attr_studio_lifecycle_config_arn,
            default_resource_spec=sagemaker.CfnDomain.ResourceSpecProperty(
                instance_type=settings.code_editor_instance_type
            ),
        )
        ebs = sagemaker.CfnDomain.DefaultSpaceStorageSettingsProperty(
            default_ebs_storage_settings=sagemaker.CfnDomain.DefaultEbsStorageSettingsProperty(
                default_ebs_volume_size_in_gb=settings.default_ebs_volume_gb,
                maximum_ebs_volume_size_in_gb=settings.max_ebs_volume_gb,
            )
        )
        self.domain = sagemaker.CfnDomain(
            self,
            "Resource",
            # KmsKeyId is create-only: a new key means a new domain, and a written name that
            # stayed the same would make that replacement impossible. The name follows the key.
            domain_name=Fn.join("-", [name, Fn.select(0, Fn.split("-", key.key_id))]),
            auth_mode="IAM",
            app_network_access_type=settings.network_access,
            vpc_id=vpc.vpc_id,
            subnet_ids=list(subnet_ids),
            kms_key_id=key.key_arn,
            default_user_settings=sagemaker.CfnDomain.UserSettingsProperty(
                execution_role=self.role.role_arn,
                security_groups=[self.security_group.security_group_id],
                studio_web_portal="ENABLED",
                default_landing_uri="studio::",
                jupyter_lab_app_settings=jupyter_lab,
                code_editor_app_settings=code_editor,
                space_storage_settings=ebs,
                sharing_settings=sagemaker.CfnDomain.SharingSettingsProperty(
                    notebook_output_option="Disabled"
                ),
            ),
            default_space_settings=sagemaker.CfnDomain.DefaultSpaceSettingsProperty(
                execution_role=self.role.role_arn,
                security_groups=[self.security_group.security_group_id],
                jupyter_lab_app_settings=jupyter_lab,
                space_storage_settings=ebs,
            ),
        )
        # The domain itself holds no data: its EFS home file system does, and StudioCleanup
        # deletes or keeps that by the removal policy. The domain must go with the stack.
        self.domain.apply_removal_policy(RemovalPolicy.DESTROY)

        self.user_profiles = [
            sagemaker.CfnUserProfile(
                self,
                f"User-{user}",
                domain_id=self.domain.attr_domain_id,
                user_profile_name=user,
            )
            for user in settings.user_profiles
        ]
        for profile in self.user_profiles:
            profile.apply_removal_policy(RemovalPolicy.DESTROY)
        self._grant_studio_use(key)

    @property
    def domain_id(self) -> str:
        return self.domain.attr_domain_id

    @property
    def url(self) -> str:
        return f"https://{self.domain_id}.studio.{Stack.of(self).region}.sagemaker.aws"

    def domain_scoped_arn(self, resource: str) -> str:
        """``arn:...:<resource>/<domain-id>/*``: every ``resource`` of this domain."""
        return Stack.of(self).format_arn(
            service="sagemaker", resource=resource, resource_name=f"{self.domain_id}/*"
        )

    def _grant_studio_use(self, key: kms.IKey) -> None:
        """What Studio's UI needs from the role: spaces and apps of this domain only."""
        stack = Stack.of(self)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeDomain"], resources=[self.domain.attr_domain_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeUserProfile"],
                resources=[self.domain_scoped_arn("user-profile")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[*STUDIO_SPACE_ACTIONS, "sagemaker:AddTags"],
                resources=[self.domain_scoped_arn("space")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[*STUDIO_APP_ACTIONS, "sagemaker:AddTags"],
                resources=[self.domain_scoped_arn("app")],
            )
        )
        # The List* calls support no resource-level permissions.
        self.role.add_to_policy(iam.PolicyStatement(actions=STUDIO_LIST_ACTIONS, resources=["*"]))
        nag.ack(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "sagemaker:ListSpaces/ListApps/ListUserProfiles support no resource-level "
            "permissions; the Studio UI lists with them, every change is domain-scoped.",
        )
        for resource in ("space", "user-profile", "app"):
            nag.ack_resource(
                self.role,
                self.domain_scoped_arn(resource),
                f"The Studio UI manages the user's {resource}s: limited to those of this one domain.",
            )
        # Spaces' EBS volumes are encrypted with the domain key: AWS services may attach them.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        # The lifecycle configuration's output (Studio writes it with this role).
        self.studio_log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/studio:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.studio_log_group_arn],
            )
        )
        nag.ack_resource(
            self.role,
            self.studio_log_group_arn,
            "Studio writes lifecycle-configuration output to streams of its fixed log group only.",
        )

    def _lifecycle_config(
        self, name: str, app_type: str, settings: ssm.IStringParameter
    ) -> sagemaker.CfnStudioLifecycleConfig:
        # Every property replaces the resource, and the name is written: a new script needs a
        # new name, so the name carries the script's digest. Nothing else in it can change
        # (the parameter and the region are this stack's own, and the parameter is never
        # replaced: its name is generated and its value may change in place).
        digest = hashlib.sha256(MLFLOW_ENV_SCRIPT.encode()).hexdigest()[:8]
        short = {"JupyterLab": "jl", "CodeEditor": "ce"}[app_type]
        config = sagemaker.CfnStudioLifecycleConfig(
            self,
            f"{app_type}MlflowEnv",
            studio_lifecycle_config_name=f"{name}-mlflow-{short}-{digest}",
            studio_lifecycle_config_app_type=app_type,
            studio_lifecycle_config_content=Fn.base64(
                MLFLOW_ENV_SCRIPT.format(
                    parameter=settings.parameter_name, region=Stack.of(self).region
                )
            ),
        )
        config.apply_removal_policy(RemovalPolicy.DESTROY)
        return config
