"""Updates: no tag or upstream change forces a replacement CloudFormation cannot do.

For every variant (env x tracking mode x form, egress variants):

* cross-stack references are strong: every value a stack reads from another is an
  ``Fn::ImportValue`` of the producer's ``Export`` (no ``Fn::GetStackOutput``), so
  CloudFormation refuses to change a value that a consumer still imports instead of
  leaving the consumer with the old value (README "Updates and references");
* a tag change (``-c tags=...``) replaces no resource at all, and in particular none whose
  name is written in the template;
* an upstream change (any resource another stack imports from, and that an update may
  replace: a KMS key, a bucket, a VPC or subnet, a load balancer, a secret) replaces no
  resource whose name is fixed, in the consumer or anywhere the change propagates.

How replacements are found: tests/replacement.py (create-only properties from cfn-lint's
bundled resource provider schemas).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from tests.conftest import app_key, synthesized_stacks
from tests.matrix import VARIANTS, Variant, variant_params
from tests.replacement import (
    Deployment,
    create_only,
    name_properties,
    refused_exports,
    replaceable_exports,
    replacements,
)
from tests.synth import SynthesizedApp, synthesize
from tools import cdk_json
from tools.synthesis import default_mode

# Added tags, and an attempt to change one the app fixes (it must win: Project,
# Environment and ManagedBy are the app's own).
CHANGED_TAGS = {"CostCenter": "cc-1234", "Owner": "ml-platform", "ManagedBy": "someone-else"}


def _intrinsics(value: Any, name: str) -> Iterator[Any]:
    """The arguments of every ``{name: arg}`` inside a template value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == name:
                yield inner
            yield from _intrinsics(inner, name)
    elif isinstance(value, list):
        for inner in value:
            yield from _intrinsics(inner, name)


def test_cross_stack_references_are_strong_by_choice() -> None:
    assert cdk_json.context()["@aws-cdk/core:defaultCrossStackReferences"] == "strong"


def reference_problems(app: SynthesizedApp) -> list[str]:
    """Weak references, and imports that are not an export of a stack the importer needs."""
    deployment = Deployment.of(app.assembly)
    problems: list[str] = []
    for stack in app.assembly.stacks:
        importer = stack.stack_name  # read once: each read of a jsii property crosses to Node
        template = deployment.templates[importer]
        weak = list(_intrinsics(template, "Fn::GetStackOutput"))
        if weak:
            problems.append(f"{importer}: weak reference Fn::GetStackOutput {weak[0]}")
        depends_on = {d.id for d in stack.dependencies}
        for name in _intrinsics(template, "Fn::ImportValue"):
            if not isinstance(name, str) or name not in deployment.exports:
                problems.append(f"{importer}: imports {name!r}, which no stack exports")
                continue
            producer = deployment.exports[name][0]
            if producer == importer or producer not in depends_on:
                problems.append(
                    f"{importer}: imports {name!r} from {producer}, which it does not depend on"
                )
    return problems


@pytest.mark.parametrize("variant", variant_params())
def test_every_cross_stack_value_is_an_import_of_the_producers_export(variant: Variant) -> None:
    problems = reference_problems(variant.app())
    assert not problems, "\n".join(problems)


def test_the_reference_check_finds_weak_references() -> None:
    weak = synthesize("dev", {"@aws-cdk/core:defaultCrossStackReferences": "weak"})
    assert any("weak reference Fn::GetStackOutput" in p for p in reference_problems(weak))


@pytest.mark.parametrize("variant", variant_params())
def test_a_tag_change_replaces_nothing(variant: Variant) -> None:
    before = Deployment.of(variant.app().assembly)
    overrides = {**variant.overrides, "tags": json.dumps(CHANGED_TAGS)}
    retagged = synthesize(variant.env, overrides, form=variant.form, checks=False)
    after = Deployment.of(retagged.assembly)
    # Same resources (a new logical id would be a delete and a create under the same name)
    added = {a for a, _ in after.resources()} ^ {a for a, _ in before.resources()}
    assert not added, f"a tag change adds or removes resources: {sorted(added)}"
    changes = replacements(before, after)
    fixed = [c.describe() for c in changes if c.fixed_name]
    assert not fixed, "a tag change replaces fixed-name resources:\n" + "\n".join(fixed)
    replaced = [c.describe() for c in changes]
    assert not replaced, "a tag change replaces resources:\n" + "\n".join(replaced)


@pytest.mark.parametrize("variant", variant_params())
def test_an_upstream_change_replaces_no_fixed_name_resource(variant: Variant) -> None:
    deployment = Deployment.of(variant.app().assembly)
    upstream = replaceable_exports(deployment)
    changes = replacements(deployment, deployment, upstream)
    fixed = [c.describe() for c in changes if c.fixed_name]
    assert not fixed, (
        f"replacing what other stacks import ({', '.join('/'.join(a) for a in sorted(upstream))}) "
        "replaces fixed-name resources:\n" + "\n".join(fixed)
    )


# Switching tracking.mode (docs/migration.md) deletes the tracking stack's exports that the
# pipelines and Studio stacks import: CloudFormation refuses that. README "Updates and
# references" gives the order that works; these tests replay it on the templates.
REFERENCES = "@aws-cdk/core:defaultCrossStackReferences"
MODE_SWITCHES = [("prod", "fargate", "serverless"), ("staging", "managed", "ec2")]


def _deployment(env: str, mode: str, references: str = "strong") -> Deployment:
    overrides = {} if mode == default_mode(env) else {"tracking.mode": mode}
    if references == "strong":  # as cdk.json has it: the variant's app, as its group stored it
        stacks = synthesized_stacks(app_key(env, "deployed", **overrides))
        return Deployment({stack.name: stack.template for stack in stacks})
    overrides[REFERENCES] = references
    app = synthesize(env, overrides, form="deployed", checks=False)
    return Deployment.of(app.assembly)


@pytest.mark.after_groups  # both modes' deployed apps are variants with groups of their own
@pytest.mark.parametrize("env, old, new", MODE_SWITCHES)
def test_a_plain_deploy_cannot_switch_the_tracking_mode(env: str, old: str, new: str) -> None:
    refused = refused_exports(_deployment(env, old), _deployment(env, new))
    assert refused, "expected CloudFormation to refuse deleting exports still imported"
    producers = {problem.split(" ", 1)[0] for problem in refused}
    assert producers == {f"mlops-{env}-tracking"}, refused


@pytest.mark.after_groups
@pytest.mark.parametrize("env, old, new", MODE_SWITCHES)
def test_the_documented_mode_switch_deploys_step_by_step(env: str, old: str, new: str) -> None:
    steps = [
        ("deployed", _deployment(env, old)),
        (f"{REFERENCES}=both", _deployment(env, old, "both")),
        (f"tracking.mode={new} {REFERENCES}=both", _deployment(env, new, "both")),
        (f"tracking.mode={new}", _deployment(env, new)),
    ]
    for (_, before), (label, after) in pairwise(steps):
        assert refused_exports(before, after) == [], f"cdk deploy --all -c {label}"


# The check itself: it reads real schemas, and it finds what it is for.


def test_the_schemas_list_create_only_names() -> None:
    assert "/properties/TrackingServerName" in create_only("AWS::SageMaker::MlflowTrackingServer")
    assert "/properties/Tags" in create_only("AWS::SageMaker::StudioLifecycleConfig")
    assert name_properties("AWS::SageMaker::Domain") == ("/properties/DomainName",)
    assert name_properties("AWS::SageMaker::MlflowApp") == ("/properties/Name",)
    assert name_properties("AWS::S3::BucketPolicy") == ("/properties/Bucket",)


def _templates(**stacks: dict[str, Any]) -> Deployment:
    return Deployment(stacks)


PRODUCER = {
    "Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": {}}},
    "Outputs": {
        "KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}, "Export": {"Name": "p:KeyArn"}}
    },
}


def _consumer(name: Any) -> dict[str, Any]:
    domain = {"DomainName": name, "KmsKeyId": {"Fn::ImportValue": "p:KeyArn"}}
    return {"Resources": {"Domain": {"Type": "AWS::SageMaker::Domain", "Properties": domain}}}


def test_an_import_into_a_fixed_name_create_only_property_fails() -> None:
    deployment = _templates(p=PRODUCER, c=_consumer("studio"))
    assert replaceable_exports(deployment) == {("p", "Key")}
    changes = replacements(deployment, deployment, replaceable_exports(deployment))
    assert [(c.address, c.pointer, c.fixed_name) for c in changes] == [
        (("c", "Domain"), "/properties/KmsKeyId", True)
    ]
    assert 'c/Domain (AWS::SageMaker::Domain, DomainName="studio")' in changes[0].describe()


def test_a_name_that_follows_the_upstream_value_may_be_replaced() -> None:
    name = {"Fn::Join": ["-", ["studio", {"Fn::ImportValue": "p:KeyArn"}]]}
    deployment = _templates(p=PRODUCER, c=_consumer(name))
    changes = replacements(deployment, deployment, replaceable_exports(deployment))
    assert [(c.address, c.fixed_name) for c in changes] == [(("c", "Domain"), False)]


def test_create_only_tags_on_a_fixed_name_resource_fail() -> None:
    def config(tags: list[dict[str, str]]) -> dict[str, Any]:
        properties = {"StudioLifecycleConfigName": "lc", "Tags": tags}
        resource = {"Type": "AWS::SageMaker::StudioLifecycleConfig", "Properties": properties}
        return {"Resources": {"Config": resource}}

    before = _templates(s=config([{"Key": "Project", "Value": "mlops"}]))
    after = _templates(s=config([{"Key": "Owner", "Value": "x"}]))
    assert [(c.pointer, c.fixed_name) for c in replacements(before, after)] == [
        ("/properties/Tags", True)
    ]


def test_replacements_propagate_inside_a_stack_and_across_stacks() -> None:
    producer = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        },
        "Outputs": {"S": {"Value": {"Ref": "Subnet"}, "Export": {"Name": "p:S"}}},
    }
    group = {"GroupName": "fixed", "GroupDescription": "d", "VpcId": {"Fn::ImportValue": "p:S"}}
    consumer = {"Resources": {"Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": group}}}
    before = _templates(p=producer, c=consumer)
    changed = json.loads(json.dumps(producer))
    changed["Resources"]["Vpc"]["Properties"]["CidrBlock"] = "10.1.0.0/16"
    after = _templates(p=changed, c=consumer)
    assert [(c.address, c.fixed_name) for c in replacements(before, after)] == [
        (("p", "Vpc"), False),
        (("p", "Subnet"), False),
        (("c", "Sg"), True),
    ]


def test_the_matrix_has_fixed_name_resources_to_check() -> None:
    """The check is not vacuous: staging names its pipelines and its tracking server."""
    staging = next(v for v in VARIANTS if v.id == "staging-managed-deployed")
    fixed = [
        address
        for address, resource in Deployment.of(staging.app().assembly).resources()
        if any(
            p.endswith("Name") and p.removeprefix("/properties/") in resource.get("Properties", {})
            for p in name_properties(resource["Type"])
        )
    ]
    assert len(fixed) >= 4, fixed
