"""Datasets from pandas, numpy and plain Python data, with a digest computed from content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from slipway.entities import Dataset, DatasetInput, InputTag
from slipway.exceptions import InvalidParameterValue

DIGEST_LENGTH = 16


def dataset_from(
    data: Any,
    name: str | None = None,
    source: str | None = None,
    context: str | None = None,
    tags: dict[str, str] | None = None,
) -> DatasetInput:
    """A :class:`DatasetInput` for ``data`` (a pandas DataFrame or Series, a numpy array, a dict
    of arrays, a list, or an existing :class:`Dataset`). The digest hashes the values and the
    schema, so changed data gives a changed digest."""
    if isinstance(data, Dataset):
        dataset = data
    else:
        digest, schema, profile = _describe(data)
        dataset = Dataset(
            name=name or "dataset",
            digest=digest,
            source_type="local" if source else "code",
            source=json.dumps({"uri": source} if source else {"type": type(data).__name__}),
            schema=json.dumps(schema),
            profile=json.dumps(profile),
        )
    input_tags = [InputTag(k, str(v)) for k, v in (tags or {}).items()]
    if context:
        input_tags.append(InputTag(DatasetInput.CONTEXT_TAG, context))
    return DatasetInput(dataset, tuple(input_tags))


def _describe(data: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, dict) and data and all(hasattr(v, "__len__") for v in data.values()):
        try:
            data = pd.DataFrame(data)
        except ValueError as exc:
            raise InvalidParameterValue(f"Cannot use this dict as a dataset: {exc}") from exc
    if isinstance(data, list):
        try:
            data = np.asarray(data)
        except ValueError as exc:  # ragged nesting
            raise InvalidParameterValue(f"Cannot use this list as a dataset: {exc}") from exc
    h = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        columns = [{"name": str(c), "type": str(t)} for c, t in data.dtypes.items()]
        h.update(json.dumps(columns).encode())
        try:
            hashed = pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes()
        except TypeError:  # cells holding lists or dicts: hash their JSON instead
            hashed = data.to_json(orient="split", default_handler=str).encode()
        h.update(hashed)
        schema: dict[str, Any] = {"columns": columns}
        profile = {"num_rows": len(data), "num_elements": int(data.size)}
    elif isinstance(data, np.ndarray):
        h.update(f"{data.dtype}{data.shape}".encode())
        if data.dtype == object:
            h.update(json.dumps(data.tolist(), default=str).encode())
        else:
            h.update(np.ascontiguousarray(data).tobytes())
        schema = {"tensor": {"dtype": str(data.dtype), "shape": [-1, *data.shape[1:]]}}
        profile = {
            "num_rows": int(data.shape[0]) if data.ndim else 1,
            "num_elements": int(data.size),
        }
    else:
        raise InvalidParameterValue(
            f"Cannot log a {type(data).__name__} as a dataset: pass a pandas DataFrame or "
            "Series, a numpy array, a dict of columns, a list, or a slipway Dataset"
        )
    return h.hexdigest()[:DIGEST_LENGTH], schema, profile
