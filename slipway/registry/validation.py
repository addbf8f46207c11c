"""Checks on what a caller hands the registry: model names, versions, tags, aliases, stages.

MLflow's rules and limits, with its messages where clients match on them. Every check raises
:class:`~slipway.exceptions.InvalidParameterValue`; none of them touches a store, so a backend
validates before it opens a transaction.
"""

from __future__ import annotations

import posixpath
import re

from slipway.entities.registry import STAGES, TransitionTarget, canonical_stage
from slipway.exceptions import InvalidParameterValue

MAX_MODEL_NAME_LENGTH = 256
MAX_MODEL_REGISTRY_TAG_KEY_LENGTH = 250
MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH = 5000
MAX_REGISTERED_MODEL_ALIAS_LENGTH = 255
MAX_VERSION_NUMBER = 2**31 - 1
"""Version numbers are 32-bit integers in the database; a larger one names no version."""

ACTIVE_STAGES = ("Staging", "Production")
"""The stages whose other versions ``archive_existing_versions`` may archive."""

_TAG_KEY_RE = re.compile(r"^[/\w.\- :]*$")
_ALIAS_RE = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS_RE = re.compile(r"^[vV]\d+$")
_VERSION_RE = re.compile(r"^\s*[+-]?\d+\s*$")


def _resolves_elsewhere(name: str) -> bool:
    """Whether ``name``, read as a file path, would name something else (MLflow's check:
    names become folder names in some stores)."""
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith(("..", "/"))


def validate_model_name(name: object, field: str = "name") -> str:
    """A registered model name: non-empty, at most 256 characters, no ``/`` or ``:``, and no
    path tricks (``a/../b``, ``.``)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue(f"Missing value for required parameter '{field}'.")
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidParameterValue(
            f"'{field}' exceeds the maximum length of {MAX_MODEL_NAME_LENGTH} characters"
        )
    if "/" in name or ":" in name:
        raise InvalidParameterValue(
            f"Invalid model name '{name}'. Names cannot contain '/' or ':'."
        )
    if _resolves_elsewhere(name) or "\x00" in name:
        raise InvalidParameterValue(
            f"Invalid value {name!r} for parameter '{field}' supplied: names must not resolve "
            "to other names when treated as file paths."
        )
    return name


def parse_version(version: object) -> int:
    """The integer of a version given as ``"3"`` or ``3``. A number beyond 32 bits is returned
    as is (it names no version; lookups report it not found)."""
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise InvalidParameterValue(f"Parameter 'version' must be an integer, got '{version}'.")
    if isinstance(version, str) and not _VERSION_RE.match(version):
        raise InvalidParameterValue(f"Parameter 'version' must be an integer, got '{version}'.")
    return int(version)


def validate_tag(key: object, value: object) -> tuple[str, str]:
    """A registered model or model version tag: MLflow's key rules, key at most 250 and value
    at most 5000 characters; an empty value is allowed."""
    validate_tag_key(key)
    assert isinstance(key, str)
    if value is None:
        raise InvalidParameterValue("Tag value cannot be None")
    if not isinstance(value, str):
        raise InvalidParameterValue(f"Tag value must be a string, got {type(value).__name__}")
    if len(value) > MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH:
        raise InvalidParameterValue(
            f"'value' exceeds the maximum length of {MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH} "
            "characters"
        )
    return key, value


def validate_tag_key(key: object) -> str:
    if key is None:
        raise InvalidParameterValue("Missing value for required parameter 'key'.")
    if not isinstance(key, str):
        raise InvalidParameterValue(f"Tag key must be a string, got {type(key).__name__}")
    if not _TAG_KEY_RE.match(key):
        raise InvalidParameterValue(
            f"Invalid value {key!r} for parameter 'key' supplied: Names may only contain "
            "alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) "
            "and slashes (/)."
        )
    if _resolves_elsewhere(key):
        raise InvalidParameterValue(
            f"Invalid value {key!r} for parameter 'key' supplied: Names may be treated as files "
            "in certain cases, and must not resolve to other names when treated as such."
        )
    if len(key) > MAX_MODEL_REGISTRY_TAG_KEY_LENGTH:
        raise InvalidParameterValue(
            f"'key' exceeds the maximum length of {MAX_MODEL_REGISTRY_TAG_KEY_LENGTH} characters"
        )
    return key


def validate_tags(tags: object) -> dict[str, str]:
    """``(key, value)`` pairs, tag objects with ``key`` and ``value``, or a mapping, checked
    one by one; a later key wins."""
    pairs = tags.items() if isinstance(tags, dict) else tags
    if isinstance(pairs, str | bytes) or not hasattr(pairs, "__iter__"):
        raise InvalidParameterValue("tags must be a sequence of (key, value) pairs")
    out: dict[str, str] = {}
    for pair in pairs:
        try:
            key, value = (pair.key, pair.value) if hasattr(pair, "key") else pair
        except (TypeError, ValueError):
            raise InvalidParameterValue(
                f"Invalid tag {pair!r}: expected a (key, value) pair"
            ) from None
        key, value = validate_tag(key, value)
        out[key] = value
    return out


def validate_alias(alias: object) -> str:
    """An alias name: ``[A-Za-z0-9_-]``, 1 to 255 characters."""
    if alias is None or alias == "":
        raise InvalidParameterValue("Registered model alias name cannot be empty.")
    if not isinstance(alias, str):
        raise InvalidParameterValue(f"Alias must be a string, got {type(alias).__name__}")
    if not _ALIAS_RE.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, "
            "underscores (_), and dashes (-)."
        )
    if len(alias) > MAX_REGISTERED_MODEL_ALIAS_LENGTH:
        raise InvalidParameterValue(
            "'Registered model alias name' exceeds the maximum length of "
            f"{MAX_REGISTERED_MODEL_ALIAS_LENGTH} characters"
        )
    return alias


def validate_settable_alias(alias: object) -> str:
    """:func:`validate_alias`, and not a reserved name (``latest``, ``v<digits>``)."""
    name = validate_alias(alias)
    if name.lower() == "latest":
        raise InvalidParameterValue("'latest' alias name (case insensitive) is reserved.")
    if _VERSION_ALIAS_RE.match(name):
        raise InvalidParameterValue(f"Version alias name '{name}' is reserved.")
    return name


def validate_stage(stage: object) -> str:
    """The canonical spelling of a stage given in any case."""
    canonical = canonical_stage(stage) if isinstance(stage, str) else None
    if canonical is None:
        raise InvalidParameterValue(
            f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(STAGES)}."
        )
    return canonical


def validate_archive(stage: str, archive_existing_versions: object) -> bool:
    """``archive_existing_versions`` as a bool; only Staging and Production may archive."""
    if not isinstance(archive_existing_versions, bool):
        raise InvalidParameterValue(
            "archive_existing_versions must be a boolean, got "
            f"{type(archive_existing_versions).__name__}"
        )
    if archive_existing_versions and stage not in ACTIVE_STAGES:
        raise InvalidParameterValue(
            "Model version transition cannot archive existing model versions because "
            f"'{stage}' is not an Active stage. Valid stages are {', '.join(ACTIVE_STAGES)}"
        )
    return archive_existing_versions


def validate_target(target_kind: object, target: object) -> tuple[TransitionTarget, str]:
    """An approval target: an alias name (reserved names refused) or a stage (canonicalised)."""
    try:
        kind = TransitionTarget(str(target_kind))
    except ValueError:
        raise InvalidParameterValue(
            f"Invalid target kind {target_kind!r}: use 'alias' or 'stage'"
        ) from None
    if kind is TransitionTarget.ALIAS:
        return kind, validate_settable_alias(target)
    return kind, validate_stage(target)


__all__ = [
    "ACTIVE_STAGES",
    "MAX_MODEL_NAME_LENGTH",
    "MAX_MODEL_REGISTRY_TAG_KEY_LENGTH",
    "MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH",
    "MAX_REGISTERED_MODEL_ALIAS_LENGTH",
    "MAX_VERSION_NUMBER",
    "parse_version",
    "validate_alias",
    "validate_archive",
    "validate_model_name",
    "validate_settable_alias",
    "validate_stage",
    "validate_tag",
    "validate_tag_key",
    "validate_tags",
    "validate_target",
]
