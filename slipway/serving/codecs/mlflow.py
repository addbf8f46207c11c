"""MLflow's scoring protocol: what ``POST /invocations`` reads and answers.

A request is either

* ``application/json`` (optionally ``; charset=utf-8``): an object with exactly one of
  ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``, and optionally
  ``params`` (passed to ``predict``); or
* ``text/csv``: a table with a header row.

Any other media type or charset gets 415, as MLflow's scoring server answers. The response is
``{"predictions": ...}``: a DataFrame as a list of records, arrays as nested lists, NaN as
null. Bad payloads raise :class:`~slipway.exceptions.BadRequest` (400) naming the problem.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from slipway.exceptions import BadRequest, InvalidParameterValue
from slipway.models.predict import SCORING_KEYS, jsonable, parse_json_input
from slipway.serving.codecs import (
    UnsupportedMediaType,
    check_charset,
    decode_text,
    load_json,
    parse_content_type,
    require_rows,
)

JSON = "application/json"
CSV = "text/csv"
CONTENT_TYPES = (JSON, CSV)


@dataclass(frozen=True)
class MlflowRequest:
    """A decoded ``/invocations`` request.

    Attributes:
        data: the model input (a DataFrame, an array, or a dict of arrays).
        params: the ``params`` object of a JSON request, else None.
    """

    data: Any
    params: dict[str, Any] | None


def decode_request(body: bytes, content_type: str | None) -> MlflowRequest:
    """Read an ``/invocations`` body sent with ``content_type``.

    Raises:
        UnsupportedMediaType: for a media type other than JSON or CSV, a charset other than
            UTF-8, or unknown ``Content-Type`` parameters (415).
        BadRequest: for malformed JSON or CSV, no scoring key or several, an empty batch.
    """
    media, params = parse_content_type(content_type)
    if media not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {content_type or '(none)'!r}: send "
            f"{' or '.join(CONTENT_TYPES)}"
        )
    check_charset(params, content_type or "")
    if media == CSV:
        request = MlflowRequest(_read_csv(decode_text(body)), None)
    else:
        payload = load_json(body)
        data, model_params = _parse_payload(payload)
        request = MlflowRequest(data, model_params)
    require_rows(request.data)
    return request


def _parse_payload(payload: Any) -> tuple[Any, dict[str, Any] | None]:
    keys = ", ".join(repr(key) for key in SCORING_KEYS)
    if isinstance(payload, list):
        raise BadRequest(
            f"The request body is a JSON list; send an object with one of {keys} (a "
            'list of records goes under "dataframe_records")'
        )
    if not isinstance(payload, dict):
        raise BadRequest(f"The request body must be a JSON object with one of {keys}")
    try:
        return parse_json_input(payload)
    except InvalidParameterValue as exc:
        raise BadRequest(exc.message) from None


def _read_csv(text: str) -> Any:
    import pandas as pd

    if not text.strip():
        raise BadRequest("The CSV body is empty; send a header row and at least one data row")
    try:
        return pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadRequest(f"The request body is not valid CSV: {reason}") from None


def encode_predictions(predictions: Any) -> dict[str, Any]:
    """The response object: ``{"predictions": ...}`` in plain JSON types."""
    return {"predictions": jsonable(predictions)}


def encode_response(predictions: Any) -> bytes:
    """The response body for ``predictions``."""
    return json.dumps(encode_predictions(predictions), allow_nan=False).encode()


__all__ = [
    "CONTENT_TYPES",
    "MlflowRequest",
    "decode_request",
    "encode_predictions",
    "encode_response",
]
