"""What the sharded inference pipeline and the inference container agree on.

One definition, read by the container and by ``mlops_cdk`` (loaded by path, like
``preflight_contract.py``). With ``pipelines.inference.instance_count`` N > 1 the score step
runs on N instances over the input distributed ``ShardedByS3Key``; each instance scores its
files into the run's staging location; one commit step then publishes the date partition and
merges the drift statistics of all shards.
"""

from __future__ import annotations

# "1" on the sharded score step: write this host's shard under STAGING_DIR/<current host>/
# instead of publishing the partition. The host comes from /opt/ml/config/resourceconfig.json.
SHARDED_ENV = "INFERENCE_SHARDED"
STAGING_DIR = "/opt/ml/processing/staging"

# One instance (N = 1) publishes the partition itself, in the same order as the commit step,
# to this URI (the pipeline's output prefix); SageMaker's end-of-job upload of a directory
# orders nothing and never deletes the previous run's files.
OUTPUT_URI_ENV = "OUTPUT_URI"

# The run's staging location: <output uri>/_staging/<pipeline execution id>/ (readers skip
# names starting with "_"). The score step's output uploads STAGING_DIR there; the commit
# step downloads it to COMMIT_INPUT_DIR.
STAGING_PREFIX = "_staging"
COMMIT_INPUT_DIR = "/opt/ml/processing/input/staging"

# The commit step: a one-instance processing job on the inference image. Arguments:
# --expected-shards N --output-uri <output uri>; it reads every shard from COMMIT_INPUT_DIR
# and writes the partition <output uri>/date=YYYY-MM-DD/ itself, manifest last.
COMMIT_ENTRYPOINT = ("python", "-m", "iris_inference.commit")
MANIFEST_FILE = "_manifest.json"
SUCCESS_FILE = "_SUCCESS"
