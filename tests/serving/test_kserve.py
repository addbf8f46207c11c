"""KServe InferenceService manifests: resolved against a real embedded registry, parsed back
as YAML and checked field by field (no cluster needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.serving.config import EndpointSpec, parse_serve_args
from slipway.serving.kserve import API_VERSION, KIND, kubernetes_name, write_manifest

from ._models import ServingModels

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
IRIS_V1 = "s3://models-bucket/iris/v1"
IRIS_V2 = "gs://models-bucket/iris/v2"


@pytest.fixture
def registry(tmp_path: Path) -> ServingModels:
    """iris v1 (s3, alias champion), v2 (gs, alias challenger); local v3 (alias local)."""
    models = ServingModels(tmp_path)
    models.registry.register_model(IRIS_V1, "iris")
    models.registry.register_model(IRIS_V2, "iris")
    models.set_alias("iris", "champion", 1)
    models.set_alias("iris", "challenger", 2)
    models.register_constant("iris", 3.0, alias="local")
    return models


def manifest(specs: list[EndpointSpec], registry: ServingModels, **kwargs: Any) -> Any:
    """The manifest as text and parsed, with the structure every InferenceService needs."""
    kwargs.setdefault("image", None)
    text = write_manifest(specs, tracking_uri=registry.tracking_uri, **kwargs)
    documents = list(yaml.safe_load_all(text))
    for doc in documents:
        assert doc["apiVersion"] == API_VERSION == "serving.kserve.io/v1beta1"
        assert doc["kind"] == KIND == "InferenceService"
        assert DNS_1035.match(doc["metadata"]["name"])
        assert len(doc["metadata"]["name"]) <= 45
        predictor = doc["spec"]["predictor"]
        assert isinstance(predictor["minReplicas"], int)
        assert predictor["maxReplicas"] >= max(1, predictor["minReplicas"])
        assert ("model" in predictor) != ("containers" in predictor)
    return text, documents


def one(name: str, uri: str) -> EndpointSpec:
    return EndpointSpec(name, [(uri, 1.0)])


def test_a_registered_model_becomes_the_mlflow_runtime_with_its_storage_uri(
    registry: ServingModels,
) -> None:
    _, [doc] = manifest(
        [one("iris", "models:/iris@champion")], registry, min_replicas=2, max_replicas=5
    )
    assert doc["metadata"]["name"] == "iris"
    predictor = doc["spec"]["predictor"]
    assert predictor["minReplicas"] == 2
    assert predictor["maxReplicas"] == 5
    assert "canaryTrafficPercent" not in predictor
    assert predictor["model"] == {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": IRIS_V1,
    }
    assert doc["metadata"]["annotations"] == {
        "slipway/endpoint": "iris",
        "slipway/model-uri": "models:/iris@champion",
        "slipway/model-version": "1",
    }


def test_every_models_uri_form_resolves(registry: ServingModels) -> None:
    for uri, expected in [
        ("models:/iris/2", IRIS_V2),
        ("models:/iris@challenger", IRIS_V2),
        ("models:/iris/1", IRIS_V1),
    ]:
        _, [doc] = manifest([one("iris", uri)], registry)
        assert doc["spec"]["predictor"]["model"]["storageUri"] == expected


def test_a_copied_version_is_followed_to_the_files(registry: ServingModels) -> None:
    registry.registry.register_model("models:/iris/2", "iris-copy")
    _, [doc] = manifest([one("copy", "models:/iris-copy/1")], registry)
    assert doc["spec"]["predictor"]["model"]["storageUri"] == IRIS_V2
    assert doc["metadata"]["annotations"]["slipway/model-version"] == "1"


def test_cluster_uris_are_kept_as_they_are(registry: ServingModels) -> None:
    for uri in ("s3://b/m", "gs://b/m", "https://example.com/m.tar.gz", "pvc://claim/m"):
        _, [doc] = manifest([one("m", uri)], registry)
        assert doc["spec"]["predictor"]["model"]["storageUri"] == uri
        assert "slipway/model-version" not in doc["metadata"]["annotations"]


def test_a_runs_uri_resolves_to_the_run_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway.tracking import uri as uris
    from slipway.tracking.client import SlipwayClient

    monkeypatch.setenv("SLIPWAY_ARTIFACT_ROOT", "s3://runs-bucket/root")
    uris.clear_store_cache()
    try:
        store = str(tmp_path / "s3-store")
        client = SlipwayClient(store)
        run = client.create_run(client.create_experiment("e"))
        text = write_manifest(
            [one("m", f"runs:/{run.info.run_id}/model")], image=None, tracking_uri=store
        )
    finally:
        uris.clear_store_cache()
    storage = yaml.safe_load(text)["spec"]["predictor"]["model"]["storageUri"]
    assert storage.startswith("s3://runs-bucket/root/")
    assert storage.endswith(f"{run.info.run_id}/artifacts/model")


def test_local_models_are_refused_with_what_to_do(registry: ServingModels) -> None:
    with pytest.raises(InvalidParameterValue, match="a path on this machine") as info:
        manifest([one("iris", "models:/iris@local")], registry)
    assert "s3://" in info.value.message
    assert "--image" in info.value.message
    with pytest.raises(InvalidParameterValue, match="a path on this machine"):
        manifest([one("m", "/srv/models/iris")], registry)
    with pytest.raises(InvalidParameterValue, match="a path on this machine"):
        manifest([one("m", "file:///srv/models/iris")], registry)


def test_proxied_artifacts_and_unknown_schemes_are_refused(registry: ServingModels) -> None:
    for uri in (
        "mlflow-artifacts:/1/abc/artifacts/model",
        "http://tracking:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model",
    ):
        with pytest.raises(InvalidParameterValue, match="artifact proxy"):
            manifest([one("m", uri)], registry)
    with pytest.raises(InvalidParameterValue, match="cannot download from ftp://"):
        manifest([one("m", "ftp://host/model")], registry)


def test_unknown_registry_names_are_not_found(registry: ServingModels) -> None:
    with pytest.raises(ResourceDoesNotExist):
        manifest([one("x", "models:/nope@champion")], registry)
    with pytest.raises(InvalidParameterValue, match="alias nope not found"):  # as in MLflow
        manifest([one("x", "models:/iris@nope")], registry)


def test_a_two_model_route_becomes_a_canary(registry: ServingModels) -> None:
    [spec] = parse_serve_args(
        None, [], ["iris=models:/iris@champion:90,models:/iris@challenger:10"], None
    )
    text, [doc] = manifest([spec], registry)
    predictor = doc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["storageUri"] == IRIS_V2  # the canary is the new revision
    annotations = doc["metadata"]["annotations"]
    assert annotations["slipway/model-uri"] == "models:/iris@challenger"
    assert annotations["slipway/stable-model-uri"] == "models:/iris@champion"
    assert "stable model models:/iris@champion" in text
    assert text.startswith("# ")


def test_the_lighter_route_is_the_canary_whatever_the_order(registry: ServingModels) -> None:
    spec = EndpointSpec("iris", [("models:/iris@challenger", 0.3), ("models:/iris@champion", 0.7)])
    _, [doc] = manifest([spec], registry)
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == 30
    assert doc["spec"]["predictor"]["model"]["storageUri"] == IRIS_V2


def test_canary_percent_overrides_the_weights_and_works_alone(registry: ServingModels) -> None:
    spec = EndpointSpec("iris", [("models:/iris@champion", 0.9), ("models:/iris@challenger", 0.1)])
    _, [doc] = manifest([spec], registry, canary_percent=25)
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == 25
    text, [doc] = manifest([one("iris", "models:/iris@challenger")], registry, canary_percent=5)
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == 5
    assert "the revision that serves now" in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            EndpointSpec("iris", [("s3://b/1", 0.5), ("s3://b/2", 0.3), ("s3://b/3", 0.2)]),
            "two revisions only",
        ),
        (EndpointSpec("iris", [("s3://b/1", 1.0)], shadow="s3://b/2"), "no shadow traffic"),
        (EndpointSpec("iris", [("s3://b/1", 1.0)], sticky_header="X-User"), "by header"),
        (EndpointSpec("iris", []), "serves no model"),
    ],
)
def test_what_kserve_cannot_express_is_refused(
    registry: ServingModels, spec: EndpointSpec, message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message) as info:
        manifest([spec], registry)
    if spec.routes:
        assert "--image" in info.value.message


def test_several_endpoints_are_several_documents(registry: ServingModels) -> None:
    specs = [one("iris", "models:/iris@champion"), one("My_Model.v2", "gs://b/m")]
    text, docs = manifest(specs, registry)
    assert [d["metadata"]["name"] for d in docs] == ["iris", "my-model-v2"]
    assert docs[1]["metadata"]["annotations"]["slipway/endpoint"] == "My_Model.v2"
    assert "Kubernetes names are lowercase" in text
    assert text.count("\n---\n") + text.startswith("---") == 1


def test_names_that_collide_are_refused(registry: ServingModels) -> None:
    with pytest.raises(InvalidParameterValue, match="would both be"):
        manifest([one("my_model", "s3://b/1"), one("my.model", "s3://b/2")], registry)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("iris", "iris"),
        ("Iris_Model", "iris-model"),
        ("7up", "m-7up"),
        ("a..b", "a-b"),
        ("x" * 80, "x" * 45),
        ("-edge-", "edge"),
    ],
)
def test_kubernetes_name(name: str, expected: str) -> None:
    assert kubernetes_name(name) == expected
    assert DNS_1035.match(kubernetes_name(name))


def test_kubernetes_name_refuses_names_with_nothing_usable() -> None:
    with pytest.raises(InvalidParameterValue, match="Kubernetes name"):
        kubernetes_name("___")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": -1}, "min_replicas"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "at least min_replicas"),
        ({"min_replicas": True}, "min_replicas"),
        ({"canary_percent": 101}, "canary percent"),
        ({"canary_percent": -5}, "canary percent"),
        ({"serve_args": ["--workers", "2"]}, "need image"),
    ],
)
def test_bad_numbers_are_refused(
    registry: ServingModels, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        manifest([one("m", "s3://b/m")], registry, **kwargs)


def test_nothing_to_serve_is_refused() -> None:
    with pytest.raises(InvalidParameterValue, match="No model"):
        write_manifest([], image=None)


def test_scale_to_zero(registry: ServingModels) -> None:
    _, [doc] = manifest([one("m", "s3://b/m")], registry, min_replicas=0, max_replicas=3)
    assert doc["spec"]["predictor"]["minReplicas"] == 0


def test_out_writes_the_same_text(registry: ServingModels, tmp_path: Path) -> None:
    out = tmp_path / "isvc.yaml"
    text, _ = manifest([one("iris", "models:/iris@champion")], registry, out=out)
    assert out.read_text() == text


# -- a custom container running slipway serve --------------------------------------------------

SERVER = "http://tracking.internal:5000"


def container_of(doc: dict[str, Any]) -> dict[str, Any]:
    [container] = doc["spec"]["predictor"]["containers"]
    return container


def reparse(args: list[str]) -> list[EndpointSpec]:
    """The container's ``slipway serve`` arguments parsed back the way the CLI parses them."""
    models, routes, shadow, sticky = [], [], None, None
    rest = args[1:]
    assert args[0] == "serve"
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--model":
            models.append(value)
        elif flag == "--route":
            routes.append(value)
        elif flag == "--shadow":
            shadow = value
        elif flag == "--sticky-header":
            sticky = value
    return parse_serve_args(None, models, routes, shadow, sticky)


def test_image_runs_slipway_serve_with_the_same_endpoints() -> None:
    specs = parse_serve_args(
        None,
        ["wine=models:/wine/3"],
        ["iris=models:/iris@champion:90,models:/iris@challenger:10"],
        "iris=models:/iris/9",
        "X-User",
    )
    text = write_manifest(
        specs,
        image="registry.example.com/slipway:1.0",
        tracking_uri=SERVER,
        canary_percent=20,
        serve_args=["--max-batch-size", "64"],
    )
    [doc] = yaml.safe_load_all(text)
    assert doc["metadata"]["name"] == "slipway-serve"
    assert doc["metadata"]["annotations"] == {"slipway/endpoints": "wine,iris"}
    predictor = doc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    container = container_of(doc)
    assert container["name"] == "kserve-container"
    assert container["image"] == "registry.example.com/slipway:1.0"
    assert container["command"] == ["slipway"]
    assert container["env"] == [{"name": "SLIPWAY_TRACKING_URI", "value": SERVER}]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["port"] == 8080
    args = container["args"]
    assert args[-6:] == ["--host", "0.0.0.0", "--port", "8080", "--allowed-hosts", "*"]
    assert args[args.index("--max-batch-size") + 1] == "64"
    served = {s.name: s for s in reparse(args[: args.index("--max-batch-size")])}
    assert served == {s.name: s for s in specs}


def test_image_with_one_endpoint_is_named_after_it_and_takes_a_name() -> None:
    spec = one("iris", "models:/iris@champion")
    [doc] = yaml.safe_load_all(write_manifest([spec], image="img", tracking_uri=SERVER))
    assert doc["metadata"]["name"] == "iris"
    assert container_of(doc)["args"][:3] == ["serve", "--model", "iris=models:/iris@champion"]
    [doc] = yaml.safe_load_all(
        write_manifest([spec], image="img", tracking_uri=SERVER, name="Prod Iris")
    )
    assert doc["metadata"]["name"] == "prod-iris"


def test_image_needs_a_reachable_registry_for_registry_uris(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="tracking server it can reach"):
        write_manifest(
            [one("iris", "models:/iris@champion")], image="img", tracking_uri=str(tmp_path)
        )


def test_image_serves_paths_inside_the_image(tmp_path: Path) -> None:
    text = write_manifest([one("m", "/opt/model")], image="img", tracking_uri=str(tmp_path))
    [doc] = yaml.safe_load_all(text)
    assert "env" not in container_of(doc)
    assert "These paths must exist inside the image: /opt/model" in text


def test_image_refuses_a_blank_image() -> None:
    with pytest.raises(InvalidParameterValue, match="container image"):
        write_manifest([one("m", "/opt/model")], image="my image")
