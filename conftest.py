"""Repository-wide pytest plugins, for every test under the root (tests/, including the Lambda
tests in tests/lambda/).

tests.iam.recording records every AWS API call the runtime code makes in any test and fails
the test when its actor is not known to call it (see tests/iam/expected.py CODE_CALLS).
"""

pytest_plugins = ["tests.iam.recording"]
