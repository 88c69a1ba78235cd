"""`python -m iris_training [train]`: the training container's entry point."""

from iris_training.cli import main

raise SystemExit(main())
