"""Train a RandomForest on Iris under the SageMaker training contract and promote it in MLflow."""
