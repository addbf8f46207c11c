"""The logged model store interface (MLflow 3's "logged models"), enforced with :class:`abc.ABC`.

It is separate from :class:`~slipway.tracking.store.base.AbstractTrackingStore` so that each
backend can add logged models when it is ready; a store offers them by also deriving from
:class:`AbstractLoggedModelStore`. The helpers below (name checks, the search grammar, page
tokens) are shared by every backend. This module imports neither SQLAlchemy nor any HTTP
library.

Search filters use the tracking search grammar (``AND`` of comparisons) over::

    name = 'model'  and  status = 'READY'  and  creation_timestamp > 1700000000000
    metrics.accuracy >= 0.9  and  params.alpha = '0.5'  and  tags.team LIKE 'ml%'

Attributes: ``name``, ``model_id``, ``experiment_id``, ``status``, ``source_run_id``,
``model_type``, ``artifact_location`` (strings: ``= != LIKE ILIKE IN NOT IN``) and
``creation_timestamp``, ``last_updated_timestamp`` (numbers). Metrics compare the numeric value of
any recorded point (restricted to the ``datasets`` given, if any).
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slipway.entities import (
    LoggedModel,
    LoggedModelInput,
    LoggedModelMetric,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    PagedList,
)
from slipway.exceptions import InvalidFilter, InvalidParameterValue
from slipway.tracking import search
from slipway.tracking.search import NUMERIC_OPS, SET_OPS, STRING_OPS, Comparison

SEARCH_LOGGED_MODELS_MAX_RESULTS_DEFAULT = 100
MAX_LOGGED_MODEL_NAME_LENGTH = 500
MAX_LOGGED_MODEL_TYPE_LENGTH = 500
MAX_LOGGED_MODEL_STATUS_MESSAGE_LENGTH = 1000
MAX_LOGGED_MODEL_VALUE_LENGTH = 65535
"""Tag and param values of logged models (MLflow keeps them as unbounded text)."""

_NAME_FORBIDDEN = ("/", ":", ".", "%", '"', "'")
_DIRECTIONS = ("ASC", "DESC")

STRING_ATTRIBUTES = frozenset(
    {
        "name",
        "model_id",
        "experiment_id",
        "status",
        "source_run_id",
        "model_type",
        "artifact_location",
    }
)
NUMERIC_ATTRIBUTES = frozenset({"creation_timestamp", "last_updated_timestamp"})
ATTRIBUTE_ALIASES = {
    "creation_time": "creation_timestamp",
    "creation_timestamp_ms": "creation_timestamp",
    "last_updated_timestamp_ms": "last_updated_timestamp",
    "last_update_time": "last_updated_timestamp",
    "artifact_uri": "artifact_location",
}
_FILTER_PREFIXES = {
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
}


@dataclass(frozen=True, slots=True)
class DatasetFilter:
    """Restricts metric filters (and, alone, the models) to metrics on a dataset."""

    dataset_name: str
    dataset_digest: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedModelOrder:
    """One order_by clause: an attribute, or the latest value of a metric (on a dataset)."""

    kind: str  # "attribute" or "metric"
    key: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class AbstractLoggedModelStore(abc.ABC):
    """Logged models, their params, tags and metrics, and the runs that produced them."""

    @abc.abstractmethod
    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Sequence[LoggedModelTag] = (),
        params: Sequence[LoggedModelParameter] = (),
        model_type: str | None = None,
    ) -> LoggedModel:
        """Create a PENDING model in an active experiment (a name is generated if none is
        given); its artifact location is ``<experiment location>/models/<model_id>/artifacts``."""

    @abc.abstractmethod
    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The model; RESOURCE_DOES_NOT_EXIST if there is none (or it is deleted and
        ``allow_deleted`` is false)."""

    @abc.abstractmethod
    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus) -> LoggedModel:
        """Set the model's status (READY or FAILED, normally) and return the model."""

    @abc.abstractmethod
    def delete_logged_model(self, model_id: str) -> None:
        """Soft-delete the model: it disappears from searches and plain gets."""

    @abc.abstractmethod
    def log_logged_model_params(
        self, model_id: str, params: Sequence[LoggedModelParameter]
    ) -> None:
        """Add params; logging a key again with the same value is accepted, with another value
        it is INVALID_PARAMETER_VALUE."""

    @abc.abstractmethod
    def set_logged_model_tags(self, model_id: str, tags: Sequence[LoggedModelTag]) -> None:
        """Set (or overwrite) tags; the last value of a key repeated in one call wins."""

    @abc.abstractmethod
    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove a tag; RESOURCE_DOES_NOT_EXIST if the model has no such tag."""

    @abc.abstractmethod
    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        datasets: Sequence[Mapping[str, Any] | DatasetFilter] | None = None,
        max_results: int | None = None,
        order_by: Sequence[Mapping[str, Any] | str | LoggedModelOrder] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """Active models of the experiments matching the filter, ordered by ``order_by`` then
        newest first (ties by model id); at most ``max_results`` (default 100) per page."""

    @abc.abstractmethod
    def log_logged_model_metrics(self, run_id: str, metrics: Sequence[LoggedModelMetric]) -> None:
        """Record metric points for models (each names its model), logged by an active run;
        the same point twice is kept once."""

    @abc.abstractmethod
    def log_outputs(self, run_id: str, models: Sequence[LoggedModelOutput]) -> None:
        """Record models an active run produced."""

    @abc.abstractmethod
    def log_model_inputs(self, run_id: str, models: Sequence[LoggedModelInput]) -> None:
        """Record models an active run used."""

    @abc.abstractmethod
    def get_model_outputs(self, run_id: str) -> list[LoggedModelOutput]:
        """The models a run produced, in the order they were recorded."""

    @abc.abstractmethod
    def get_model_inputs(self, run_id: str) -> list[LoggedModelInput]:
        """The models a run used, in the order they were recorded."""


# ---------------------------------------------------------------------------------------------
# Checks shared by the backends


def validate_logged_model_name(name: object) -> str:
    """A model name: non-empty, at most 500 characters, without ``/ : . % " '`` (the name
    appears in ``runs:/<run_id>/<name>`` URIs and in search filters)."""
    if not isinstance(name, str) or not name:
        raise InvalidParameterValue(f"Invalid model name ({name!r}): it must be a non-empty string")
    bad = sorted({c for c in name if c in _NAME_FORBIDDEN})
    if bad:
        raise InvalidParameterValue(
            f"Invalid model name ({name!r}): it cannot contain {' '.join(bad)} "
            f"(forbidden: {' '.join(_NAME_FORBIDDEN)})"
        )
    if len(name) > MAX_LOGGED_MODEL_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Model name is {len(name)} characters long; the limit is "
            f"{MAX_LOGGED_MODEL_NAME_LENGTH}"
        )
    return name


def validate_optional_text(value: object, what: str, limit: int) -> str | None:
    """An optional free-text field (model type, status message): None, or a string within
    ``limit`` characters; an empty string counts as None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameterValue(f"{what} must be a string")
    if len(value) > limit:
        raise InvalidParameterValue(f"{what} is {len(value)} characters long; the limit is {limit}")
    return value


def validate_value(key: str, value: object, kind: str) -> str:
    """A tag or param value of a logged model: a string within the length limit."""
    if not isinstance(value, str):
        raise InvalidParameterValue(f"{kind} value for '{key}' must be a string")
    if len(value) > MAX_LOGGED_MODEL_VALUE_LENGTH:
        raise InvalidParameterValue(
            f"{kind} value for '{key}' had length {len(value)}, which exceeded the length limit "
            f"of {MAX_LOGGED_MODEL_VALUE_LENGTH}"
        )
    return value


# ---------------------------------------------------------------------------------------------
# The search grammar


def parse_logged_model_filter(filter_string: str | None) -> list[Comparison]:
    """Parse a logged model search filter into comparisons (``kind`` is ``attribute``,
    ``metric``, ``param`` or ``tag``; attribute keys are canonical, status values are the
    stored names)."""
    if filter_string is None or not filter_string.strip():
        return []
    parser = search._Parser(filter_string, "filter")
    result = []
    for prefix, key, key_tok, op, op_tok, value, val_tok in parser.conjunction():
        kind = "attribute" if prefix is None else _FILTER_PREFIXES.get(prefix.lower())
        if kind is None:
            raise parser.error(
                f"invalid entity type {prefix!r}; expected one of attributes, metrics, params, "
                "tags",
                key_tok,
            )
        if kind == "metric":
            allowed = NUMERIC_OPS
        elif kind in ("param", "tag"):
            allowed = STRING_OPS | SET_OPS
        else:
            key = ATTRIBUTE_ALIASES.get(key, key)
            if key in NUMERIC_ATTRIBUTES:
                allowed = NUMERIC_OPS
            elif key in STRING_ATTRIBUTES:
                allowed = STRING_OPS | SET_OPS
            else:
                valid = ", ".join(sorted(STRING_ATTRIBUTES | NUMERIC_ATTRIBUTES))
                raise parser.error(
                    f"invalid attribute {key!r}; valid attributes are {valid}", key_tok
                )
        if op not in allowed:
            raise parser.error(
                f"operator {op!r} is not allowed for {kind} {key!r}; use one of "
                f"{', '.join(sorted(allowed))}",
                op_tok,
            )
        numeric = kind == "metric" or key in NUMERIC_ATTRIBUTES
        if numeric != isinstance(value, float):
            expected = "a number" if numeric else "a quoted string"
            raise parser.error(
                f"expected {expected} for {kind} {key!r}, got {val_tok.text!r}", val_tok
            )
        if kind == "attribute" and key == "status" and op in ("=", "!=", "IN", "NOT IN"):
            value = _status_values(value)
        result.append(Comparison(kind, key, op, value))  # type: ignore[arg-type]
    return result


def _status_values(value: Any) -> Any:
    """Status names as stored ("READY"), from any spelling the client uses; unknown names are
    kept, to match nothing."""

    def one(text: str) -> str:
        try:
            return str(LoggedModelStatus.parse(text))
        except InvalidParameterValue:
            return text

    return tuple(one(v) for v in value) if isinstance(value, tuple) else one(value)


def parse_logged_model_order_by(
    order_by: Sequence[Mapping[str, Any] | str | LoggedModelOrder] | None,
) -> list[LoggedModelOrder]:
    """Order clauses from MLflow's ``{field_name, ascending, dataset_name, dataset_digest}``
    objects or from strings such as ``"metrics.accuracy DESC"``."""
    result = []
    for item in order_by or []:
        if isinstance(item, LoggedModelOrder):
            result.append(item)
            continue
        field_name, ascending, dataset_name, dataset_digest = _order_fields(item)
        prefix, dot, rest = field_name.partition(".")
        kind = _FILTER_PREFIXES.get(prefix.lower()) if dot else "attribute"
        key = rest.strip('`"') if dot else field_name
        if kind == "attribute":
            key = ATTRIBUTE_ALIASES.get(key, key)
            if key not in STRING_ATTRIBUTES | NUMERIC_ATTRIBUTES:
                raise InvalidFilter(f"Invalid order by field name: {field_name}")
        elif kind != "metric" or not key:
            raise InvalidFilter(
                f"Invalid order by field name: {field_name}. Only attributes and metrics are "
                "supported."
            )
        if (dataset_name or dataset_digest) and kind != "metric":
            raise InvalidFilter(
                f"order_by {field_name!r}: dataset_name and dataset_digest apply to metrics only"
            )
        if dataset_digest and not dataset_name:
            raise InvalidFilter(f"order_by {field_name!r}: dataset_digest needs dataset_name")
        result.append(LoggedModelOrder(kind, key, ascending, dataset_name, dataset_digest))
    return result


def _order_fields(item: object) -> tuple[str, bool, str | None, str | None]:
    """(field name, ascending, dataset name, dataset digest) of one order_by clause."""
    if isinstance(item, str):
        words = item.split()
        if not 1 <= len(words) <= 2 or (len(words) == 2 and words[1].upper() not in _DIRECTIONS):
            raise InvalidFilter(f"Invalid order_by clause {item!r}")
        return words[0], len(words) == 1 or words[1].upper() == "ASC", None, None
    if not isinstance(item, Mapping):
        raise InvalidFilter(f"Invalid order_by clause {item!r}")
    field_name = item.get("field_name")
    ascending = item.get("ascending", True)
    dataset_name = item.get("dataset_name") or None
    dataset_digest = item.get("dataset_digest") or None
    if not isinstance(field_name, str) or not field_name:
        raise InvalidFilter(f"Invalid order_by clause {dict(item)!r}: it needs a field_name")
    if not isinstance(ascending, bool):
        raise InvalidFilter(f"Invalid order_by clause {dict(item)!r}: ascending is not a bool")
    for what, value in (("dataset_name", dataset_name), ("dataset_digest", dataset_digest)):
        if value is not None and not isinstance(value, str):
            raise InvalidFilter(f"Invalid order_by clause {dict(item)!r}: {what} is not a string")
    return field_name, ascending, dataset_name, dataset_digest


def parse_dataset_filters(
    datasets: Sequence[Mapping[str, Any] | DatasetFilter] | None,
) -> list[DatasetFilter]:
    result = []
    for item in datasets or []:
        if isinstance(item, DatasetFilter):
            result.append(item)
            continue
        name = item.get("dataset_name") if isinstance(item, Mapping) else None
        digest = item.get("dataset_digest") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue(
                "`dataset_name` in the `datasets` clause must be specified."
            )
        if digest is not None and not isinstance(digest, str):
            raise InvalidParameterValue(
                "`dataset_digest` in the `datasets` clause must be a string"
            )
        result.append(DatasetFilter(name, digest or None))
    return result


# ---------------------------------------------------------------------------------------------
# Page tokens: base64 of {"offset": N, "query": <fingerprint of the search>}


def search_fingerprint(
    experiment_ids: Sequence[str],
    filter_string: str | None,
    datasets: Sequence[DatasetFilter],
    order_by: Sequence[LoggedModelOrder],
) -> str:
    """A short digest of what a search asks for: a page token only continues the same search."""
    text = json.dumps(
        [
            [str(e) for e in experiment_ids],
            filter_string or "",
            [[d.dataset_name, d.dataset_digest] for d in datasets],
            [[o.kind, o.key, o.ascending, o.dataset_name, o.dataset_digest] for o in order_by],
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_search_token(offset: int, fingerprint: str) -> str:
    payload = json.dumps({"offset": offset, "query": fingerprint}).encode()
    return base64.urlsafe_b64encode(payload).decode()


def decode_search_token(token: str | None, fingerprint: str) -> int:
    """The offset in a page token; INVALID_PARAMETER_VALUE for a token that does not decode or
    that belongs to another search."""
    if not token:
        return 0
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, query = payload["offset"], payload["query"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidParameterValue(
            f"Invalid page token {token!r}: it could not be decoded"
        ) from exc
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidParameterValue(f"Invalid page token {token!r}: bad offset")
    if query != fingerprint:
        raise InvalidParameterValue(
            "The page token belongs to another search: the experiment ids, filter, datasets and "
            "order_by must stay the same from page to page"
        )
    return offset


__all__ = [
    "SEARCH_LOGGED_MODELS_MAX_RESULTS_DEFAULT",
    "AbstractLoggedModelStore",
    "DatasetFilter",
    "LoggedModelOrder",
    "decode_search_token",
    "encode_search_token",
    "parse_dataset_filters",
    "parse_logged_model_filter",
    "parse_logged_model_order_by",
    "search_fingerprint",
    "validate_logged_model_name",
]
