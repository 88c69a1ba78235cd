"""CloudFormation resource models that stand in for what moto 5.2.5 lacks or gets wrong.

Each class is registered by tests/emulator/server.py for one resource type (or, for the
placeholders, a documented set of types). Every docstring names the moto gap and the real
CloudFormation behaviour the adapter imitates. Pinned to moto 5.2.5 (server.py asserts it).
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models import ec2_backends
from moto.ec2.models.flow_logs import FlowLogs
from moto.ec2.models.route_tables import RouteTable as MotoRouteTable
from moto.ec2.models.vpcs import VPCEndPoint
from moto.kms.models import kms_backends
from moto.moto_api._internal import mock_random
from moto.s3.models import FakeBucket, s3_backends
from moto.sagemaker.models import sagemaker_backends
from moto.scheduler.models import scheduler_backends
from moto.ssm.models import Parameter


def _suffix() -> str:
    return mock_random.get_random_hex(8)


class Placeholder(CloudFormationModel):
    """A resource moto cannot create: nothing is created, Ref and Fn::GetAtt get made-up values.

    moto skips a type it has no model for, and then fails the whole stack on any
    ``Fn::GetAtt`` of it. Real CloudFormation would create the resource; here the stack goes
    on so the resources moto can create are created and checked. An attribute whose name
    ends in ``Arn`` is a well-formed ARN of the right service (IAM rejects anything else in
    a policy's Resource); any other attribute is ``<physical id>.<attribute>``.
    """

    def __init__(self, physical_id: str, resource_type: str, account_id: str, region: str) -> None:
        self.physical_id = physical_id
        self.resource_type = resource_type
        self.account_id = account_id
        self.region = region

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @staticmethod
    def cloudformation_type() -> str:
        return "Emulator::Placeholder"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name.endswith("Arn"):
            _, service, kind = [*self.resource_type.split("::"), "", ""][:3]
            return (
                f"arn:aws:{service.lower()}:{self.region}:{self.account_id}:"
                f"{kind.lower() or 'resource'}/{self.physical_id}"
            )
        return f"{self.physical_id}.{attribute_name}"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Placeholder:
        return cls(resource_name, kwargs["ResourceType"], account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        return None


class AnsweredCustomResource(Placeholder):
    """Any ``Custom::`` resource, answered SUCCESS at once with no data.

    moto invokes the Lambda behind the ServiceToken (in Docker, which is absent here: the
    stack hangs in CREATE_IN_PROGRESS). Real CloudFormation sends Create/Delete events to
    the handler and waits for its answer; the handlers themselves are tested by their own
    unit tests (lambda/*/tests), not here.
    """

    @staticmethod
    def cloudformation_type() -> str:
        return "Emulator::CustomResource"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Placeholder:
        return cls(
            f"{kwargs['LogicalId']}-{_suffix()}", kwargs["ResourceType"], account_id, region_name
        )


class _Adapter(CloudFormationModel):
    """Base of the adapters that create a real resource in one of moto's backends."""

    def __init__(self, physical_id: str, attributes: dict[str, Any]) -> None:
        self.physical_id = physical_id
        self.attributes = attributes

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.attributes.get(attribute_name, f"{self.physical_id}.{attribute_name}")


class SageMakerPipeline(_Adapter):
    """AWS::SageMaker::Pipeline, created in moto's SageMaker backend (moto has no model).

    Ref is the pipeline name, as in CloudFormation; the definition is the body the template
    carries (or the S3 object it names), so ``DescribePipeline`` returns what the deploy wrote.
    """

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SageMaker::Pipeline"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SageMakerPipeline:
        props = cloudformation_json["Properties"]
        name = props.get("PipelineName") or resource_name
        definition = props["PipelineDefinition"]
        body = definition.get("PipelineDefinitionBody")
        location = definition.get("PipelineDefinitionS3Location")
        pipeline = sagemaker_backends[account_id][region_name].create_pipeline(
            pipeline_name=name,
            pipeline_display_name=props.get("PipelineDisplayName") or name,
            pipeline_definition=body if isinstance(body, str) else json.dumps(body),
            pipeline_definition_s3_location=(
                {"Bucket": location["Bucket"], "ObjectKey": location["Key"]} if location else {}
            ),
            pipeline_description=props.get("PipelineDescription", ""),
            role_arn=props["RoleArn"],
            tags=props.get("Tags", []),
            parallelism_configuration=props.get("ParallelismConfiguration", {}),
        )
        return cls(name, {"Arn": pipeline.arn})

    def delete(self, account_id: str, region_name: str) -> None:
        sagemaker_backends[account_id][region_name].delete_pipeline(self.physical_id)


class SchedulerSchedule(_Adapter):
    """AWS::Scheduler::Schedule, created in moto's EventBridge Scheduler backend (no model).

    Ref is the schedule name and Fn::GetAtt Arn its ARN, as in CloudFormation.
    """

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Scheduler::Schedule"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SchedulerSchedule:
        props = cloudformation_json["Properties"]
        name = props.get("Name") or resource_name[:64]
        schedule = scheduler_backends[account_id][region_name].create_schedule(
            description=props.get("Description", ""),
            end_date=props.get("EndDate"),
            flexible_time_window=props["FlexibleTimeWindow"],
            group_name=props.get("GroupName"),
            kms_key_arn=props.get("KmsKeyArn"),
            name=name,
            schedule_expression=props["ScheduleExpression"],
            schedule_expression_timezone=props.get("ScheduleExpressionTimezone"),
            start_date=props.get("StartDate"),
            state=props.get("State", "ENABLED"),
            target=props["Target"],
            action_after_completion=None,
        )
        group = props.get("GroupName")
        return cls(name, {"Arn": schedule.arn, "_group": group})

    def delete(self, account_id: str, region_name: str) -> None:
        scheduler_backends[account_id][region_name].delete_schedule(
            self.attributes["_group"], self.physical_id
        )


class KmsKey(_Adapter):
    """AWS::KMS::Key: moto's model crashes on Tags ({Key, Value}) and on a KeyPolicy object.

    CloudFormation takes the policy as a JSON object and tags as Key/Value pairs; this passes
    the policy as the JSON string and the tags as TagKey/TagValue, as the KMS API takes them,
    and keeps EnableKeyRotation, so ``GetKeyRotationStatus`` answers what the template asked.
    """

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::KMS::Key"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> KmsKey:
        props = cloudformation_json["Properties"]
        policy = props.get("KeyPolicy")
        key = kms_backends[account_id][region_name].create_key(
            policy=json.dumps(policy) if isinstance(policy, dict) else policy,
            key_usage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            key_spec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            description=props.get("Description", ""),
            tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])],
        )
        key.key_rotation_status = bool(props.get("EnableKeyRotation", False))
        key.enabled = bool(props.get("Enabled", True))
        return cls(key.id, {"Arn": key.arn, "KeyId": key.id})

    def delete(self, account_id: str, region_name: str) -> None:
        """CloudFormation schedules the key's deletion (PendingWindowInDays, default 30)."""
        kms_backends[account_id][region_name].schedule_key_deletion(self.physical_id, 30)


class Bucket(FakeBucket):
    """AWS::S3::Bucket: moto's model ignores VersioningConfiguration and the public access block.

    After moto creates the bucket (name, encryption, tags) this applies both, as
    CloudFormation does, so ``GetBucketVersioning`` answers what the template asked.
    """

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> FakeBucket:
        bucket = FakeBucket.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        props = cloudformation_json.get("Properties", {})
        backend = s3_backends[account_id]["aws"]
        versioning = props.get("VersioningConfiguration", {}).get("Status")
        if versioning:
            backend.put_bucket_versioning(bucket.name, versioning)
        block = props.get("PublicAccessBlockConfiguration")
        if block:
            backend.put_public_access_block(
                bucket.name, {k: str(v).lower() for k, v in block.items()}
            )
        return bucket


class VpcEndpoint(VPCEndPoint):
    """AWS::EC2::VPCEndpoint: moto's model has no delete, so the VPC's delete then fails.

    moto calls this with the physical id when the model object has no ``delete``. Its
    DeleteVpcEndpoints only marks the endpoint "deleted" (and removes a gateway
    endpoint's routes); this also forgets it, as AWS does once the deletion completes.
    """

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        backend = ec2_backends[account_id][region_name]
        backend.delete_vpc_endpoints([resource_name])
        backend.vpc_end_points.pop(resource_name, None)


class RouteTable(MotoRouteTable):
    """AWS::EC2::RouteTable: moto's model has no delete, so the VPC's delete then fails.

    CloudFormation deletes a table after the gateway endpoints that reference it (they
    depend on it); moto deletes a stack's resources in no particular order, so while a
    live endpoint still names the table this refuses, as a dependency violation, and
    moto's delete loop retries it on its next pass.
    """

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        backend = ec2_backends[account_id][region_name]
        users = [
            endpoint.id
            for endpoint in backend.vpc_end_points.values()
            if resource_name in endpoint.route_table_ids
        ]
        if users:
            raise DependencyViolationError(f"{resource_name} is used by {users}")
        backend.delete_route_table(resource_name)


class FlowLog(FlowLogs):
    """AWS::EC2::FlowLog: moto's model has no delete, so the flow log outlives its stack."""

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        ec2_backends[account_id][region_name].delete_flow_logs([resource_name])


class SsmParameter(Parameter):
    """AWS::SSM::Parameter: moto's model needs ``Name`` and takes ``Tags`` as a list.

    CloudFormation generates the name when the template gives none (the physical id moto
    computed, ``resource_name``) and the template writes tags as a map; this passes both on
    in the form moto's PutParameter accepts.
    """

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Parameter:
        props = dict(cloudformation_json.get("Properties", {}))
        props.setdefault("Name", resource_name)
        tags = props.get("Tags")
        if isinstance(tags, dict):
            props["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        return Parameter.create_from_cloudformation_json(
            resource_name,
            {**cloudformation_json, "Properties": props},
            account_id,
            region_name,
            **kwargs,
        )


# The adapters by the resource type they stand in for (tests/emulator/server.py routes them).
ADAPTERS: dict[str, Any] = {
    "AWS::SageMaker::Pipeline": SageMakerPipeline,
    "AWS::Scheduler::Schedule": SchedulerSchedule,
    "AWS::KMS::Key": KmsKey,
    "AWS::S3::Bucket": Bucket,
    "AWS::EC2::VPCEndpoint": VpcEndpoint,
    "AWS::EC2::RouteTable": RouteTable,
    "AWS::EC2::FlowLog": FlowLog,
    "AWS::SSM::Parameter": SsmParameter,
}
