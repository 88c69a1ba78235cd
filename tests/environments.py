"""The environments the tests cover (cdk.json's ``environments``), in a module that imports nothing.

tests/conftest.py parametrizes fixtures with them, and pytest-xdist's controller imports
conftest.py before it starts the workers. Through tests/synth.py that would load aws-cdk-lib and
start its Node process there (about 2 s before any worker starts, in a process that runs no
test); tests/unit/test_conftest_imports.py keeps the controller's imports light.
"""

ENVIRONMENTS = ("dev", "staging", "prod")
