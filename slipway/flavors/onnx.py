"""ONNX models, in MLflow's ``onnx`` layout (``mlflow.onnx.load_model`` reads them).

A model directory holds ``model.onnx`` (with the large tensors in files beside it when
``save_as_external_data``) and an ``MLmodel`` with two flavors: ``onnx`` (``onnx_version``,
``data: model.onnx``, ``providers``, ``onnx_session_options``, ``code``) and
``python_function`` (``loader_module: mlflow.onnx``, ``data: model.onnx``).

The pyfunc interface runs the graph with onnxruntime, on the first of the saved ``providers``
that this onnxruntime has (the CPU when none is). It feeds the graph's named inputs from:
a dict of arrays (by name); a numpy array (the graph's only input); or a DataFrame (all its
columns as the only input, or, for a graph with several inputs, one column per input, by
name). Each array is cast to the input's element type when numpy can do so without changing a
value's kind (``float64`` to ``float``, ``int64`` to ``float``, never floats to integers), and a
column gets the ``(n, 1)`` shape an input of rank 2 wants. The outputs come back as a dict of
arrays by output name, or, for DataFrame input, as a DataFrame with one column per output (as
MLflow returns them; an output with several values per row becomes one column of arrays).

Loading an ONNX model runs no Python code from the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import pandas as pd

from slipway.exceptions import InvalidParameterValue
from slipway.flavors._versions import first_line, load_error, log_other_version
from slipway.models.environment import add_code_to_path
from slipway.models.info import ModelInfo
from slipway.models.mlmodel import Model, model_file
from slipway.models.save import FlavorSpec, SaveOptions, log_model_dir, save_model_dir, with_mlmodel
from slipway.models.uri import download_model

FLAVOR_NAME = "onnx"
LOADER_MODULE = "mlflow.onnx"
MODEL_FILE = "model.onnx"
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
"""MLflow's default: the GPU where onnxruntime has one, else the CPU."""

SESSION_OPTIONS = (
    "inter_op_num_threads",
    "intra_op_num_threads",
    "execution_mode",
    "graph_optimization_level",
    "extra_session_config",
)
"""The ``onnx_session_options`` keys that loaders (MLflow's and ours) apply."""

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}

_log = logging.getLogger(__name__)


def save_model(
    onnx_model: Any,
    path: str | os.PathLike[str],
    *,
    onnx_execution_providers: Sequence[str] | None = None,
    onnx_session_options: Mapping[str, Any] | None = None,
    save_as_external_data: bool = True,
    **options: Unpack[SaveOptions],
) -> Model:
    """Save an ``onnx.ModelProto`` as a model directory at ``path``; the graph is checked
    with ``onnx.checker`` first.

    Args:
        onnx_model: the model.
        path: a directory that does not exist yet, or is empty.
        onnx_execution_providers: the onnxruntime providers to run it on, in order of
            preference (default: CUDA, then the CPU).
        onnx_session_options: onnxruntime session options, by the names in
            :data:`SESSION_OPTIONS`.
        save_as_external_data: keep large tensors in files beside ``model.onnx`` (needed
            for models over 2 GB).
        **options: see :class:`~slipway.models.save.SaveOptions`.

    Raises:
        InvalidParameterValue: for something other than a ``ModelProto``, an invalid graph, or
            bad providers or session options.
    """
    import onnx

    if not isinstance(onnx_model, onnx.ModelProto):
        raise InvalidParameterValue(
            f"onnx_model must be an onnx.ModelProto, not {type(onnx_model).__name__}"
        )
    providers = _providers(onnx_execution_providers)
    session_options = _session_options(onnx_session_options)
    spec = FlavorSpec(
        name=FLAVOR_NAME,
        conf={
            "onnx_version": onnx.__version__,
            "data": MODEL_FILE,
            "providers": providers,
            "onnx_session_options": session_options,
        },
        requirements=("onnx", "onnxruntime", "numpy", "pandas"),
        loader_module=LOADER_MODULE,
        pyfunc_conf={"data": MODEL_FILE},
    )

    def write(model_dir: Path) -> None:
        target = model_dir / MODEL_FILE
        onnx.save_model(onnx_model, str(target), save_as_external_data=save_as_external_data)
        try:
            onnx.checker.check_model(str(target))
        except onnx.checker.ValidationError as exc:
            raise InvalidParameterValue(f"Invalid ONNX model: {first_line(exc)}") from exc

    def predict(example: Any) -> Any:
        # Called after write(), on the saved file (which may have external data beside it).
        session = _session(str(Path(path) / MODEL_FILE), providers, session_options)
        return OnnxPredictor(session).predict(example)

    return save_model_dir(path, spec, write=write, predict=predict, **options)


def log_model(
    onnx_model: Any,
    artifact_path: str,
    *,
    registered_model_name: str | None = None,
    onnx_execution_providers: Sequence[str] | None = None,
    onnx_session_options: Mapping[str, Any] | None = None,
    save_as_external_data: bool = True,
    **options: Unpack[SaveOptions],
) -> ModelInfo:
    """Save ``onnx_model`` into the active run's artifacts at ``artifact_path`` (starting a run
    if none is active) and, given ``registered_model_name``, register it as a new version.
    Other arguments as for :func:`save_model`."""
    return log_model_dir(
        artifact_path,
        lambda path, mlmodel: save_model(
            onnx_model,
            path,
            onnx_execution_providers=onnx_execution_providers,
            onnx_session_options=onnx_session_options,
            save_as_external_data=save_as_external_data,
            **with_mlmodel(options, mlmodel),
        ),
        registered_model_name=registered_model_name,
    )


def load_model(model_uri: str, dst_path: str | os.PathLike[str] | None = None) -> Any:
    """The ``onnx.ModelProto`` saved at ``model_uri`` (any URI that
    :func:`~slipway.models.uri.download_model` resolves), with its external data, checked
    with ``onnx.checker``.

    Raises:
        InvalidParameterValue: for a missing, corrupt or invalid model file (naming it and the
            ONNX versions that wrote and that read it).
    """
    import onnx

    model_dir = download_model(model_uri, dst_path)
    conf = Model.load(model_dir).flavor_conf(FLAVOR_NAME)
    add_code_to_path(model_dir, conf)
    path = model_file(model_dir, conf.get("data"), "ONNX model file")
    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path))
    except Exception as exc:
        raise load_error(
            "ONNX", "onnx", path, exc, conf.get("onnx_version"), onnx.__version__
        ) from exc
    log_other_version(_log, "ONNX", path, conf.get("onnx_version"), onnx.__version__)
    return model


def _load_pyfunc(model_dir: Path) -> OnnxPredictor:
    """The pyfunc implementation: an onnxruntime session on the saved providers."""
    import onnx

    conf = Model.load(model_dir).flavor_conf(FLAVOR_NAME)
    path = model_file(model_dir, conf.get("data"), "ONNX model file")
    saved = conf.get("onnx_version")
    try:
        session = _session(str(path), conf.get("providers"), conf.get("onnx_session_options"))
    except InvalidParameterValue:
        raise
    except Exception as exc:
        raise load_error("ONNX", "onnx", path, exc, saved, onnx.__version__) from exc
    log_other_version(_log, "ONNX", path, saved, onnx.__version__)
    return OnnxPredictor(session)


class OnnxPredictor:
    """An onnxruntime ``InferenceSession`` behind the pyfunc interface (see the module
    docstring for how inputs are fed and outputs returned)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = [(arg.name, arg.type, arg.shape) for arg in session.get_inputs()]
        self.output_names = [arg.name for arg in session.get_outputs()]

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The graph's outputs for ``data``.

        Raises:
            InvalidParameterValue: naming the input that is missing or does not fit.
        """
        feeds = {name: self._feed(name, kind, shape, data) for name, kind, shape in self.inputs}
        try:
            outputs = self.session.run(self.output_names, feeds)
        except Exception as exc:  # onnxruntime's errors are pybind classes without a base
            raise InvalidParameterValue(
                f"The ONNX model cannot predict for this input: {first_line(exc)}"
            ) from exc
        if isinstance(data, pd.DataFrame):
            columns = zip(self.output_names, outputs, strict=True)
            return pd.DataFrame({name: _column(value, len(data)) for name, value in columns})
        return dict(zip(self.output_names, outputs, strict=True))

    def get_raw_model(self) -> Any:
        return self.session

    def _feed(self, name: str, kind: str, shape: Sequence[Any], data: Any) -> Any:
        """The array for input ``name`` from ``data``, cast and shaped for the graph."""
        single = len(self.inputs) == 1
        names = [input_name for input_name, _, _ in self.inputs]
        if isinstance(data, dict):
            if name not in data:
                raise InvalidParameterValue(f"Missing input {name!r}; the model takes {names}")
            value = data[name]
        elif isinstance(data, pd.DataFrame) and not single:
            if name not in data.columns:
                raise InvalidParameterValue(
                    f"Missing input {name!r}: the model has several inputs, {names}, and takes "
                    "one DataFrame column for each"
                )
            value = data[name].to_numpy()
        elif isinstance(data, pd.DataFrame):
            value = data.to_numpy()
        elif isinstance(data, np.ndarray | list):
            if not single:
                raise InvalidParameterValue(
                    f"An array feeds a model with one input, but this one has {len(names)}: "
                    f"{names}; pass a dict or a DataFrame with one entry per input"
                )
            value = data
        else:
            raise InvalidParameterValue(
                "An ONNX model takes a pandas DataFrame, a numpy array or a dict of arrays, got "
                f"{type(data).__name__}"
            )
        return _cast(name, np.asarray(value), kind, shape)


def _cast(name: str, array: np.ndarray[Any, Any], kind: str, shape: Sequence[Any]) -> Any:
    wanted = _NUMPY_TYPES.get(kind)
    if wanted is not None and array.dtype != wanted:
        if not np.can_cast(array.dtype, wanted, casting="same_kind"):
            raise InvalidParameterValue(
                f"Input {name!r} is {kind}, which {array.dtype} data cannot be cast to"
            )
        array = array.astype(wanted)
    if array.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        array = array.reshape(-1, 1)
    return array


def _column(value: Any, rows: int) -> Any:
    """One output as a DataFrame column: flat when it has one value per row (or, as MLflow
    does, when it is not one entry per row), else one array per row."""
    array = np.asarray(value)
    if array.ndim <= 1 or len(array) != rows or array[0].size == 1:
        return array.reshape(-1)
    return list(array)


# -- options ---------------------------------------------------------------------------------


def _providers(providers: Sequence[str] | None) -> list[str]:
    if providers is None:
        return list(DEFAULT_PROVIDERS)
    if isinstance(providers, str) or not all(isinstance(p, str) and p for p in providers):
        raise InvalidParameterValue(
            "onnx_execution_providers must be a list of onnxruntime provider names, such as "
            f"{list(DEFAULT_PROVIDERS)}"
        )
    if not providers:
        raise InvalidParameterValue("onnx_execution_providers must name at least one provider")
    return list(providers)


def _session_options(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The options, checked: MLflow's loader ignores keys it does not know, so they are
    refused here rather than silently having no effect."""
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise InvalidParameterValue("onnx_session_options must be a dict")
    checked = dict(options)
    if unknown := sorted(set(checked) - set(SESSION_OPTIONS)):
        raise InvalidParameterValue(
            f"Unknown onnx_session_options {unknown}; known: {', '.join(SESSION_OPTIONS)}"
        )
    for key in ("inter_op_num_threads", "intra_op_num_threads"):
        value = checked.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise InvalidParameterValue(f"onnx_session_options[{key!r}] must be an integer >= 0")
    mode = checked.get("execution_mode")
    if mode is not None and (
        not isinstance(mode, str) or mode.upper() not in ("SEQUENTIAL", "PARALLEL")
    ):
        raise InvalidParameterValue(
            "onnx_session_options['execution_mode'] must be 'sequential' or 'parallel'"
        )
    level = checked.get("graph_optimization_level")
    if level is not None and level not in (0, 1, 2, 3, 99):
        raise InvalidParameterValue(
            "onnx_session_options['graph_optimization_level'] must be 0, 1, 2, 3 or 99"
        )
    extra = checked.get("extra_session_config")
    if extra is not None and (
        not isinstance(extra, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items())
    ):
        raise InvalidParameterValue(
            "onnx_session_options['extra_session_config'] must map strings to strings"
        )
    return checked


def _session(model: str | bytes, providers: Any, options: Any) -> Any:
    """An onnxruntime session for ``model`` (a path, or serialized bytes)."""
    import onnxruntime  # type: ignore[import-untyped]

    session_options = onnxruntime.SessionOptions()
    for key, value in (_session_options(options) or {}).items():
        if key == "execution_mode":
            session_options.execution_mode = (
                onnxruntime.ExecutionMode.ORT_PARALLEL
                if value.upper() == "PARALLEL"
                else onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            )
        elif key == "graph_optimization_level":
            session_options.graph_optimization_level = onnxruntime.GraphOptimizationLevel(value)
        elif key == "extra_session_config":
            for name, setting in value.items():
                session_options.add_session_config_entry(name, setting)
        elif value:
            setattr(session_options, key, value)
    usable = _usable(providers, set(onnxruntime.get_available_providers()))
    return onnxruntime.InferenceSession(model, sess_options=session_options, providers=usable)


def _usable(providers: Any, available: set[str]) -> list[Any]:
    """The saved providers that are ``available``, else the CPU. A provider is saved as its
    name, or as ``[name, options]`` (which onnxruntime takes as a tuple)."""
    if isinstance(providers, str):
        providers = [providers]
    usable: list[Any] = []
    for entry in providers if isinstance(providers, list) else DEFAULT_PROVIDERS:
        name = entry[0] if isinstance(entry, list | tuple) and entry else entry
        if isinstance(name, str) and name in available:
            usable.append(tuple(entry) if isinstance(entry, list) else entry)
    if not usable:
        _log.debug("None of the providers %s is available; running on the CPU", providers)
    return usable or ["CPUExecutionProvider"]


__all__ = [
    "DEFAULT_PROVIDERS",
    "FLAVOR_NAME",
    "SESSION_OPTIONS",
    "OnnxPredictor",
    "load_model",
    "log_model",
    "save_model",
]
