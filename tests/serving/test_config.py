"""``slipway serve`` arguments as endpoint specs: names, canary routes, shadows, and a clear
error for each kind of mistake."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from slipway.exceptions import InvalidParameterValue
from slipway.serving.batching import BatchConfig
from slipway.serving.config import EndpointSpec, build_endpoints, parse_serve_args

from ._models import ServingModels, features


def parse(
    uri: str | None = None,
    models: Sequence[str] = (),
    routes: Sequence[str] = (),
    shadow: str | None = None,
    sticky_header: str | None = None,
) -> list[EndpointSpec]:
    return parse_serve_args(uri, models, routes, shadow, sticky_header)


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("models:/iris@champion", "iris"),
        ("models:/iris/3", "iris"),
        ("models:/iris/latest", "iris"),
        ("models:/iris/Production", "iris"),
        ("runs:/abc123/model", "model"),
        ("/srv/models/iris", "model"),
        ("s3://bucket/iris", "model"),
    ],
)
def test_a_positional_uri_serves_under_its_registered_name(uri: str, name: str) -> None:
    assert parse(uri) == [EndpointSpec(name, [(uri, 1.0)])]


def test_models_and_routes_keep_their_order_and_weights_are_normalised() -> None:
    specs = parse(
        "models:/iris@champion",
        models=["wine=models:/wine/2", " fraud = /srv/fraud "],
        routes=["churn=models:/churn@champion:90, models:/churn@challenger:10"],
    )
    assert specs == [
        EndpointSpec("iris", [("models:/iris@champion", 1.0)]),
        EndpointSpec("wine", [("models:/wine/2", 1.0)]),
        EndpointSpec("fraud", [("/srv/fraud", 1.0)]),
        EndpointSpec("churn", [("models:/churn@champion", 0.9), ("models:/churn@challenger", 0.1)]),
    ]


@pytest.mark.parametrize("weights", [("9", "1"), ("0.9", "0.1"), ("900", "100"), ("4.5", "0.5")])
def test_weights_are_shares_of_their_sum(weights: tuple[str, str]) -> None:
    a, b = weights
    [spec] = parse(routes=[f"m=models:/m/1:{a},models:/m/2:{b}"])
    assert [w for _, w in spec.routes] == pytest.approx([0.9, 0.1])


def test_a_route_uri_may_hold_colons_and_ports() -> None:
    [spec] = parse(routes=["m=s3://bucket/a:b/model:3,file:///srv/m:1"])
    assert spec.routes == [("s3://bucket/a:b/model", 0.75), ("file:///srv/m", 0.25)]


def test_a_shadow_goes_to_the_only_endpoint_or_the_one_named() -> None:
    [spec] = parse("models:/iris@champion", shadow="models:/iris/9")
    assert spec.shadow == "models:/iris/9"
    specs = parse(
        models=["iris=models:/iris@champion", "wine=models:/wine/1"],
        shadow="wine=models:/wine/2",
    )
    assert [(s.name, s.shadow) for s in specs] == [("iris", None), ("wine", "models:/wine/2")]


def test_the_sticky_header_applies_to_every_endpoint() -> None:
    specs = parse(
        models=["a=models:/a/1"],
        routes=["b=models:/b/1:1,models:/b/2:1"],
        sticky_header="X-User-Id",
    )
    assert [s.sticky_header for s in specs] == ["X-User-Id", "X-User-Id"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "Nothing to serve"),
        ({"shadow": "models:/iris/9"}, "needs a model to shadow"),
        ({"uri": "  "}, "empty"),
        ({"uri": "models:/iris@"}, "Invalid models URI"),
        ({"models": ["models:/iris/1"]}, "expected NAME=URI"),
        ({"models": ["iris="]}, "expected NAME=URI"),
        ({"models": ["=models:/iris/1"]}, "expected NAME=URI"),
        ({"models": ["my/iris=models:/iris/1"]}, "the name 'my/iris'"),
        ({"models": ["iris=models:/iris/1", "iris=models:/iris/2"]}, "'iris' is served twice"),
        ({"uri": "models:/iris/1", "models": ["iris=models:/iris/2"]}, "served twice"),
        ({"routes": ["iris"]}, "expected NAME=URI:WEIGHT"),
        ({"routes": ["iris="]}, "expected NAME=URI:WEIGHT"),
        ({"routes": ["iris=models:/iris/1:90,"]}, "needs the form URI:WEIGHT"),
        ({"routes": ["iris=/srv/iris"]}, "needs the form URI:WEIGHT"),
        ({"routes": ["iris=models:/iris@champion"]}, "not a weight"),
        ({"routes": ["iris=models:/iris/1:0,models:/iris/2:10"]}, "positive number, not 0"),
        ({"routes": ["iris=models:/iris/1:-5,models:/iris/2:10"]}, "positive number, not -5"),
        ({"routes": ["iris=models:/iris/1:nan"]}, "positive number, not nan"),
        ({"routes": ["iris=models:/iris/1:inf"]}, "positive number, not inf"),
        ({"routes": ["iris=models:/iris/1:1,models:/iris/1:2"]}, "same URI twice"),
        (
            {"models": ["a=models:/a/1", "b=models:/b/1"], "shadow": "models:/a/2"},
            "say which one with NAME=URI",
        ),
        ({"uri": "models:/a/1", "shadow": "b=models:/b/2"}, "no model is served as 'b'"),
        ({"uri": "models:/a/1", "shadow": "models:/a/1"}, "also a route"),
        ({"uri": "models:/a/1", "shadow": "a= "}, "empty"),
        ({"uri": "models:/a/1", "sticky_header": "x user"}, "not a header name"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterValue, match=match):
        parse(**kwargs)  # type: ignore[arg-type]


def test_build_endpoints_refuses_nothing_and_duplicates() -> None:
    with pytest.raises(InvalidParameterValue, match="Nothing to serve"):
        build_endpoints([], BatchConfig(), 10, None)
    twice = [EndpointSpec("a", [("models:/a/1", 1.0)])] * 2
    with pytest.raises(InvalidParameterValue, match="served twice"):
        build_endpoints(twice, BatchConfig(), 10, None)
    with pytest.raises(InvalidParameterValue, match="at least one model URI"):
        build_endpoints([EndpointSpec("a", [])], BatchConfig(), 10, None)


def test_built_endpoints_serve_what_the_arguments_say(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    store = ServingModels(tmp_path_factory.mktemp("serving-config"))
    store.register_constant("iris", 1.0, alias="champion")
    store.register_constant("iris", 2.0, alias="challenger")
    specs = parse(
        "models:/iris@champion",
        routes=["split=models:/iris@champion:1,models:/iris@challenger:3"],
        shadow="split=models:/iris/1",
        sticky_header="x-user",
    )
    endpoints = build_endpoints(specs, BatchConfig(), 0, store.tracking_uri)
    assert list(endpoints) == ["iris", "split"]
    split = endpoints["split"]
    assert split.uris == ["models:/iris@champion", "models:/iris@challenger"]
    assert split.weights == pytest.approx([0.25, 0.75])
    assert (split.shadow_uri, split.sticky_header) == ("models:/iris/1", "x-user")

    async def scenario() -> tuple[float, set[str | None]]:
        for endpoint in endpoints.values():
            await endpoint.start()
        plain = await endpoints["iris"].predict(features(1))
        versions = set()
        for user in range(40):
            result = await split.predict(features(1), headers={"x-user": str(user)})
            versions.add(result.model_version)
        for endpoint in endpoints.values():
            await endpoint.close()
        return float(np.asarray(plain.predictions)[0]), versions

    assert asyncio.run(scenario()) == (1.0, {"1", "2"})
