"""The inference pipeline: a preflight, then one processing step running the iris_inference container.

The preflight checks the input prefix holds an object and the model alias exists; without
either the run is a recorded skip (:mod:`mlops_cdk.constructs.preflight`).

The container loads ``models:/<model>@<alias>`` from MLflow, scores everything under the input
prefix (a job with no data file fails in one line; rows are generated only by the demo) and
publishes ``<output>/date=YYYY-MM-DD/`` to S3 itself, manifest last (the reader's contract in
docs/pipelines.md). With
``pipelines.inference.instance_count`` N > 1 the score step runs sharded on N instances into a
staging prefix and a ``Commit`` step publishes the partition
(:mod:`mlops_cdk.constructs.shard_requests`).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlops_cdk.constructs.job_requests import InferenceValues, JobContext, processing_job_request
from mlops_cdk.constructs.pipeline_definition import (
    EXECUTION_ID,
    Parameter,
    PipelineDefinition,
    Step,
)
from mlops_cdk.constructs.pipeline_ref import add_pipeline
from mlops_cdk.constructs.preflight import gated_steps, preflight_request
from mlops_cdk.constructs.shard_requests import (
    commit_request,
    publishing_score_request,
    sharded_score_request,
)
from mlops_cdk.settings import PipelinesSettings

SCORE_STEP = "Score"
COMMIT_STEP = "Commit"


class InferencePipeline(Construct):
    """``AWS::SageMaker::Pipeline`` named ``name`` with overridable parameters."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: PipelinesSettings,
        context: JobContext,
        runs_uri: str,
        input_uri: str,
        output_uri: str,
        role: iam.IRole,
    ) -> None:
        super().__init__(scope, id)
        inference = settings.inference
        self.parameters = {
            "input": Parameter("InputDataUri", "String", input_uri),
            "output": Parameter("OutputDataUri", "String", output_uri),
            "instance_type": Parameter("InferenceInstanceType", "String", inference.instance_type),
            "model_alias": Parameter("ModelAlias", "String", inference.model_alias),
            # YYYY-MM-DD to (re)score a past day; empty: today in UTC.
            "date": Parameter("InferenceDate", "String", ""),
        }
        p = self.parameters
        self.arguments = processing_job_request(
            inference,
            context=context,
            values=InferenceValues(
                input_uri=p["input"].ref,
                output_uri=p["output"].ref,
                instance_type=p["instance_type"].ref,
                model_alias=p["model_alias"].ref,
                inference_date=p["date"].ref,
            ),
        )
        jobs: tuple[Step, ...]
        if inference.instance_count == 1:
            self.arguments = publishing_score_request(self.arguments, output_uri=p["output"].ref)
            jobs = (
                Step(
                    name=SCORE_STEP,
                    type="Processing",
                    arguments=self.arguments,
                    description="Score the day's input with the production model",
                ),
            )
        else:
            self.arguments = sharded_score_request(
                self.arguments, output_uri=p["output"].ref, execution_id=EXECUTION_ID
            )
            self.commit_arguments = commit_request(
                inference,
                context=context,
                instance_type=p["instance_type"].ref,
                output_uri=p["output"].ref,
                execution_id=EXECUTION_ID,
                environment=self.arguments["Environment"],
            )
            jobs = (
                Step(
                    name=SCORE_STEP,
                    type="Processing",
                    arguments=self.arguments,
                    description=f"Score the day's input on {inference.instance_count} instances, "
                    "each its share of the files, into the run's staging prefix",
                ),
                Step(
                    name=COMMIT_STEP,
                    type="Processing",
                    arguments=self.commit_arguments,
                    depends_on=(SCORE_STEP,),
                    description="Publish the date partition from every shard (manifest last) "
                    "and merge the drift statistics",
                ),
            )
        self.preflight_arguments = preflight_request(
            context=context,
            instance_type=settings.preflight_instance_type,
            object_uris=[p["input"].ref],
            runs_uri=runs_uri,
            region=Stack.of(self).region,
            model_alias=p["model_alias"].ref,
        )
        self.definition = PipelineDefinition(
            parameters=tuple(p.values()),
            steps=gated_steps(
                preflight=self.preflight_arguments,
                jobs=jobs,
                checks="that the input prefix holds an object and the model alias exists",
            ),
        )
        self.resource, self.pipeline = add_pipeline(
            self,
            name=name,
            description=f"Scores the day's input with {settings.model_name}@{inference.model_alias}",
            role=role,
            definition_body=self.definition.render(self),
        )
        self.name = name
