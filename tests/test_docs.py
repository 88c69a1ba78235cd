"""The README stays true: its settings reference is generated from mlops_cdk.settings and cdk.json."""

from __future__ import annotations

from mlops_cdk.settings import Settings
from tools.settings_reference import README, embedded, render, rows


def test_readme_settings_reference_is_current() -> None:
    assert embedded(README.read_text()) == render(), "run `make docs` and commit README.md"


def test_every_setting_is_described() -> None:
    undocumented = [key for key, _, _, meaning in rows(Settings) if not meaning.strip()]
    assert undocumented == []
