"""Developer tools run from the repository root (`make cost`, `make diagram`, `make docs`), not part of the app."""
