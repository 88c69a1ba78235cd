"""Score Iris rows with the production model under the SageMaker Processing contract."""
