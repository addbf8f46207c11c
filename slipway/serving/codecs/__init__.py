"""Wire formats of the model server: pure functions from request bytes to model input, and
from predictions to response bodies, one module per protocol.

* :mod:`~slipway.serving.codecs.mlflow`: MLflow's scoring protocol (``POST /invocations``);
* :mod:`~slipway.serving.codecs.v2`: the Open Inference Protocol V2 REST API (KServe, Triton);
* :mod:`~slipway.serving.codecs.v1`: KServe's V1 protocol (``{"instances": [...]}``).

This module holds what they share: the errors for bodies the server cannot read, the
``Content-Type`` parser, JSON decoding with a message that points at the problem, and the
row count that batching and the empty-batch check both rely on.
"""

from __future__ import annotations

import json
from typing import Any

from slipway.exceptions import BadRequest


class UnsupportedMediaType(BadRequest):
    """A ``Content-Type`` (or charset) the protocol does not read: HTTP 415."""

    @property
    def http_status(self) -> int:
        return 415


def parse_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """``(media type, parameters)`` of a ``Content-Type`` header, lower-cased, ``("", {})``
    when there is none. ``application/json; charset=UTF-8`` gives
    ``("application/json", {"charset": "utf-8"})``."""
    if not header:
        return "", {}
    media, *pairs = (part.strip() for part in header.split(";"))
    params: dict[str, str] = {}
    for pair in pairs:
        if not pair:
            continue
        key, _, value = pair.partition("=")
        params[key.strip().lower()] = value.strip().strip('"').lower()
    return media.lower(), params


def check_charset(params: dict[str, str], content_type: str) -> None:
    """Refuse (415) a charset other than UTF-8, and parameters other than ``charset``."""
    charset = params.get("charset", "utf-8")
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"Unsupported charset {charset!r} in Content-Type {content_type!r}: the server "
            "reads UTF-8 only"
        )
    unknown = sorted(set(params) - {"charset"})
    if unknown:
        raise UnsupportedMediaType(
            f"Unrecognized Content-Type parameter(s) {', '.join(unknown)} in {content_type!r}"
        )


def decode_text(body: bytes, what: str = "The request body") -> str:
    """``body`` as UTF-8 text (400 naming the first bad byte otherwise)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"{what} is not valid UTF-8: byte {exc.start} ({body[exc.start : exc.start + 1]!r})"
        ) from None


def load_json(body: bytes, what: str = "The request body") -> Any:
    """The JSON value in ``body``; a 400 that names the line and column of a syntax error."""
    text = decode_text(body, what)
    if not text.strip():
        raise BadRequest(f"{what} is empty; send a JSON document")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply to read as JSON") from None


def count_rows(data: Any) -> int | None:
    """The number of rows (the first dimension) in model input, None when it has none:
    a DataFrame's length, an array's first dimension, the common length of a dict's arrays."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame | pd.Series):
        return len(data)
    if isinstance(data, np.ndarray):
        return int(data.shape[0]) if data.ndim else None
    if isinstance(data, dict) and data:
        lengths = {count_rows(value) for value in data.values()}
        return lengths.pop() if len(lengths) == 1 else None
    if isinstance(data, list):
        return len(data)
    return None


def require_rows(data: Any) -> None:
    """Refuse (400) an empty batch: a model cannot answer for no rows."""
    if count_rows(data) == 0:
        raise BadRequest("The request holds no rows: send at least one row to predict on")


__all__ = [
    "UnsupportedMediaType",
    "check_charset",
    "count_rows",
    "decode_text",
    "load_json",
    "parse_content_type",
    "require_rows",
]
