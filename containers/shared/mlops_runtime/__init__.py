"""Runtime code both job images carry (containers/training, containers/inference): the error
type a caller can fix, the MLflow client settings and credentials, and the CLIs' logging.

Built into each image beside its own package (one Docker build context, ``containers/``)."""
