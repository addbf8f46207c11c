"""Checks shared by every tuning store backend, so that a bad value fails the same way on
SQLite, PostgreSQL and over REST (and before it reaches a database, where it would be a driver
error or a silently truncated string)."""

from __future__ import annotations

import json
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.tuning.store.base import OWNER_MAX, STUDY_NAME_MAX

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def study_name(value: object) -> str:
    """A non-empty study name of at most :data:`STUDY_NAME_MAX` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterValue(f"Invalid study name {value!r}: expected a non-empty string")
    if len(value) > STUDY_NAME_MAX:
        raise InvalidParameterValue(
            f"Study name exceeds the maximum length of {STUDY_NAME_MAX} characters"
        )
    return value


def owner(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > OWNER_MAX:
        raise InvalidParameterValue(
            f"Invalid lease owner {value!r}: expected a string of 1 to {OWNER_MAX} characters"
        )
    return value


def spec_text(spec: object) -> str:
    """The study's spec as JSON text; NaN and infinities are refused, as on the wire."""
    if not isinstance(spec, dict):
        raise InvalidParameterValue(f"Study spec must be a dict, got {type(spec).__name__}")
    try:
        return _encode(spec)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"Study spec must be JSON-serialisable: {exc}") from None


def load_spec(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def journal_entries(entries: object) -> list[str]:
    """``entries`` checked: a non-empty list of JSON objects as text. Optuna's logs may hold
    NaN (an intermediate value), which Python's JSON reads and writes, so it is accepted."""
    if not isinstance(entries, list) or not entries:
        raise InvalidParameterValue("Journal entries must be a non-empty list of strings")
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise InvalidParameterValue(f"Journal entry {i} must be a string (a JSON object)")
        try:
            value = json.loads(entry)
        except ValueError as exc:
            raise InvalidParameterValue(f"Journal entry {i} is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidParameterValue(f"Journal entry {i} must be a JSON object")
    return entries


def log_number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterValue(
            f"Invalid log_number_from {value!r}: expected a non-negative integer"
        )
    return value


def ttl(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 86_400_000:
        raise InvalidParameterValue(
            f"Invalid lease ttl_ms {value!r}: expected 1 to 86400000 milliseconds"
        )
    return value
