"""`python -m iris_training [train]`: the training container's entry point."""

# skops (the format MLflow saves the model in) builds its trusted-type lists when imported,
# looking up each numpy and scipy ufunc's module by walking sys.modules in import order
# (skops/io/_utils.py whichmodule). Imported before MLflow, pandas and the rest, that walk is
# short: the process starts about 1 s sooner.
import skops.io  # noqa: F401

from iris_training.cli import main

raise SystemExit(main())
