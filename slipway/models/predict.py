"""Batch prediction from a file: ``slipway models predict``, under either environment manager.

The input is read by its extension:

* ``.csv``: a DataFrame (``pandas.read_csv``);
* ``.parquet``: a DataFrame (needs pyarrow or fastparquet, as pandas does);
* ``.json``: MLflow's scoring formats, with exactly one of ``dataframe_split`` (pandas split
  orient: ``columns``, ``data``, optional ``index``), ``dataframe_records`` (a list of row
  objects), ``instances`` (rows; a list of objects becomes one array per column) or
  ``inputs`` (a tensor, or an object of named tensors), and an optional ``params`` object
  passed to ``predict``; or a plain list of row objects.

The predictions are written as ``{"predictions": ...}`` JSON, as MLflow's scoring server
answers: a DataFrame as a list of records, arrays as nested lists, NaN as null.

Environment managers: ``local`` loads the model in this process; ``venv`` downloads the model
here, builds (or reuses) its environment with :mod:`slipway.models.env_manager`, and runs
``<env>/bin/python -m slipway.models.predict --model-dir ...`` there. The child gets a local
directory, so it needs no access to the tracking or registry store, and it reports a
:class:`~slipway.exceptions.SlipwayError` back as one JSON line on stderr, so the caller
raises the same error it would have raised in-process.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from slipway.exceptions import InvalidParameterValue, InvalidState, SlipwayError

SCORING_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
"""The JSON input formats MLflow's scoring server accepts; a payload names exactly one."""
ENV_MANAGERS = ("local", "venv")
INPUT_SUFFIXES = (".csv", ".json", ".parquet")
ERROR_PREFIX = "SLIPWAY_PREDICT_ERROR "
"""Marks the stderr line on which the child process reports its error as JSON."""


# -- input -----------------------------------------------------------------------------------


def read_input(path: str | Path) -> tuple[Any, dict[str, Any] | None]:
    """The data in the file at ``path`` and the ``params`` it carries (JSON only).

    Raises:
        InvalidParameterValue: naming the file and the problem: missing, an unknown
            extension, or content that does not parse as its format says.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise InvalidParameterValue(
            f"Cannot read input {str(path)!r}: unknown extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(INPUT_SUFFIXES)}"
        )
    if not path.is_file():
        raise InvalidParameterValue(f"Input file {str(path)!r} does not exist")
    if suffix == ".json":
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidParameterValue(f"Input {str(path)!r} is not valid JSON: {exc}") from None
        try:
            return parse_json_input(payload)
        except InvalidParameterValue as exc:
            raise InvalidParameterValue(f"Input {str(path)!r}: {exc.message}") from None
    return _read_table(path, suffix), None


def _read_table(path: Path, suffix: str) -> Any:
    import pandas as pd

    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except ImportError as exc:
        raise InvalidParameterValue(
            f"Cannot read {str(path)!r}: reading Parquet needs pyarrow ({exc})"
        ) from None
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # pandas' parser errors included
        kind = "CSV" if suffix == ".csv" else "Parquet"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterValue(f"Input {str(path)!r} is not valid {kind}: {reason}") from None


def parse_json_input(payload: Any) -> tuple[Any, dict[str, Any] | None]:
    """The model input and params of a parsed JSON scoring payload.

    Raises:
        InvalidParameterValue: for two scoring keys at once, none, unknown keys, params that
            are not an object, or data that does not fit its format.
    """
    if isinstance(payload, list):
        if not payload or not all(isinstance(row, dict) for row in payload):
            raise InvalidParameterValue(
                "A plain JSON list must be a non-empty list of records (objects); for other "
                f"data use an object with one of {_keys_text()}"
            )
        return _dataframe_records(payload), None
    if not isinstance(payload, dict):
        raise InvalidParameterValue(
            f"The JSON input must be an object with one of {_keys_text()}, or a list of records"
        )
    present = [key for key in SCORING_KEYS if key in payload]
    unknown = sorted(set(payload) - {*SCORING_KEYS, "params"})
    if len(present) > 1:
        raise InvalidParameterValue(
            f"The JSON input has both {present[0]!r} and {present[1]!r}; give exactly one of "
            f"{_keys_text()}"
        )
    if unknown:
        raise InvalidParameterValue(
            f"Unknown key(s) in the JSON input: {', '.join(map(repr, unknown))}; expected one "
            f"of {_keys_text()} and optionally 'params'"
        )
    if not present:
        raise InvalidParameterValue(f"The JSON input needs one of {_keys_text()}")
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidParameterValue("'params' must be a JSON object of parameter names to values")
    key = present[0]
    parse = {
        "dataframe_split": _dataframe_split,
        "dataframe_records": _dataframe_records,
        "instances": _instances,
        "inputs": _tensors,
    }[key]
    try:
        return parse(payload[key]), params
    except (ValueError, TypeError) as exc:
        raise InvalidParameterValue(f"{key!r} does not hold valid data: {exc}") from None


def _keys_text() -> str:
    return ", ".join(repr(key) for key in SCORING_KEYS)


def _dataframe_split(body: Any) -> Any:
    import pandas as pd

    if not isinstance(body, dict) or "data" not in body:
        raise ValueError("it must be an object with 'data', and optionally 'columns' and 'index'")
    extra = sorted(set(body) - {"columns", "data", "index"})
    if extra:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, extra))}")
    columns, data = body.get("columns"), body["data"]
    if body.get("index") is None and isinstance(columns, list):
        fast = _numeric_frame(data, columns)
        if fast is not None:
            return fast
    return pd.DataFrame(data=data, columns=columns, index=body.get("index"))


def _numeric_frame(data: Any, columns: list[Any]) -> Any:
    """The frame for rows that are all floats or all ints, built from one numpy array (one
    block, no per-column inference): what a model server gets on almost every request, at a
    fraction of pandas' general constructor's cost. None when the rows are anything else (a
    mix of ints and floats keeps its per-column types through the general path)."""
    import numpy as np
    import pandas as pd

    if not isinstance(data, list) or not data or not isinstance(data[0], list):
        return None
    width = len(columns)
    if width == 0 or any(not isinstance(row, list) or len(row) != width for row in data):
        return None
    first = type(data[0][0])
    if first not in (float, int) or any(type(v) is not first for row in data for v in row):
        return None
    try:
        array = np.asarray(data, dtype=np.float64 if first is float else np.int64)
    except OverflowError:  # ints beyond int64: let pandas decide
        return None
    return pd.DataFrame(array, columns=_column_index(tuple(columns)), copy=False)


@functools.lru_cache(maxsize=256)
def _column_index(columns: tuple[Any, ...]) -> Any:
    """A column index, built once per column list (string indexes are costly to build)."""
    import pandas as pd

    return pd.Index(columns, dtype=object)


def _dataframe_records(body: Any) -> Any:
    import pandas as pd

    if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
        raise ValueError("it must be a list of records (objects)")
    return pd.DataFrame.from_records(body)


def _instances(body: Any) -> Any:
    """Rows; a list of objects becomes one array per key, as MLflow reads TF-serving rows."""
    import numpy as np

    if isinstance(body, list) and body and all(isinstance(row, dict) for row in body):
        keys = list(body[0])
        if any(list(row) != keys for row in body):
            raise ValueError("every instance must have the same keys, in the same order")
        return {key: np.asarray([row[key] for row in body]) for key in keys}
    return _tensors(body)


def _tensors(body: Any) -> Any:
    import numpy as np

    if isinstance(body, dict):
        return {str(key): np.asarray(value) for key, value in body.items()}
    if not isinstance(body, list):
        raise ValueError("it must be a list (a tensor) or an object of named tensors")
    return np.asarray(body)


def parse_params(text: str | None) -> dict[str, Any] | None:
    """``--params``: a JSON object, or None.

    Raises:
        InvalidParameterValue: for text that is not a JSON object.
    """
    if text is None:
        return None
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameterValue(f"--params is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise InvalidParameterValue("--params must be a JSON object, e.g. '{\"top_k\": 3}'")
    return params


# -- output ----------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: DataFrames as records, arrays as lists, NaN and NaT as
    null, dates as ISO 8601 text, bytes as base64."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return jsonable(value.to_dict(orient="records"))
    if isinstance(value, (pd.Series, pd.Index, np.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (datetime, date, time)):  # pd.Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def write_predictions(predictions: Any, output: str | Path | None) -> None:
    """``{"predictions": ...}`` to the file ``output``, or to stdout when it is None."""
    text = json.dumps({"predictions": jsonable(predictions)}, allow_nan=False)
    if output is None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        Path(output).write_text(text + "\n", encoding="utf-8")


# -- predicting ------------------------------------------------------------------------------


def predict(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path | None = None,
    *,
    env_manager: str = "local",
    params: Mapping[str, Any] | None = None,
    env_cache: Path | None = None,
) -> None:
    """Predict on the file ``input_path`` with the model at ``model_uri``.

    Args:
        model_uri: any model URI (``runs:/``, ``models:/``, a local path, ...).
        input_path: a ``.csv``, ``.json`` or ``.parquet`` file.
        output_path: where the predictions JSON goes; stdout when omitted.
        env_manager: ``local`` (this process) or ``venv`` (the model's own environment).
        params: passed to ``predict``; they override ``params`` given in a JSON input.
        env_cache: where ``venv`` environments are kept (see
            :func:`~slipway.models.env_manager.env_cache_root`).

    Raises:
        InvalidParameterValue: for bad input, an unknown env manager, or a model that fails
            on the input.
        InvalidState: when the model's environment cannot be built.
    """
    if env_manager not in ENV_MANAGERS:
        raise InvalidParameterValue(
            f"Unknown env manager {env_manager!r}; use one of {', '.join(ENV_MANAGERS)}"
        )
    if env_manager == "local":
        predict_in_process(model_uri, input_path, output_path, params)
        return
    read_input(input_path)  # bad input fails before a download and an environment build
    from slipway.models.uri import download_model

    with tempfile.TemporaryDirectory(prefix="slipway-predict-") as tmp:
        model_dir = download_model(model_uri, tmp)
        _predict_in_venv(model_dir, Path(input_path), output_path, params, env_cache)


def predict_in_process(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path | None,
    params: Mapping[str, Any] | None,
) -> None:
    """Read, load, predict and write, all in this process (the ``local`` manager)."""
    from slipway.flavors.pyfunc import load_model

    data, file_params = read_input(input_path)
    merged = {**(file_params or {}), **(params or {})} or None
    model = load_model(model_uri)
    try:
        predictions = model.predict(data, params=merged)
    except SlipwayError:
        raise
    except Exception as exc:
        raise InvalidParameterValue(
            f"The model failed to predict on {str(input_path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    write_predictions(predictions, output_path)


def _predict_in_venv(
    model_dir: Path,
    input_path: Path,
    output_path: str | Path | None,
    params: Mapping[str, Any] | None,
    env_cache: Path | None,
) -> None:
    from slipway.models.env_manager import env_python, get_or_create_env

    env_dir = get_or_create_env(model_dir, cache_root=env_cache)
    with tempfile.TemporaryDirectory(prefix="slipway-predictions-") as tmp:
        target = Path(output_path) if output_path is not None else Path(tmp) / "out.json"
        command = [
            str(env_python(env_dir)),
            "-I",  # isolated: the current folder (a checkout, say) must not shadow the env's
            "-m",
            "slipway.models.predict",
            "--model-dir",
            str(model_dir.resolve()),
            "--input",
            str(input_path.resolve()),
            "--output",
            str(target.resolve()),
        ]
        if params:
            command += ["--params", json.dumps(dict(params))]
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
        _raise_child_error(done.returncode, done.stderr)
        if output_path is None:
            sys.stdout.write(target.read_text(encoding="utf-8"))
            sys.stdout.flush()


def _raise_child_error(code: int, stderr: str) -> None:
    """Pass the child's stderr on, and raise the error it reported (if it failed)."""
    lines = stderr.splitlines()
    reported = [line for line in lines if line.startswith(ERROR_PREFIX)]
    others = [line for line in lines if not line.startswith(ERROR_PREFIX)]
    if others:
        sys.stderr.write("\n".join(others) + "\n")
    if code == 0:
        return
    if reported:
        body = json.loads(reported[-1].removeprefix(ERROR_PREFIX))
        raise SlipwayError.from_code(body["error_code"], body["message"])
    tail = "\n".join(others[-20:])
    raise InvalidState(f"Prediction in the model's environment failed (exit code {code}):\n{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m slipway.models.predict``: what the ``venv`` manager runs in the model's
    environment, on a model directory that is already local."""
    parser = argparse.ArgumentParser(prog="python -m slipway.models.predict")
    parser.add_argument("--model-dir", required=True, help="a local model directory")
    parser.add_argument("--input", required=True, help="a .csv, .json or .parquet file")
    parser.add_argument("--output", help="where the predictions JSON goes (default: stdout)")
    parser.add_argument("--params", help="a JSON object of params for predict")
    args = parser.parse_args(argv)
    try:
        predict_in_process(args.model_dir, args.input, args.output, parse_params(args.params))
    except SlipwayError as err:
        body = {"error_code": err.error_code, "message": err.message}
        sys.stderr.write(ERROR_PREFIX + json.dumps(body) + "\n")
        return 1
    return 0


__all__ = [
    "ENV_MANAGERS",
    "SCORING_KEYS",
    "jsonable",
    "main",
    "parse_json_input",
    "parse_params",
    "predict",
    "predict_in_process",
    "read_input",
    "write_predictions",
]

if __name__ == "__main__":
    sys.exit(main())
