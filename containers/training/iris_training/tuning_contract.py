"""What the training pipeline's tuning step and the training container agree on.

One definition, read by the container and by ``mlops_cdk`` (loaded by path, like
``iris_inference/preflight_contract.py``): the objective metric the container prints and the
tuning job parses from its log, the static hyperparameter that keeps a tuning job's training
jobs from registering, the MLflow run tag that finds the best job's run, and the entry point of
the step that gates and registers only the best job's model.
"""

from __future__ import annotations

# SageMaker automatic model tuning reads a custom container's objective from its log with a
# regex (HyperParameterTuningJobObjective + MetricDefinitions of the training job definition).
OBJECTIVE_METRIC = "validation:accuracy"
OBJECTIVE_REGEX = r"validation:accuracy=([0-9]*\.?[0-9]+)"
OBJECTIVE_TYPE = "Maximize"

# Static hyperparameter of every training job the tuning step starts: "false" = log the run,
# never register or move an alias (only the best job's model is registered, by the step below).
REGISTER_HYPERPARAMETER = "register"

# Tag on each MLflow run with the SageMaker training job that logged it.
JOB_NAME_TAG = "sagemaker.training_job_name"

# Hyperparameters a tuning range may name (integer ranges: n_estimators, max_depth,
# min_samples_leaf; categorical: max_features, criterion).
TUNABLE_INTEGER = ("n_estimators", "max_depth", "min_samples_leaf")
TUNABLE_CATEGORICAL = ("max_features", "criterion")

# The step after tuning: a processing job on the training image that evaluates the best
# training job's model on the held-out rows, applies the quality gate, registers it and moves
# the alias. Arguments: --training-job-name NAME (the tuning step's BestTrainingJob) and
# --min-accuracy X; the data is mounted at REGISTER_DATA_DIR.
REGISTER_BEST_ENTRYPOINT = ("python", "-m", "iris_training.register_best")
REGISTER_DATA_DIR = "/opt/ml/processing/input/train"
