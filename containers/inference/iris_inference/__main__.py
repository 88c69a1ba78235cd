"""`python -m iris_inference [options]`: the inference container's entry point."""

from iris_inference.cli import main

raise SystemExit(main())
