"""Adapter: a ``CfnPipeline`` seen as the ``aws_sagemaker.IPipeline`` the scheduler targets expect.

aws-cdk-lib has no L2 SageMaker Pipeline, but ``aws_scheduler_targets.SageMakerStartPipelineExecution``
takes an ``IPipeline``: it reads ``pipeline_arn`` and calls ``grant_start_pipeline_execution``.
"""

from __future__ import annotations

import jsii
from aws_cdk import Resource, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.interfaces import aws_sagemaker as sagemaker_refs
from constructs import Construct


@jsii.implements(sagemaker.IPipeline)
class SageMakerPipelineRef(Resource):
    """The pipeline's name (a Ref, so users of it wait for the pipeline), ARN and start grant."""

    def __init__(self, scope: Construct, id: str, *, pipeline: sagemaker.CfnPipeline) -> None:
        super().__init__(scope, id)
        self._pipeline = pipeline

    @property
    def pipeline_name(self) -> str:
        return self._pipeline.ref

    @property
    def pipeline_arn(self) -> str:
        # SageMaker writes pipeline ARNs in lower case; the names here are lower case already.
        return Stack.of(self).format_arn(
            service="sagemaker", resource="pipeline", resource_name=self.pipeline_name
        )

    @property
    def pipeline_ref(self) -> sagemaker_refs.PipelineReference:
        return sagemaker_refs.PipelineReference(pipeline_name=self.pipeline_name)

    def grant_start_pipeline_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:StartPipelineExecution"],
            resource_arns=[self.pipeline_arn],
        )


def add_pipeline(
    scope: Construct, *, name: str, description: str, role: iam.IRole, definition_body: str
) -> tuple[sagemaker.CfnPipeline, SageMakerPipelineRef]:
    """The ``CfnPipeline`` (``Resource``) and its adapter (``Ref``) under ``scope``."""
    resource = sagemaker.CfnPipeline(
        scope,
        "Resource",
        pipeline_name=name,  # users type it: aws sagemaker start-pipeline-execution
        pipeline_display_name=name,
        pipeline_description=description,
        role_arn=role.role_arn,
        pipeline_definition={"PipelineDefinitionBody": definition_body},
    )
    resource.node.add_dependency(role)  # the role's policy must exist before a run
    return resource, SageMakerPipelineRef(scope, "Ref", pipeline=resource)
