"""Wires the stacks of one environment together: the only place that knows them all."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Stack, Tags

from mlops_cdk.constructs.cdk_providers import harden_cdk_providers
from mlops_cdk.constructs.encrypted_log_group import encrypt_log_groups
from mlops_cdk.settings import Settings
from mlops_cdk.stacks.network import NetworkStack
from mlops_cdk.stacks.pipelines import PipelinesStack
from mlops_cdk.stacks.storage import StorageStack
from mlops_cdk.stacks.studio import StudioStack
from mlops_cdk.stacks.tracking import TrackingStack

# Resource types whose Tags are create-only (cfn-lint's resource schemas list them): a tag
# change replaces them, and they carry names, which CloudFormation cannot replace. They get
# the app's own tags, which never change for a deployed environment, and not the extra tags
# from config, which may. tests/test_updates.py finds any other type that needs this.
CREATE_ONLY_TAGS = ("AWS::SageMaker::StudioLifecycleConfig",)


@dataclass(frozen=True)
class Platform:
    """The stacks one environment deploys, in dependency order."""

    storage: StorageStack
    network: NetworkStack | None
    tracking: TrackingStack
    studio: StudioStack | None = None
    pipelines: PipelinesStack | None = None

    @property
    def stacks(self) -> list[Stack]:
        return [
            s
            for s in (self.storage, self.network, self.tracking, self.studio, self.pipelines)
            if s is not None
        ]


def build_platform(app: App, settings: Settings) -> Platform:
    """Add every stack of ``settings.env_name`` to ``app``; references flow through arguments."""
    common = {"env": settings.aws_env}
    stateful = {**common, "termination_protection": settings.termination_protection}

    storage = StorageStack(
        app,
        settings.stack_name("storage"),
        description=f"{settings.name_prefix}: KMS key and S3 buckets for ML data and MLflow artifacts",
        settings=settings.storage,
        removal=settings.removal,
        **stateful,
    )
    network = (
        NetworkStack(
            app,
            settings.stack_name("network"),
            description=f"{settings.name_prefix}: private VPC, endpoints and flow logs",
            settings=settings.network,
            removal=settings.removal,
            interface_endpoints=settings.interface_endpoints,
            endpoint_zones=settings.endpoint_zones,
            **common,
        )
        if settings.needs_network
        else None
    )
    tracking = TrackingStack(
        app,
        settings.stack_name("tracking"),
        description=f"{settings.name_prefix}: MLflow tracking ({settings.tracking.mode})",
        settings=settings.tracking,
        name_prefix=settings.name_prefix,
        storage=storage,
        network=network,
        removal=settings.removal,
        log_retention=settings.log_retention,
        **stateful,
    )
    studio = (
        StudioStack(
            app,
            settings.stack_name("studio"),
            description=f"{settings.name_prefix}: SageMaker Studio domain wired to MLflow",
            settings=settings.studio,
            name_prefix=settings.name_prefix,
            storage=storage,
            network=network,
            tracking=tracking,
            removal=settings.removal,
            log_retention=settings.log_retention,
            **stateful,
        )
        if settings.studio.enabled and network is not None
        else None
    )
    pipelines = PipelinesStack(
        app,
        settings.stack_name("pipelines"),
        description=f"{settings.name_prefix}: scheduled SageMaker training and inference pipelines",
        settings=settings.pipelines,
        name_prefix=settings.name_prefix,
        in_vpc=settings.jobs_in_vpc,
        storage=storage,
        network=network,
        tracking=tracking.backend,
        removal=settings.removal,
        log_retention=settings.log_retention,
        **common,
    )
    platform = Platform(
        storage=storage, network=network, tracking=tracking, studio=studio, pipelines=pipelines
    )

    tags = {"Project": settings.project, "Environment": settings.env_name, "ManagedBy": "cdk"}
    for key, value in tags.items():
        Tags.of(app).add(key, value)
    for key, value in settings.tags.items():
        if key not in tags:  # the app's own tags win
            Tags.of(app).add(key, value, exclude_resource_types=list(CREATE_ONLY_TAGS))
    encrypt_log_groups(app, storage.key)  # every log group, with the environment's key
    # CDK's own custom-resource handlers (auto-delete objects, restrict the default SG): one
    # dead-letter queue per stack, alarmed on the pipelines' failure topic like the others.
    for stack in platform.stacks:
        queue = harden_cdk_providers(
            stack,
            key=storage.key,
            removal=settings.removal,
            reserved_concurrency=settings.custom_resource_reserved_concurrency,
        )
        if queue is not None:
            unit = stack.stack_name.rsplit("-", 1)[-1]
            pipelines.alarms.on_dead_letters(
                queue,
                f"{unit.capitalize()}CdkHandlersDeadLetters",
                f"A CDK custom-resource handler of the {unit} stack failed after Lambda's "
                "retries (see its DLQ)",
            )
    return platform
