"""The training pipeline: a preflight, then one training step running the iris_training container.

The container trains, evaluates, logs to MLflow, registers the model and moves the
``production`` alias only through its quality gate, so one step does the work. Before it the
preflight checks the training prefixes hold data; with none the run is a recorded skip
(:mod:`mlops_cdk.constructs.preflight`). With ``pipelines.training.strategy=tuning`` the one
step is a tuning step and a RegisterBest step after it
(:mod:`mlops_cdk.constructs.tuning_requests`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlops_cdk.constructs.job_requests import JobContext, TrainingValues, training_job_request
from mlops_cdk.constructs.pipeline_definition import (
    EXECUTION_ID,
    Parameter,
    PipelineDefinition,
    Step,
    best_training_job_name,
)
from mlops_cdk.constructs.pipeline_ref import add_pipeline
from mlops_cdk.constructs.preflight import gated_steps, preflight_request
from mlops_cdk.constructs.tuning_requests import register_best_request, tuning_job_request
from mlops_cdk.settings import PipelinesSettings

TRAIN_STEP = "Train"
TUNING_STEP = "Tuning"
REGISTER_BEST_STEP = "RegisterBest"


class TrainingPipeline(Construct):
    """``AWS::SageMaker::Pipeline`` named ``name`` with overridable parameters."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: PipelinesSettings,
        context: JobContext,
        preflight_context: JobContext,
        runs_uri: str,
        training_uri: str,
        model_uri: str,
        checkpoint_uri: str | None,
        extra_channel_uris: Mapping[str, str],
        role: iam.IRole,
    ) -> None:
        super().__init__(scope, id)
        training = settings.training
        tuned = training.strategy == "tuning"
        self.parameters = {
            "input": Parameter("TrainingDataUri", "String", training_uri),
            "output": Parameter("ModelOutputUri", "String", model_uri),
            "instance_type": Parameter("TrainingInstanceType", "String", training.instance_type),
            # Tuning: each training job runs on one instance (settings refuse more).
            **(
                {}
                if tuned
                else {
                    "instance_count": Parameter(
                        "TrainingInstanceCount", "Integer", training.instance_count
                    )
                }
            ),
            "min_accuracy": Parameter("MinAccuracy", "Float", training.min_accuracy),
        }
        p = self.parameters
        values = TrainingValues(
            input_uri=p["input"].ref,
            output_uri=p["output"].ref,
            instance_type=p["instance_type"].ref,
            instance_count=1 if tuned else p["instance_count"].ref,
            min_accuracy=p["min_accuracy"].as_string(),
            checkpoint_uri=checkpoint_uri,
            extra_channel_uris=extra_channel_uris,
            execution_id=EXECUTION_ID,
        )
        jobs: tuple[Step, ...]
        if tuned:
            self.arguments = tuning_job_request(
                training, context=context, values=values, experiment_name=settings.experiment_name
            )
            self.register_arguments = register_best_request(
                training,
                context=context,
                instance_type=settings.preflight_instance_type,
                training_uri=p["input"].ref,
                best_job_name=best_training_job_name(TUNING_STEP),
                min_accuracy=p["min_accuracy"].as_string(),
                experiment_name=settings.experiment_name,
                execution_id=EXECUTION_ID,
            )
            jobs = (
                Step(
                    name=TUNING_STEP,
                    type="Tuning",
                    arguments=self.arguments,
                    description="Tune: several training jobs, each logs its run; none registers",
                ),
                # Reads the tuning step's best job name: a data dependency, so it runs after.
                Step(
                    name=REGISTER_BEST_STEP,
                    type="Processing",
                    arguments=self.register_arguments,
                    description="Evaluate the best job's model, register it; promote through "
                    "the quality gate",
                ),
            )
        else:
            self.arguments = training_job_request(
                training, context=context, values=values, experiment_name=settings.experiment_name
            )
            jobs = (
                Step(
                    name=TRAIN_STEP,
                    type="Training",
                    arguments=self.arguments,
                    description="Train, evaluate, register; promote through the quality gate",
                ),
            )
        # Every channel's prefix must hold an object: SageMaker refuses an empty one.
        self.preflight_arguments = preflight_request(
            context=preflight_context,
            instance_type=settings.preflight_instance_type,
            object_uris=[p["input"].ref, *extra_channel_uris.values()],
            runs_uri=runs_uri,
            region=Stack.of(self).region,
        )
        self.definition = PipelineDefinition(
            parameters=tuple(p.values()),
            steps=gated_steps(
                preflight=self.preflight_arguments,
                jobs=jobs,
                checks="that the training data prefixes hold an object",
            ),
        )
        self.resource, self.pipeline = add_pipeline(
            self,
            name=name,
            description=(
                f"Trains {settings.model_name} and promotes it in MLflow through the quality gate"
            ),
            role=role,
            definition_body=self.definition.render(self),
        )
        self.name = name
