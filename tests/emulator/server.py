"""moto's server with the CloudFormation adapters this app's deploy needs (moto 5.2.5 only).

Run as ``python -m tests.emulator.server PORT``: it asserts the installed moto version,
installs the adapters below into moto's CloudFormation engine and serves every AWS API on
``127.0.0.1:PORT``. Each adapter stands in for one behaviour moto 5.2.5 lacks; the
behaviour of real CloudFormation it imitates is in its docstring.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

MOTO_VERSION = "5.2.5"

# Resource types moto 5.2.5 has no CloudFormation model for. moto skips them with a
# warning, and a Fn::GetAtt on one fails the stack; here each gets a placeholder that
# creates nothing and answers Ref/GetAtt with a made-up name. Types created in moto's own
# backends instead (so boto3 can read them back) are in ADAPTERS, not here. A type that
# is neither here nor in moto's model map also gets the placeholder and is logged.
SKIPPED_TYPES = {
    "AWS::CDK::Metadata": "CDK's version report, no resource",
    "AWS::CloudWatch::Alarm": "no moto model",
    "AWS::S3::BucketPolicy": "no moto model: the TLS-only policies are checked in synth tests",
    "AWS::SNS::TopicPolicy": "no moto model",
    "AWS::SQS::QueuePolicy": "no moto model",
    "AWS::EC2::SecurityGroupEgress": "no moto model",
    "AWS::SageMaker::Domain": "no moto model",
    "AWS::SageMaker::UserProfile": "no moto model",
    "AWS::SageMaker::StudioLifecycleConfig": "no moto model",
    "AWS::SageMaker::MlflowTrackingServer": "no moto model",
    "AWS::SageMaker::MlflowApp": "no moto model",
}


def _check_version() -> None:
    installed = version("moto")
    if installed != MOTO_VERSION:
        sys.exit(
            f"tests/emulator/server.py: moto=={installed} is installed, the adapters are written "
            f"for moto=={MOTO_VERSION}: re-measure each adapter's gap and update MOTO_VERSION"
        )


def install() -> None:
    """Route CloudFormation resource types to the adapters (moto's parsing type lookup)."""
    # Imported here, after the version check: the adapters import moto's internals.
    from moto.cloudformation import parsing  # noqa: PLC0415

    from tests.emulator import adapters  # noqa: PLC0415

    original = parsing.resource_class_from_type
    models = adapters.ADAPTERS
    unknown: set[str] = set()

    def resource_class_from_type(resource_type: str) -> Any:
        if resource_type.startswith("Custom::") or resource_type == (
            "AWS::CloudFormation::CustomResource"
        ):
            return adapters.AnsweredCustomResource
        if resource_type in models:
            return models[resource_type]
        if resource_type in SKIPPED_TYPES or resource_type not in parsing.get_model_map():
            if resource_type not in SKIPPED_TYPES and resource_type not in unknown:
                unknown.add(resource_type)
                print(f"emulator: no model for {resource_type}: placeholder", file=sys.stderr)
            return adapters.Placeholder
        return original(resource_type)

    parsing.resource_class_from_type = resource_class_from_type
    _forget_deleted_resources()


def _forget_deleted_resources() -> None:
    """A deleted stack keeps its name, status and events, but no resources or outputs.

    moto 5.2.5 keeps a deleted stack's lazy resource map: the CLI's DescribeStacks after the
    delete evaluates the outputs again, which re-creates every resource they reference (a
    fresh bucket with a new name, ...). CloudFormation forgets them; so does this.
    """
    from moto.cloudformation.models import Stack  # noqa: PLC0415

    original_delete = Stack.delete

    def delete(self: Stack) -> None:
        original_delete(self)
        self.resource_map._resource_json_map = {}
        self.output_map._output_json_map = {}
        self.output_map._parsed_outputs = {}

    Stack.delete = delete  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.exit("usage: python -m tests.emulator.server PORT")
    _check_version()
    install()
    from moto.server import main as moto_main  # noqa: PLC0415

    moto_main(["--host", "127.0.0.1", "--port", args[0]])


if __name__ == "__main__":
    main()
