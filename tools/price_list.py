"""Refresh the offline price table (pricing/<region>.yaml) from the AWS Price List API.

    .venv/bin/python -m tools.cost --refresh-prices     # or: make cost ARGS=--refresh-prices

Each key of the table names one product; :func:`query` turns it into a GetProducts request
(service code and filters). The refresh asks the Price List for each key, takes the on-demand
USD price of the one product that matches (its first tier), and writes the table back with the
date, the SKU and the API as the source. A key the Price List has no product for stops the
refresh with one line naming the key and the filters, and nothing is written.

The API: ``pricing`` client (endpoint us-east-1), ``GetProducts(ServiceCode, Filters,
FormatVersion="aws_v1", NextToken)``; each ``PriceList`` entry is a JSON document with
``product.attributes``, ``product.sku`` and ``terms.OnDemand.<offer>.priceDimensions.<rate>``
(``unit``, ``beginRange``, ``pricePerUnit.USD``).
https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html

The filters below follow the Price List's attribute names (regionCode, instanceType,
usagetype, ...); they are tested against recorded responses (tests/test_price_list.py), not
against the live API from this machine (no AWS account here): the first live refresh is the
check that each filter matches exactly one product, and a filter that does not stops it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

PRICE_LIST_REGION = "us-east-1"  # the Price List API answers from us-east-1 (and others)
SOURCE = "AWS Price List API (GetProducts)"


class PriceListError(Exception):
    """A refresh that cannot complete: one line naming the key and what is wrong."""


class PricingClient(Protocol):
    def get_products(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Query:
    """One GetProducts request: a service code and TERM_MATCH/CONTAINS filters."""

    service: str
    filters: tuple[tuple[str, str, str], ...]  # (type, field, value)

    def request(self) -> dict[str, Any]:
        return {
            "ServiceCode": self.service,
            "Filters": [{"Type": t, "Field": f, "Value": v} for t, f, v in self.filters],
            "FormatVersion": "aws_v1",
        }

    def __str__(self) -> str:
        return f"{self.service} " + ", ".join(f"{f}={v}" for _, f, v in self.filters)


def _eq(field: str, value: str) -> tuple[str, str, str]:
    return ("TERM_MATCH", field, value)


def _has(field: str, value: str) -> tuple[str, str, str]:
    return ("CONTAINS", field, value)


def query(key: str, region: str) -> Query | None:
    """The GetProducts request for a price key; None for a key the Price List does not sell
    (the serverless MLflow App bills nothing by itself: its row keeps its own source)."""
    where = _eq("regionCode", region)
    fixed: dict[str, Query] = {
        "vpc.interface_endpoint.hour": Query(
            "AmazonVPC",
            (where, _eq("productFamily", "VpcEndpoint"), _has("usagetype", "VpcEndpoint-Hours")),
        ),
        "vpc.nat_gateway.hour": Query(
            "AmazonEC2",
            (where, _eq("productFamily", "NAT Gateway"), _has("usagetype", "NatGateway-Hours")),
        ),
        "vpc.public_ipv4.hour": Query(
            "AmazonVPC", (where, _has("usagetype", "PublicIPv4:InUseAddress"))
        ),
        "ebs.gp3.gb_month": Query(
            "AmazonEC2", (where, _eq("volumeApiName", "gp3"), _eq("productFamily", "Storage"))
        ),
        "route53.hosted_zone.month": Query("AmazonRoute53", (_eq("usagetype", "HostedZone"),)),
        "elb.alb.hour": Query(
            "AWSELB",
            (
                where,
                _eq("productFamily", "Load Balancer-Application"),
                _has("usagetype", "LoadBalancerUsage"),
            ),
        ),
        "fargate.vcpu.hour": Query(
            "AmazonECS", (where, _has("usagetype", "Fargate-vCPU-Hours:perCPU"))
        ),
        "fargate.gb.hour": Query("AmazonECS", (where, _has("usagetype", "Fargate-GB-Hours"))),
        "aurora.serverless_v2.acu_hour": Query(
            "AmazonRDS",
            (
                where,
                _eq("databaseEngine", "Aurora PostgreSQL"),
                _has("usagetype", "Aurora:ServerlessV2Usage"),
            ),
        ),
        "aurora.storage.gb_month": Query(
            "AmazonRDS",
            (
                where,
                _eq("databaseEngine", "Aurora PostgreSQL"),
                _has("usagetype", "Aurora:StorageUsage"),
            ),
        ),
        "rds.gp3.gb_month": Query(
            "AmazonRDS",
            (
                where,
                _eq("databaseEngine", "MySQL"),
                _eq("volumeType", "General Purpose-GP3"),
                _eq("deploymentOption", "Single-AZ"),
                _eq("productFamily", "Database Storage"),
            ),
        ),
        "sagemaker.mlflow_metadata.gb_month": Query(
            "AmazonSageMaker", (where, _has("usagetype", "MLflow"), _has("usagetype", "Storage"))
        ),
        "sagemaker.ml_storage.gb_month": Query(
            "AmazonSageMaker", (where, _has("usagetype", "Train:VolumeUsage.gp2"))
        ),
        "efs.standard.gb_month": Query(
            "AmazonEFS",
            (
                where,
                _eq("storageClass", "General Purpose"),
                _has("usagetype", "TimedStorage-ByteHrs"),
            ),
        ),
        "kms.key.month": Query("awskms", (where, _has("usagetype", "KMS-Keys"))),
        "secretsmanager.secret.month": Query(
            "AWSSecretsManager", (where, _has("usagetype", "AWSSecretsManager-Secrets"))
        ),
        "s3.standard.gb_month": Query(
            "AmazonS3",
            (where, _eq("volumeType", "Standard"), _has("usagetype", "TimedStorage-ByteHrs")),
        ),
        "cloudwatch.alarm.month": Query(
            "AmazonCloudWatch", (where, _has("usagetype", "CW:AlarmMonitorUsage"))
        ),
    }
    if key in fixed:
        return fixed[key]
    if key == "sagemaker.mlflow_app.hour":
        return None
    if match := re.fullmatch(r"ec2\.(.+)\.hour", key):
        return Query(
            "AmazonEC2",
            (
                where,
                _eq("instanceType", match[1]),
                _eq("operatingSystem", "Linux"),
                _eq("tenancy", "Shared"),
                _eq("preInstalledSw", "NA"),
                _eq("capacitystatus", "Used"),
                _eq("licenseModel", "No License required"),
            ),
        )
    if match := re.fullmatch(r"rds\.(mysql|postgres)\.(.+)\.hour", key):
        engine = {"mysql": "MySQL", "postgres": "PostgreSQL"}[match[1]]
        return Query(
            "AmazonRDS",
            (
                where,
                _eq("instanceType", match[2]),
                _eq("databaseEngine", engine),
                _eq("deploymentOption", "Single-AZ"),
            ),
        )
    if match := re.fullmatch(r"sagemaker\.(training|processing)\.(.+)\.hour", key):
        component = {"training": "Train", "processing": "Processing"}[match[1]]
        return Query("AmazonSageMaker", (where, _has("usagetype", f"{component}:{match[2]}")))
    if match := re.fullmatch(r"sagemaker\.mlflow_tracking_server\.(Small|Medium|Large)\.hour", key):
        return Query(
            "AmazonSageMaker",
            (
                where,
                _has("usagetype", "MLflow"),
                _has("usagetype", match[1]),
            ),
        )
    raise PriceListError(f"price key {key!r} has no Price List query in tools/price_list.py")


@dataclass(frozen=True)
class Found:
    usd: float
    unit: str
    sku: str


def _products(client: PricingClient, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every product of a GetProducts request, following NextToken."""
    token: str | None = None
    while True:
        try:
            page = client.get_products(**request, **({"NextToken": token} if token else {}))
        except (BotoCoreError, ClientError) as err:
            raise PriceListError(f"GetProducts {request['ServiceCode']}: {err}") from None
        for text in page.get("PriceList", []):
            yield json.loads(text)
        token = page.get("NextToken")
        if not token:
            return


def _on_demand_first_tier(product: Mapping[str, Any]) -> tuple[float, str] | None:
    for offer in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in offer.get("priceDimensions", {}).values():
            if str(dimension.get("beginRange", "0")) in ("0", "0.0"):
                return float(dimension["pricePerUnit"]["USD"]), str(dimension.get("unit", ""))
    return None


def fetch(client: PricingClient, key: str, region: str) -> Found | None:
    """The one on-demand price the Price List holds for ``key`` (None: not sold there)."""
    wanted = query(key, region)
    if wanted is None:
        return None
    found: dict[str, Found] = {}
    for product in _products(client, wanted.request()):
        price = _on_demand_first_tier(product)
        if price is not None:
            sku = str(product.get("product", {}).get("sku", "?"))
            found[sku] = Found(price[0], price[1], sku)
    if not found:
        raise PriceListError(f"{key}: no on-demand product in the AWS Price List for {wanted}")
    prices = {f.usd for f in found.values()}
    if len(prices) > 1:
        skus = ", ".join(f"{f.sku}={f.usd:g}" for f in found.values())
        raise PriceListError(
            f"{key}: {len(found)} products with different prices for {wanted} ({skus})"
        )
    return next(iter(found.values()))


def refresh(path: Path, client: PricingClient, today: dt.date) -> dict[str, Any]:
    """Read the table at ``path``, price every key from the API, write it back; returns it."""
    table: dict[str, Any] = yaml.safe_load(path.read_text())
    region = str(table["region"])
    month = f"{today:%Y-%m}"
    updated = {}
    for key, entry in table["prices"].items():
        found = fetch(client, key, region)  # raises before anything is written
        if found is None:
            updated[key] = entry
            continue
        updated[key] = {
            **entry,
            "usd": found.usd,
            "source": f"{SOURCE}, sku {found.sku}, per {found.unit}, read {today.isoformat()}",
            "read": month,
        }
    table = {**table, "read": month, "verified_online": True, "prices": updated}
    header = (
        f"# On-demand list prices, {region}, USD, used by `make cost` (tools/cost.py).\n"
        f"# Written on {today.isoformat()} by `make cost ARGS=--refresh-prices` from the {SOURCE}\n"
        "# (tools/price_list.py). Keys the Price List does not sell keep their own source.\n"
    )
    path.write_text(header + yaml.safe_dump(table, sort_keys=False, width=100))
    return table


def pricing_client() -> PricingClient:
    """A boto3 ``pricing`` client, or one clear error when there are no credentials."""
    session = boto3.Session()
    try:
        credentials = session.get_credentials()
    except BotoCoreError as err:
        credentials, reason = None, f" ({err})"
    else:
        reason = ""
    if credentials is None:
        raise PriceListError(
            f"no AWS credentials{reason}: --refresh-prices reads the AWS Price List API (any "
            "account, pricing:GetProducts); the offline table in pricing/ stays as it is"
        )
    client: PricingClient = session.client("pricing", region_name=PRICE_LIST_REGION)
    return client
