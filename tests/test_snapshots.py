"""Snapshot of every stack template in every environment: reviewers see each change in a diff.

Asset hashes change with any byte of bundled code, so they are masked; everything else,
including every logical ID of a stateful resource, is compared exactly.
Update deliberately with `pytest --snapshot-update` and read the diff.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.synth import SynthesizedApp
from tools.synthesis import template_of

_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def mask_asset_hashes(template: dict[str, Any]) -> Any:
    return json.loads(_ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True)))


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_every_stack_template_matches_its_snapshot(
    any_env: SynthesizedApp, snapshot_json: SnapshotAssertion
) -> None:
    for stack in any_env.assembly.stacks:
        assert mask_asset_hashes(template_of(stack)) == snapshot_json(name=stack.stack_name)


def test_a_template_read_from_the_assembly_is_the_one_cx_api_gives(any_env: SynthesizedApp) -> None:
    # The tests read templates from disk (tools.synthesis.template_of), not through jsii.
    for stack in any_env.assembly.stacks:
        assert template_of(stack) == stack.template, stack.stack_name
