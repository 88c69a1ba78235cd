"""Every taggable resource of every stack carries Project, Environment and ManagedBy."""

from __future__ import annotations

from tests.synth import SynthesizedApp
from tools.synthesis import template_of


def test_every_taggable_resource_is_tagged(any_env: SynthesizedApp) -> None:
    expected = {
        "Project": "mlops",
        "Environment": any_env.settings.env_name,
        "ManagedBy": "cdk",
    }
    tagged = 0
    for stack in any_env.assembly.stacks:
        for logical_id, resource in template_of(stack)["Resources"].items():
            tags = resource.get("Properties", {}).get("Tags")
            if tags is None:
                continue
            found = {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else dict(tags)
            assert expected.items() <= found.items(), f"{stack.stack_name}/{logical_id}"
            tagged += 1
    assert tagged >= 3  # at least the key and the buckets


def test_stacks_are_named_project_env_unit(any_env: SynthesizedApp) -> None:
    env = any_env.settings.env_name
    for name in any_env.stack_names:
        project, stack_env, unit = name.split("-", 2)
        assert (project, stack_env) == ("mlops", env)
        assert unit
