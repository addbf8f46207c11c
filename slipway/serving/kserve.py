"""A KServe ``InferenceService`` manifest for what ``slipway serve`` would serve locally:
``slipway serve --model iris=models:/iris@champion --emit kserve -o iris.yaml``.

Two shapes, both ``serving.kserve.io/v1beta1``:

* **KServe's own MLflow runtime** (the default). One InferenceService per endpoint, with
  ``modelFormat: {name: mlflow}``, ``protocolVersion: v2`` and a ``storageUri`` where the
  model's files are. A ``models:/`` URI is resolved through the registry to its download URI,
  a ``runs:/`` URI through the tracking store to the run's artifacts; the result must be a
  location the cluster can read (``s3://``, ``gs://``, ``https://``, ``pvc://``, ...). A
  local path, or an artifact behind ``slipway server``'s proxy, is refused with an error
  that says what to do instead, because KServe's storage initializer cannot fetch it.
* **A custom container** (``image=``) that runs ``slipway serve`` with the same models,
  routes and shadow as here: one InferenceService for all endpoints, whose container
  resolves ``models:/`` URIs against the tracking server at start (its address goes into
  ``SLIPWAY_TRACKING_URI``) and keeps Slipway's batching, canary, shadow and hot reload.

Canary. KServe splits traffic between the revision that last took 100 % and the newest
one; ``canaryTrafficPercent`` is the newest one's share, and only Knative mode (KServe's
default) does it. So an endpoint routed between two models becomes a manifest whose
``storageUri`` is the smaller-weighted (canary) model, with its percentage; the header comment
names the stable model, which must be the one serving at 100 % when this is applied. With one
model and ``canary_percent``, the manifest rolls that model out as a canary of whatever serves
now. More than two models, a shadow and sticky routing have no KServe equivalent: they are
errors in the first shape, and work unchanged in the second.

Every InferenceService carries ``slipway/model-uri`` (and ``slipway/model-version`` for
registry URIs) annotations, so what runs in the cluster points back to the registry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml

from slipway.exceptions import InvalidParameterValue

__all__ = ["API_VERSION", "KIND", "write_manifest"]

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
PORT = 8080
CONTAINER_NAME = "kserve-container"
"""The name KServe gives the predictor's serving container."""
MAX_NAME_LENGTH = 45
"""KServe appends ``-predictor`` and Knative a revision suffix to the name, and the result
must stay a 63-character DNS label; 45 leaves room for both."""
CLUSTER_SCHEMES = frozenset({"s3", "gs", "https", "http", "pvc", "oci", "hf", "hdfs", "webhdfs"})
"""Storage URI schemes KServe's storage initializer downloads from."""
_MAX_REDIRECTS = 8
_PROXY_PATH = "/api/2.0/mlflow-artifacts/artifacts"


class _Spec(Protocol):
    """One endpoint, as :class:`slipway.serving.config.EndpointSpec` describes it."""

    @property
    def name(self) -> str: ...

    @property
    def routes(self) -> list[tuple[str, float]]: ...

    @property
    def shadow(self) -> str | None: ...

    @property
    def sticky_header(self) -> str | None: ...


@dataclass(frozen=True)
class _Options:
    """The settings every InferenceService of one manifest shares."""

    min_replicas: int
    max_replicas: int
    canary_percent: int | None
    tracking_uri: str | None

    def predictor(self) -> dict[str, Any]:
        return {"minReplicas": self.min_replicas, "maxReplicas": self.max_replicas}


@dataclass
class _Resolved:
    storage_uri: str
    annotations: dict[str, str] = field(default_factory=dict)


def write_manifest(
    specs: Sequence[_Spec],
    *,
    image: str | None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    canary_percent: int | None = None,
    out: Path | None = None,
    tracking_uri: str | None = None,
    name: str | None = None,
    serve_args: Sequence[str] = (),
) -> str:
    """The KServe manifest (YAML, one document per InferenceService) for ``specs``.

    Args:
        specs: the endpoints, as :func:`slipway.serving.config.parse_serve_args` gives them.
        image: a container image with Slipway installed: run ``slipway serve`` in it instead
            of KServe's MLflow runtime.
        min_replicas: ``minReplicas`` (0 scales to zero, in Knative mode).
        max_replicas: ``maxReplicas``, at least ``min_replicas`` and 1.
        canary_percent: ``canaryTrafficPercent`` (0 to 100); for an endpoint routed between
            two models it replaces the share their weights give.
        out: write the manifest to this file too.
        tracking_uri: the registry and tracking store that ``models:/`` and ``runs:/`` URIs
            are resolved against (the tracking URI in effect when None).
        name: the InferenceService's name with ``image`` (the endpoint's name when there is
            one endpoint, else ``slipway-serve``).
        serve_args: more ``slipway serve`` options for the container (``--max-batch-size``,
            ``--workers``, ...), with ``image`` only.

    Raises:
        InvalidParameterValue: for settings KServe cannot express, URIs the cluster cannot
            read, and out-of-range numbers, each with what to do instead.
        ResourceDoesNotExist: for a registered model, version, alias or run that is not there.
    """
    if not specs:
        raise InvalidParameterValue("No model to put in a KServe manifest: name one")
    _check_replicas(min_replicas, max_replicas)
    if canary_percent is not None:
        _check_percent(canary_percent)
    options = _Options(min_replicas, max_replicas, canary_percent, tracking_uri)
    if image is None:
        if serve_args:
            raise InvalidParameterValue("serve_args need image=: KServe's runtime takes none")
        documents = _runtime_documents(specs, options)
    else:
        documents = [_container_document(specs, image, options, name, list(serve_args))]
    text = "---\n".join(_render(comment, body) for comment, body in documents)
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text


# -- KServe's MLflow runtime -------------------------------------------------------------------


def _runtime_documents(
    specs: Sequence[_Spec], options: _Options
) -> list[tuple[list[str], dict[str, Any]]]:
    documents = []
    seen: dict[str, str] = {}
    for spec in specs:
        isvc_name = kubernetes_name(spec.name)
        if isvc_name in seen:
            raise InvalidParameterValue(
                f"Endpoints {seen[isvc_name]!r} and {spec.name!r} would both be the "
                f"InferenceService {isvc_name!r}: rename one"
            )
        seen[isvc_name] = spec.name
        _check_expressible(spec)
        documents.append(_runtime_document(spec, isvc_name, options))
    return documents


def _check_expressible(spec: _Spec) -> None:
    hint = "generate a manifest that runs slipway serve in a container (--image) instead"
    if spec.shadow:
        raise InvalidParameterValue(
            f"Endpoint {spec.name!r} has a shadow model, and a KServe InferenceService has no "
            f"shadow traffic: {hint}"
        )
    if spec.sticky_header:
        raise InvalidParameterValue(
            f"Endpoint {spec.name!r} routes by header {spec.sticky_header!r}, which KServe's "
            f"canary split cannot do: {hint}"
        )
    if len(spec.routes) > 2:
        raise InvalidParameterValue(
            f"Endpoint {spec.name!r} routes between {len(spec.routes)} models; a KServe canary "
            f"splits traffic between two revisions only: {hint}"
        )
    if not spec.routes:
        raise InvalidParameterValue(f"Endpoint {spec.name!r} serves no model")


def _runtime_document(
    spec: _Spec, isvc_name: str, options: _Options
) -> tuple[list[str], dict[str, Any]]:
    comment = [f"Endpoint {spec.name!r}: KServe's MLflow runtime, Open Inference Protocol V2."]
    if isvc_name != spec.name:
        comment.append(f"Named {isvc_name!r}: Kubernetes names are lowercase DNS labels.")
    uri = spec.routes[0][0]
    percent = options.canary_percent
    if len(spec.routes) == 2:
        stable, canary = _stable_and_canary(spec.routes)
        uri = canary[0]
        if percent is None:
            share = 100 * canary[1] / (stable[1] + canary[1])
            percent = max(1, min(99, round(share)))
        comment += [
            f"Canary: {percent}% to {canary[0]}, the rest to the revision that last took",
            f"100% of the traffic, which must be the stable model {stable[0]}:",
            "apply a manifest for it alone first. Canary rollouts need Knative mode.",
        ]
    elif percent is not None:
        comment.append(
            f"Canary: {percent}% to {uri}, the rest to the revision that serves now (Knative mode)."
        )
    resolved = _resolve(uri, options.tracking_uri)
    predictor = options.predictor()
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    predictor["model"] = {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": resolved.storage_uri,
    }
    annotations = {"slipway/endpoint": spec.name, **resolved.annotations}
    if len(spec.routes) == 2:
        annotations["slipway/stable-model-uri"] = stable[0]
    metadata = {"name": isvc_name, "annotations": annotations}
    return comment, _service(metadata, predictor)


def _stable_and_canary(
    routes: Sequence[tuple[str, float]],
) -> tuple[tuple[str, float], tuple[str, float]]:
    """The heavier route is the stable one (the first on a tie), the other the canary."""
    first, second = routes[0], routes[1]
    for uri, weight in routes:
        if not weight > 0:
            raise InvalidParameterValue(f"Invalid route weight {weight} for {uri}: use > 0")
    return (second, first) if second[1] > first[1] else (first, second)


def _resolve(uri: str, tracking_uri: str | None) -> _Resolved:
    """Where the cluster downloads the model at ``uri`` from, with the annotations that tie
    the InferenceService back to it."""
    annotations = {"slipway/model-uri": uri}
    location = uri
    for _ in range(_MAX_REDIRECTS):
        if location.startswith("models:"):
            location, version = _registry_location(location, tracking_uri)
            if version is not None:
                annotations.setdefault("slipway/model-version", version)
        elif location.startswith("runs:"):
            location = _run_location(location, tracking_uri)
        else:
            return _Resolved(_cluster_uri(uri, location), annotations)
    raise InvalidParameterValue(f"Model URI {uri!r} refers to other models:/ URIs too often")


def _registry_location(uri: str, tracking_uri: str | None) -> tuple[str, str | None]:
    from slipway.models.uri import parse_models_uri
    from slipway.registry.client import RegistryClient

    name, kind, _ = parse_models_uri(uri)
    if kind == "model_id":
        from slipway.tracking import uri as uris
        from slipway.tracking.store.logged_models import AbstractLoggedModelStore

        store = uris.get_store(tracking_uri)
        if not isinstance(store, AbstractLoggedModelStore):
            raise InvalidParameterValue(f"Cannot resolve {uri}: the store has no logged models")
        return store.get_logged_model(name).artifact_location, None
    client = RegistryClient(tracking_uri)
    mv = client.get_model_version_by_uri(uri)
    return client.get_download_uri(mv.name, mv.version), mv.version


def _run_location(uri: str, tracking_uri: str | None) -> str:
    from slipway.artifacts.paths import join_uri, safe_relative_path
    from slipway.models.uri import parse_runs_uri
    from slipway.tracking import uri as uris

    run_id, path = parse_runs_uri(uri)
    root = uris.get_store(tracking_uri).get_run(run_id).info.artifact_uri
    rel = safe_relative_path(path)
    return join_uri(root, rel) if rel else root


def _cluster_uri(uri: str, location: str) -> str:
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    where = f"{uri!r} is stored at {location!r}" if location != uri else f"{uri!r}"
    if scheme in ("http", "https") and _PROXY_PATH in parts.path:
        scheme = "mlflow-artifacts"
    if scheme in CLUSTER_SCHEMES:
        return location
    if scheme == "mlflow-artifacts":
        raise InvalidParameterValue(
            f"Model {where}, behind the tracking server's artifact proxy, which KServe's "
            "storage initializer cannot download a model folder from. Run the server with an "
            "s3:// or gs:// artifact destination and log the model again, or generate a "
            "manifest that runs slipway serve in a container (--image)"
        )
    if _is_local(location):
        raise InvalidParameterValue(
            f"Model {where}, a path on this machine, which a Kubernetes cluster cannot read. "
            "Log models to an s3:// or gs:// artifact store (SLIPWAY_ARTIFACT_ROOT, or a "
            "slipway server with such an artifact destination), or build an image with the "
            "model inside (slipway models dockerfile) and pass it as --image"
        )
    raise InvalidParameterValue(
        f"Model {where}, and KServe cannot download from {scheme}:// URIs; use one of "
        + ", ".join(f"{s}://" for s in sorted(CLUSTER_SCHEMES))
    )


# -- a custom container running slipway serve --------------------------------------------------


def _container_document(
    specs: Sequence[_Spec],
    image: str,
    options: _Options,
    name: str | None,
    serve_args: list[str],
) -> tuple[list[str], dict[str, Any]]:
    if not image.strip() or any(c.isspace() for c in image):
        raise InvalidParameterValue(f"Invalid container image {image!r}")
    isvc_name = kubernetes_name(name or (specs[0].name if len(specs) == 1 else "slipway-serve"))
    args = ["serve", *_serve_args(specs), *serve_args]
    # Inside the pod, callers reach it by Service names and pod IPs (the kubelet's probe uses the
    # pod IP as Host), none of them known here: the cluster's network policy is the guard.
    args += ["--host", "0.0.0.0", "--port", str(PORT), "--allowed-hosts", "*"]  # noqa: S104
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": ["slipway"],
        "args": args,
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": PORT}},
    }
    comment = [
        f"slipway serve in {image}: " + ", ".join(s.name for s in specs) + ".",
        "The image needs Slipway with the server extra and each model's requirements.",
    ]
    uris = [u for s in specs for u, _ in s.routes] + [s.shadow for s in specs if s.shadow]
    server = _server_uri(options.tracking_uri)
    if server is not None:
        container["env"] = [{"name": "SLIPWAY_TRACKING_URI", "value": server}]
    elif any(u.startswith(("models:", "runs:")) for u in uris):
        raise InvalidParameterValue(
            "The container resolves models:/ and runs:/ URIs at start, against a tracking "
            "server it can reach; the tracking URI here is not one. Pass the address of a "
            "slipway server as the tracking URI, or serve a path inside the image"
        )
    local = [u for u in uris if _is_local(u)]
    if local:
        comment.append("These paths must exist inside the image: " + ", ".join(local) + ".")
    predictor = options.predictor()
    if options.canary_percent is not None:
        predictor["canaryTrafficPercent"] = options.canary_percent
        comment.append(f"Canary: {options.canary_percent}% to this revision (Knative mode).")
    predictor["containers"] = [container]
    annotations = {"slipway/endpoints": ",".join(s.name for s in specs)}
    return comment, _service({"name": isvc_name, "annotations": annotations}, predictor)


def _serve_args(specs: Sequence[_Spec]) -> list[str]:
    """The ``slipway serve`` options that describe ``specs`` again."""
    args: list[str] = []
    shadowed = [s for s in specs if s.shadow]
    headers = {s.sticky_header for s in specs if s.sticky_header}
    if len(shadowed) > 1 or len(headers) > 1:
        raise InvalidParameterValue("slipway serve takes one --shadow and one --sticky-header")
    for spec in specs:
        if not spec.routes:
            raise InvalidParameterValue(f"Endpoint {spec.name!r} serves no model")
        if len(spec.routes) == 1:
            args += ["--model", f"{spec.name}={spec.routes[0][0]}"]
        else:
            routes = ",".join(f"{uri}:{_weight(w)}" for uri, w in spec.routes)
            args += ["--route", f"{spec.name}={routes}"]
    for spec in shadowed:
        # with several endpoints, --shadow names the one it shadows
        args += ["--shadow", f"{spec.name}={spec.shadow}" if len(specs) > 1 else str(spec.shadow)]
    for header in headers:
        args += ["--sticky-header", header]
    return args


def _is_local(uri: str) -> bool:
    scheme = urlsplit(uri).scheme.lower()
    return scheme in ("", "file") or (len(scheme) == 1 and scheme.isalpha())  # C:\\...


def _weight(weight: float) -> str:
    return str(int(weight)) if float(weight).is_integer() else repr(float(weight))


def _server_uri(tracking_uri: str | None) -> str | None:
    from slipway.tracking import uri as uris

    text = tracking_uri or uris.get_tracking_uri()
    return text if urlsplit(text).scheme.lower() in ("http", "https") else None


# -- shared pieces -----------------------------------------------------------------------------


def kubernetes_name(name: str) -> str:
    """``name`` as an InferenceService name: lowercase letters, digits and ``-``, starting
    with a letter, at most :data:`MAX_NAME_LENGTH` characters."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    text = re.sub(r"-{2,}", "-", text)
    if not text:
        raise InvalidParameterValue(f"Cannot make a Kubernetes name out of {name!r}")
    if not text[0].isalpha():
        text = "m-" + text
    return text[:MAX_NAME_LENGTH].rstrip("-")


def _service(metadata: dict[str, Any], predictor: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def _render(comment: list[str], body: dict[str, Any]) -> str:
    header = "".join(f"# {line}\n" for line in comment)
    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


def _check_replicas(min_replicas: int, max_replicas: int) -> None:
    for label, value in (("min_replicas", min_replicas), ("max_replicas", max_replicas)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidParameterValue(f"Invalid {label} {value!r}: use an integer >= 0")
    if max_replicas < max(1, min_replicas):
        raise InvalidParameterValue(
            f"max_replicas ({max_replicas}) must be at least 1 and at least min_replicas "
            f"({min_replicas})"
        )


def _check_percent(percent: int) -> None:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise InvalidParameterValue(f"Invalid canary percent {percent!r}: use 0 to 100")
