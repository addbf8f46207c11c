"""Model URIs that name registry versions and runs: parsing them, and finding the version a
``models:/`` URI means now. Light on purpose (no pandas, no HTTP): the SDK, the CLI, the
tracking server and the model server all use it.

``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/<name>/latest``,
``models:/<name>/<stage>`` and ``models:/<model_id>`` (an MLflow 3 logged model, ``m-...``);
``runs:/<run_id>/<path>``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from slipway.entities.registry import ModelVersion, canonical_stage
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.registry.store.base import AbstractRegistryStore


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """``(run_id, path)`` of ``runs:/<run_id>/<path>`` (the path may be empty).

    Raises:
        InvalidParameterValue: for a URI that does not have that shape.
    """
    parts = urlsplit(uri)
    body = parts.path.lstrip("/") if not parts.netloc else f"{parts.netloc}{parts.path}"
    if parts.scheme != "runs" or parts.query or parts.fragment or not body:
        raise InvalidParameterValue(
            f"Invalid runs URI {uri!r}: expected runs:/<run_id>/<path inside the run>"
        )
    run_id, _, path = body.partition("/")
    return run_id, path


def parse_models_uri(uri: str) -> tuple[str, str, str]:
    """``(name, kind, ref)`` of a ``models:/`` URI, where kind is ``"version"``, ``"alias"``,
    ``"latest"``, ``"stage"`` or ``"model_id"``.

    Raises:
        InvalidParameterValue: for a URI that is none of the documented shapes.
    """
    bad = InvalidParameterValue(
        f"Invalid models URI {uri!r}: expected models:/<name>/<version>, models:/<name>@<alias>,"
        " models:/<name>/latest, models:/<name>/<stage> or models:/<model_id>"
    )
    if not uri.startswith("models:/") or "?" in uri or "#" in uri:
        raise bad
    body = uri[len("models:") :].lstrip("/")
    if "@" in body:
        name, _, alias = body.rpartition("@")
        if not name or not alias or "/" in alias:
            raise bad
        return name, "alias", alias
    name, sep, ref = body.rpartition("/")
    if not sep:
        if body.startswith("m-"):
            return body, "model_id", body
        raise bad
    if not name or not ref:
        raise bad
    if ref.isdigit():
        return name, "version", ref
    if ref.lower() == "latest":
        return name, "latest", ref
    stage = canonical_stage(ref)
    if stage is None:
        raise bad
    return name, "stage", stage


def version_ref(version: str | int) -> tuple[str, str]:
    """``(kind, ref)`` for a version named by number, ``latest`` or a stage, as in
    :func:`parse_models_uri`."""
    text = str(version).strip()
    if text.isdigit():
        return "version", text
    if text.lower() == "latest":
        return "latest", text
    stage = canonical_stage(text)
    if stage is None:
        raise InvalidParameterValue(
            f"Invalid version {text!r}: use a number, 'latest', a stage or an alias"
        )
    return "stage", stage


def resolve_version(store: AbstractRegistryStore, name: str, kind: str, ref: str) -> ModelVersion:
    """The version that ``(name, kind, ref)`` (from :func:`parse_models_uri` or
    :func:`version_ref`) names now: by number, by alias, the newest, or the newest in a stage.

    Raises:
        InvalidParameterValue: for a logged model id (it names no registered version).
        ResourceDoesNotExist: for an unknown model, version or alias, or no version at all
            (or none in the stage).
    """
    if kind == "alias":
        return store.get_model_version_by_alias(name, ref)
    if kind == "version":
        return store.get_model_version(name, ref)
    if kind in ("latest", "stage"):
        found = store.get_latest_versions(name, [ref] if kind == "stage" else None)
        if not found:
            where = f" in stage {ref!r}" if kind == "stage" else ""
            raise ResourceDoesNotExist(f"Registered model {name!r} has no version{where}")
        return max(found, key=lambda mv: int(mv.version))
    raise InvalidParameterValue(f"models:/{ref} names a logged model, not a registered version")
