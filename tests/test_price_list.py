"""`make cost ARGS=--refresh-prices`: the price table refreshed from recorded Price List answers,
and the offline table pricing every priced resource the templates produce in every variant."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from tests.matrix import Variant, variant_params
from tools import price_list
from tools.cost import PRICE_TABLE, estimate, load_prices
from tools.synthesis import stacks_of

FIXTURES = Path(__file__).parent / "fixtures" / "price_list"
TODAY = dt.date(2026, 12, 1)


def _client() -> Any:
    # Static keys for the stubbed client only: Stubber answers every call, nothing is sent.
    return boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="stub", aws_secret_access_key="stub"
    )


def _document(query: price_list.Query, usd: float, sku: str) -> dict[str, Any]:
    """A GetProducts product in the aws_v1 shape: attributes from the filters, one on-demand
    price (S3 in two tiers, as the Price List lists tiered storage)."""
    attributes = {field: value for _, field, value in query.filters}
    tiers = [("0", "51200", usd), ("51200", "512000", usd * 0.95)] if query.service == "AmazonS3" else [("0", "Inf", usd)]  # fmt: skip
    dimensions = {
        f"{sku}.JRTCKXETXF.{i}": {
            "unit": "Hrs",
            "beginRange": begin,
            "endRange": end,
            "description": f"tier {i}",
            "pricePerUnit": {"USD": f"{price:.10f}"},
        }
        for i, (begin, end, price) in enumerate(tiers)
    }
    return {
        "product": {"productFamily": "x", "attributes": attributes, "sku": sku},
        "serviceCode": query.service,
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {"priceDimensions": dimensions}}},
        "version": "20261120183432",
        "publicationDate": "2026-11-20T18:34:32Z",
    }


def _page(documents: list[dict[str, Any]], token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "FormatVersion": "aws_v1",
        "PriceList": [json.dumps(d) for d in documents],
    }
    if token:
        page["NextToken"] = token
    return page


def _recorded(name: str) -> list[dict[str, Any]]:
    pages = json.loads((FIXTURES / name).read_text())["pages"]
    return [
        _page(p["PriceList"], p.get("NextToken")) for p in pages
    ]  # entries become JSON strings, as the API sends them


@pytest.fixture
def table(tmp_path: Path) -> Path:
    copy = tmp_path / "us-east-1.yaml"
    shutil.copy(PRICE_TABLE, copy)
    return copy


def _stub_every_key(stubber: Stubber, path: Path) -> dict[str, float]:
    """One answer per key, in table order; EC2 t4g.nano from the recorded two-page answer."""
    expected = {}
    for index, key in enumerate(yaml.safe_load(path.read_text())["prices"]):
        query = price_list.query(key, "us-east-1")
        if query is None:
            continue
        request = query.request()
        if key == "ec2.t4g.nano.hour":
            first, last = _recorded("ec2_t4g_nano.json")
            stubber.add_response("get_products", first, request)
            stubber.add_response("get_products", last, {**request, "NextToken": first["NextToken"]})
            expected[key] = 0.0042
            continue
        usd = round(0.001 * (index + 1), 6)
        stubber.add_response("get_products", _page([_document(query, usd, f"SKU{index}")]), request)
        expected[key] = usd
    return expected


def test_refresh_writes_every_price_with_its_date_and_source(table: Path) -> None:
    client = _client()
    with Stubber(client) as stubber:
        expected = _stub_every_key(stubber, table)
        price_list.refresh(table, client, TODAY)
        stubber.assert_no_pending_responses()
    refreshed = load_prices(table)
    assert refreshed.read == "2026-12" and refreshed.verified_online
    assert "Written on 2026-12-01" in table.read_text()
    for key, usd in expected.items():
        price = refreshed.prices[key]
        assert price.usd == pytest.approx(usd), key
        assert price.read == "2026-12"
        assert price.source.startswith("AWS Price List API (GetProducts), sku "), price.source
    assert refreshed.prices["ec2.t4g.nano.hour"].source.startswith(
        "AWS Price List API (GetProducts), sku 7DVZ8Q2FR7JB5N7S, per Hrs"
    )  # the on-demand term, not the reserved one on the same product
    # The serverless MLflow App is not sold by itself: its row keeps its own source.
    assert (
        refreshed.prices["sagemaker.mlflow_app.hour"]
        == load_prices().prices["sagemaker.mlflow_app.hour"]
    )
    assert refreshed.assumptions == load_prices().assumptions


def test_a_product_missing_from_the_price_list_is_one_clear_error(table: Path) -> None:
    before = table.read_text()
    client = _client()
    first_key = next(iter(yaml.safe_load(before)["prices"]))
    query = price_list.query(first_key, "us-east-1")
    assert query is not None
    with Stubber(client) as stubber:
        stubber.add_response("get_products", _page([]), query.request())
        with pytest.raises(price_list.PriceListError) as caught:
            price_list.refresh(table, client, TODAY)
    assert str(caught.value) == (
        "vpc.interface_endpoint.hour: no on-demand product in the AWS Price List for AmazonVPC "
        "regionCode=us-east-1, productFamily=VpcEndpoint, usagetype=VpcEndpoint-Hours"
    )
    assert table.read_text() == before  # nothing written


def test_two_products_with_different_prices_are_refused(table: Path) -> None:
    client = _client()
    query = price_list.query("vpc.interface_endpoint.hour", "us-east-1")
    assert query is not None
    page = _page([_document(query, 0.01, "A"), _document(query, 0.02, "B")])
    with Stubber(client) as stubber:
        stubber.add_response("get_products", page, query.request())
        with pytest.raises(price_list.PriceListError, match="2 products with different prices"):
            price_list.refresh(table, client, TODAY)


def test_an_api_error_is_one_line(table: Path) -> None:
    client = _client()
    with Stubber(client) as stubber:
        stubber.add_client_error("get_products", "AccessDeniedException", "not authorized")
        with pytest.raises(price_list.PriceListError, match=r"^GetProducts AmazonVPC: .*not auth"):
            price_list.refresh(table, client, TODAY)


def test_every_key_of_the_table_has_a_query() -> None:
    for key in load_prices().prices:
        price_list.query(key, "us-east-1")  # raises for a key without one


@pytest.mark.parametrize("variant", variant_params())
def test_the_offline_table_prices_every_resource_of_every_variant(variant: Variant) -> None:
    est = estimate(stacks_of(variant.app().assembly), load_prices())
    assert est.not_priced == (), est.not_priced
