"""What ``slipway serve`` serves: its arguments parsed into endpoint specs, and the endpoints
built from them.

=====================================================  ======================================
argument                                               serves
=====================================================  ======================================
``URI`` (positional)                                   the model under its registered name
                                                       (``models:/iris@champion`` -> ``iris``),
                                                       or under ``model`` for other URIs
``--model iris=models:/iris@champion``                 that URI under ``iris``
``--route "iris=models:/iris@champion:90,``            a canary split of ``iris``: 90% to one,
``models:/iris@challenger:10"``                        10% to the other
``--shadow models:/iris/9``                            a copy of every request to that model
                                                       (the only endpoint's), answers unused;
                                                       ``--shadow iris=URI`` names the endpoint
=====================================================  ======================================

Route weights are positive numbers, normalised to their sum: ``90,10``, ``9,1`` and
``0.9,0.1`` split the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slipway.exceptions import InvalidParameterValue
from slipway.serving.batching import BatchConfig
from slipway.serving.endpoint import Endpoint, normalise_weights

if TYPE_CHECKING:
    from slipway.serving.request_log import RequestLogger

DEFAULT_NAME = "model"
"""The name a positional URI outside the registry serves under."""

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_ENDPOINT_PREFIX = re.compile(r"^[^:/=]+$")


@dataclass
class EndpointSpec:
    """One endpoint to serve.

    Attributes:
        name: the served name.
        routes: ``(uri, weight)`` pairs, weights normalised to sum 1.
        shadow: a model URI that sees a copy of each request, or None.
        sticky_header: the header whose value pins a caller to a route, or None.
    """

    name: str
    routes: list[tuple[str, float]] = field(default_factory=list)
    shadow: str | None = None
    sticky_header: str | None = None


def parse_serve_args(
    positional_uri: str | None,
    models: Sequence[str],
    routes: Sequence[str],
    shadow: str | None,
    sticky_header: str | None = None,
) -> list[EndpointSpec]:
    """The endpoints that ``slipway serve`` arguments describe, in the order given.

    Args:
        positional_uri: the ``URI`` argument, or None.
        models: the ``--model NAME=URI`` values.
        routes: the ``--route NAME=URI:WEIGHT,URI:WEIGHT...`` values.
        shadow: the ``--shadow URI`` or ``--shadow NAME=URI`` value, or None.
        sticky_header: the ``--sticky-header`` value, applied to every endpoint.

    Raises:
        InvalidParameterValue: for nothing to serve, a malformed value, a name served twice,
            a weight that is not a positive number, a route without URIs, or a shadow with no
            endpoint (or, among several endpoints, without ``NAME=``).
    """
    specs: list[EndpointSpec] = []
    if positional_uri is not None:
        uri = _check_uri(positional_uri, "the model URI")
        specs.append(EndpointSpec(served_name(uri), [(uri, 1.0)]))
    for value in models:
        name, uri = _split_named(value, "--model", "NAME=URI")
        specs.append(EndpointSpec(name, [(_check_uri(uri, f"--model {value!r}"), 1.0)]))
    for value in routes:
        name, body = _split_named(value, "--route", "NAME=URI:WEIGHT,URI:WEIGHT")
        specs.append(EndpointSpec(name, _parse_route(body, value)))
    if not specs:
        where = f"--shadow {shadow!r} needs a model to shadow: " if shadow is not None else ""
        raise InvalidParameterValue(
            f"{where or 'Nothing to serve: '}give a URI, --model or --route"
        )
    _refuse_duplicates(specs)
    if shadow is not None:
        _attach_shadow(specs, shadow)
    if sticky_header is not None:
        if not sticky_header.strip() or not re.fullmatch(
            r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", sticky_header
        ):
            raise InvalidParameterValue(f"--sticky-header {sticky_header!r} is not a header name")
        for spec in specs:
            spec.sticky_header = sticky_header
    return specs


def served_name(uri: str) -> str:
    """The name a positional URI serves under: its registered model's name, or ``model``."""
    from slipway.models.uri import parse_models_uri

    if uri.startswith("models:"):
        name, kind, _ = parse_models_uri(uri)
        if kind != "model_id" and "/" not in name:
            return name
    return DEFAULT_NAME


def _check_uri(uri: str, where: str) -> str:
    from slipway.models.uri import parse_models_uri

    uri = uri.strip()
    if not uri:
        raise InvalidParameterValue(f"{where} is empty: name a model URI")
    if uri.startswith("models:"):
        parse_models_uri(uri)  # refuses a malformed registry URI now, not at load time
    return uri


def _check_name(name: str, option: str, value: str) -> str:
    if not _NAME.match(name):
        raise InvalidParameterValue(
            f"{option} {value!r}: the name {name!r} must be 1-128 letters, digits, '_', '-' or "
            "'.', starting with a letter, digit or '_'"
        )
    return name


def _split_named(value: str, option: str, shape: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise InvalidParameterValue(f"{option} {value!r}: expected {shape}")
    return _check_name(name.strip(), option, value), rest.strip()


def _parse_route(body: str, value: str) -> list[tuple[str, float]]:
    """``URI:WEIGHT,URI:WEIGHT`` as ``(uri, weight)`` pairs with normalised weights."""
    pairs: list[tuple[str, float]] = []
    for entry in body.split(","):
        entry = entry.strip()
        uri, sep, weight_text = entry.rpartition(":")
        if not entry or not sep or not uri:
            raise InvalidParameterValue(
                f"--route {value!r}: {entry!r} needs the form URI:WEIGHT (a URI and a weight)"
            )
        try:
            weight = float(weight_text)
        except ValueError:
            raise InvalidParameterValue(
                f"--route {value!r}: {entry!r} ends in {weight_text!r}, not a weight; use "
                "URI:WEIGHT"
            ) from None
        if not math.isfinite(weight) or weight <= 0:
            raise InvalidParameterValue(
                f"--route {value!r}: the weight of {uri!r} must be a positive number, not "
                f"{weight_text}"
            )
        pairs.append((_check_uri(uri, f"--route {value!r}"), weight))
    uris = [uri for uri, _ in pairs]
    if len(set(uris)) != len(uris):
        raise InvalidParameterValue(f"--route {value!r} names the same URI twice")
    weights = normalise_weights([weight for _, weight in pairs])
    return [(uri, weight) for (uri, _), weight in zip(pairs, weights, strict=True)]


def _refuse_duplicates(specs: Sequence[EndpointSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InvalidParameterValue(
                f"The name {spec.name!r} is served twice: give each model its own name"
            )
        seen.add(spec.name)


def _attach_shadow(specs: list[EndpointSpec], shadow: str) -> None:
    name, sep, rest = shadow.partition("=")
    if sep and _ENDPOINT_PREFIX.match(name.strip()):
        target = [spec for spec in specs if spec.name == name.strip()]
        if not target:
            raise InvalidParameterValue(
                f"--shadow {shadow!r}: no model is served as {name.strip()!r}"
            )
        uri = rest
    elif len(specs) == 1:
        target, uri = specs, shadow
    else:
        raise InvalidParameterValue(
            f"--shadow {shadow!r}: several models are served; say which one with NAME=URI"
        )
    uri = _check_uri(uri, f"--shadow {shadow!r}")
    if uri in {route_uri for route_uri, _ in target[0].routes}:
        raise InvalidParameterValue(f"--shadow {shadow!r}: the shadow is also a route")
    target[0].shadow = uri


def build_endpoints(
    specs: Sequence[EndpointSpec],
    batch: BatchConfig,
    reload_interval_s: float,
    tracking_uri: str | None,
    request_logger: RequestLogger | None = None,
) -> dict[str, Endpoint]:
    """An :class:`Endpoint` per spec, by name, not started yet (``await endpoint.start()``
    loads the models).

    Raises:
        InvalidParameterValue: for no specs, a name given twice, or a spec without routes.
    """
    if not specs:
        raise InvalidParameterValue("Nothing to serve: give a model URI, --model or --route")
    _refuse_duplicates(specs)
    return {
        spec.name: Endpoint(
            spec.name,
            spec.routes,
            batch=batch,
            shadow=spec.shadow,
            sticky_header=spec.sticky_header,
            reload_interval_s=reload_interval_s,
            tracking_uri=tracking_uri,
            request_logger=request_logger,
        )
        for spec in specs
    }


__all__ = ["DEFAULT_NAME", "EndpointSpec", "build_endpoints", "parse_serve_args", "served_name"]
