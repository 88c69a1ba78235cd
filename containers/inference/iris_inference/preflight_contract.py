"""What the preflight step writes and what the pipeline definition reads: one definition.

The standard library only: the CDK app loads this file by path at synth (it builds the
pipelines' PropertyFile, JsonGet and the step's output from it), and the preflight entry point
(:mod:`iris_inference.preflight`) writes exactly this file with these keys.
"""

from __future__ import annotations

# The step's processing output: SageMaker uploads LOCAL_DIR to S3 when the job ends, and the
# pipeline indexes FILE_NAME in that output as the property file PROPERTY_FILE.
OUTPUT_NAME = "decision"
LOCAL_DIR = "/opt/ml/processing/decision"
FILE_NAME = "decision.json"
PROPERTY_FILE = "Decision"

# Keys of the JSON object in FILE_NAME.
READY = "ready"  # true: run the job(s); false: the execution ends here, successfully
REASON = "reason"  # one line: why not ready (or what was found when ready)
CHECKS = "checks"  # one entry per check: {"check": ..., "ok": ..., "detail": ...}

# How the step starts it inside the inference image (whose ENTRYPOINT is the scoring job).
MODULE = "iris_inference.preflight"
ENTRYPOINT = ("python", "-m", MODULE)

# Command-line options the definition passes (ContainerArguments).
OBJECTS_FLAG = "--require-objects"  # repeatable: an s3://bucket/prefix that must hold an object
ALIAS_FLAG = "--require-alias"  # check models:/MODEL_NAME@MODEL_ALIAS exists
OUTPUT_FLAG = "--output-dir"
REGION_FLAG = "--region"
