"""Whole-class check: a self-hosted tracking database survives, or goes, with what it needs.

Over every variant with a database (fargate: Aurora PostgreSQL; ec2: RDS MySQL):

- A database with deletion protection has ``DeletionPolicy: Retain``. CloudFormation applies
  the DeletionPolicy also when it rolls back a failed create; with ``Delete`` or ``Snapshot``
  it calls DeleteDBCluster/DeleteDBInstance, which deletion protection refuses, and the
  rollback ends in ROLLBACK_FAILED (docs/tracking.md, "A failed first deploy in prod").
- Whatever a kept database (``Retain`` or ``Snapshot``) needs to be used again is kept with
  it: its generated master secret (a snapshot restored without its credentials is locked),
  its subnet group and security groups (still in use by the kept database, so deleting them
  would fail the stack's deletion or a rollback).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.matrix import VARIANTS, Variant, variant_params
from tools.cdk_json import ENVIRONMENTS

WITH_DATABASE = tuple(v for v in VARIANTS if v.mode in ("fargate", "ec2"))
KEPT = ("Retain", "Snapshot")


def _databases(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """DB clusters and stand-alone DB instances (a cluster's instances hold no data)."""
    return {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::RDS::DBCluster"
        or (
            resource["Type"] == "AWS::RDS::DBInstance"
            and "DBClusterIdentifier" not in resource["Properties"]
        )
    }


def _ref(value: Any) -> str | None:
    """The logical ID a ``Ref`` or ``Fn::GetAtt`` names, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _needs(resources: dict[str, Any], database_id: str) -> dict[str, str]:
    """What the database needs to be used again: logical ID -> why."""
    database = resources[database_id]["Properties"]
    needs: dict[str, str] = {}
    for resource_id, resource in resources.items():
        if (
            resource["Type"] == "AWS::SecretsManager::SecretTargetAttachment"
            and _ref(resource["Properties"]["TargetId"]) == database_id
        ):
            secret = _ref(resource["Properties"]["SecretId"])
            assert secret is not None
            needs[secret] = "master secret"
        if (
            resource["Type"] == "AWS::RDS::DBInstance"
            and _ref(resource["Properties"].get("DBClusterIdentifier")) == database_id
        ):
            needs[resource_id] = "cluster instance"
    subnet_group = _ref(database.get("DBSubnetGroupName"))
    if subnet_group in resources:
        needs[subnet_group] = "subnet group"
    for group in database.get("VpcSecurityGroupIds", database.get("VPCSecurityGroups", [])):
        group_id = _ref(group)
        if group_id in resources:
            needs[group_id] = "security group"
    return needs


@pytest.mark.parametrize("variant", variant_params(WITH_DATABASE))
def test_a_protected_database_is_retained_so_a_failed_create_can_roll_back(
    variant: Variant,
) -> None:
    resources = variant.app().template_json("tracking")["Resources"]
    databases = _databases(resources)
    assert databases, "no database in a self-hosted tracking mode"
    for database_id, database in databases.items():
        if database["Properties"].get("DeletionProtection") is True:
            policies = (database.get("DeletionPolicy"), database.get("UpdateReplacePolicy"))
            assert policies == ("Retain", "Retain"), (
                f"{database_id}: deletion protection with DeletionPolicy/UpdateReplacePolicy "
                f"{policies}: a failed create's rollback cannot delete it (ROLLBACK_FAILED)"
            )


@pytest.mark.parametrize("variant", variant_params(WITH_DATABASE))
def test_a_kept_database_keeps_its_secret_subnet_group_and_security_groups(
    variant: Variant,
) -> None:
    resources = variant.app().template_json("tracking")["Resources"]
    for database_id, database in _databases(resources).items():
        needs = _needs(resources, database_id)
        assert "master secret" in needs.values(), f"{database_id}: no generated master secret"
        kept = database.get("DeletionPolicy", "Delete") in KEPT
        for needed_id, why in needs.items():
            policy = resources[needed_id].get("DeletionPolicy", "Delete")
            if kept:
                assert policy == "Retain", (
                    f"{database_id} is kept ({database['DeletionPolicy']}) but its {why} "
                    f"{needed_id} has DeletionPolicy {policy}"
                )
            else:
                assert policy == "Delete", f"{needed_id} ({why}) outlives its database"


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("mode", ["fargate", "ec2"])
def test_only_prod_protects_and_keeps_its_database(env: str, mode: str) -> None:
    (variant,) = [
        v for v in WITH_DATABASE if (v.env, v.mode, v.form, v.extra) == (env, mode, "agnostic", ())
    ]
    resources = variant.app().template_json("tracking")["Resources"]
    (database,) = _databases(resources).values()
    protected = env == "prod"
    assert database["Properties"]["DeletionProtection"] is protected
    assert database["DeletionPolicy"] == ("Retain" if protected else "Delete")
