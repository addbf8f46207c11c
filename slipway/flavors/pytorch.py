"""PyTorch models, in MLflow's ``pytorch`` layout (``mlflow.pytorch.load_model`` reads them).

A model directory holds ``data/`` and an ``MLmodel`` with two flavors: ``pytorch``
(``model_data: data``, ``pytorch_version``, ``code``) and ``python_function``
(``loader_module: mlflow.pytorch``, ``data: data``, ``pickle_module_name``, ``config``).
``data/`` holds one of:

``model.pth`` and ``pickle_module_info.txt`` (``serialization_format="pickle"``, the default)
    The whole module, written by ``torch.save`` with cloudpickle, so that a class defined in a
    notebook or in ``__main__`` travels with the model; or a TorchScript module
    (``torch.jit.script`` / ``torch.jit.trace``), written by ``torch.jit.save``.
    ``pickle_module_info.txt`` names the module that reads the file back (``pickle``: the
    standard unpickler reads what cloudpickle writes). A whole module cannot be read with
    ``torch.load``'s default ``weights_only=True``, so it is loaded with
    ``weights_only=False``, which runs code from the file: load only models you trust.
``model.pt2`` (``serialization_format="pt2"``, MLflow 3's default)
    A graph that ``torch.export`` traced from the input example (which is required), with its
    weights. Loading it does not need the model's Python class. The first dimension of each
    input is exported as dynamic when the example has more than one row.

The pyfunc interface turns a DataFrame (all columns numeric), a numpy array or a dict of arrays
(one per named input of a tensor signature, passed as keyword arguments) into tensors, with
floating-point data cast to the model's floating-point type, and calls the model in eval mode
under ``torch.no_grad()``. A tensor output comes back as a numpy array, or as a DataFrame with
the input's index for DataFrame input, as MLflow does.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import pandas as pd

from slipway.exceptions import InvalidParameterValue
from slipway.flavors._versions import first_line, load_error, log_other_version, pinned_version
from slipway.models.environment import add_code_to_path
from slipway.models.info import ModelInfo
from slipway.models.mlmodel import PYFUNC_FLAVOR, Model, model_file
from slipway.models.save import FlavorSpec, SaveOptions, log_model_dir, save_model_dir, with_mlmodel
from slipway.models.uri import download_model

FLAVOR_NAME = "pytorch"
LOADER_MODULE = "mlflow.pytorch"
DATA_DIR = "data"
PICKLED_FILE = "model.pth"
EXPORTED_FILE = "model.pt2"
PICKLE_MODULE_INFO_FILE = "pickle_module_info.txt"
SERIALIZATION_FORMATS = ("pickle", "pt2")

_UNPICKLER = "pickle"
"""What ``pickle_module_info.txt`` names: MLflow imports it and hands it to ``torch.load``,
which needs its ``Unpickler`` (cloudpickle has none; the standard one reads its output)."""

_STANDARD_PICKLES = frozenset({"pickle", "cloudpickle", "mlflow.pytorch.pickle_module"})
"""Pickle modules whose files the standard unpickler reads (MLflow's is cloudpickle)."""

_log = logging.getLogger(__name__)


def save_model(
    pytorch_model: Any,
    path: str | os.PathLike[str],
    *,
    serialization_format: str = "pickle",
    **options: Unpack[SaveOptions],
) -> Model:
    """Save a ``torch.nn.Module`` (or a TorchScript module) as a model directory at ``path``.

    Args:
        pytorch_model: the module to save.
        path: a directory that does not exist yet, or is empty.
        serialization_format: ``"pickle"`` (the whole module, or TorchScript; see the module
            docstring) or ``"pt2"`` (a ``torch.export`` graph traced from ``input_example``,
            a numpy array or a dict of arrays; use one with at least two rows, so that the batch
            size stays free).
        **options: see :class:`~slipway.models.save.SaveOptions`.

    Raises:
        InvalidParameterValue: for something other than a module, an unknown format, or a model
            that cannot be serialized or exported.
    """
    import torch

    if not isinstance(pytorch_model, torch.nn.Module):
        raise InvalidParameterValue(
            f"pytorch_model must be a torch.nn.Module, not {type(pytorch_model).__name__}"
        )
    if serialization_format not in SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"Unknown serialization_format {serialization_format!r}; use one of "
            f"{', '.join(SERIALIZATION_FORMATS)}"
        )
    example = options.get("input_example")
    pickled = serialization_format == "pickle"
    if not pickled:
        _check_exportable(pytorch_model, example)
    spec = FlavorSpec(
        name=FLAVOR_NAME,
        conf={"model_data": DATA_DIR, "pytorch_version": str(torch.__version__)},
        requirements=(
            pinned_version("torch", str(torch.__version__)),
            *(["cloudpickle"] if pickled else []),
            "numpy",
            "pandas",
        ),
        loader_module=LOADER_MODULE,
        pyfunc_conf={
            "data": DATA_DIR,
            "pickle_module_name": _UNPICKLER if pickled else None,
            "config": {"device": None},
        },
    )

    def write(model_dir: Path) -> None:
        data = model_dir / DATA_DIR
        data.mkdir()
        if pickled:
            _save_pickled(pytorch_model, data)
        else:
            _export(pytorch_model, example, data / EXPORTED_FILE)

    return save_model_dir(
        path, spec, write=write, predict=PyTorchPredictor(pytorch_model).predict, **options
    )


def log_model(
    pytorch_model: Any,
    artifact_path: str,
    *,
    registered_model_name: str | None = None,
    serialization_format: str = "pickle",
    **options: Unpack[SaveOptions],
) -> ModelInfo:
    """Save ``pytorch_model`` into the active run's artifacts at ``artifact_path`` (starting a
    run if none is active) and, given ``registered_model_name``, register it as a new version.
    Other arguments as for :func:`save_model`."""
    return log_model_dir(
        artifact_path,
        lambda path, mlmodel: save_model(
            pytorch_model,
            path,
            serialization_format=serialization_format,
            **with_mlmodel(options, mlmodel),
        ),
        registered_model_name=registered_model_name,
    )


def load_model(
    model_uri: str, dst_path: str | os.PathLike[str] | None = None, *, device: str | None = None
) -> Any:
    """The module saved at ``model_uri`` (any URI that
    :func:`~slipway.models.uri.download_model` resolves), in eval mode.

    Args:
        model_uri: where the model is.
        dst_path: where to download it to; a temporary folder when omitted.
        device: where to put the module (``"cpu"``, ``"cuda:0"``, ...). By default it goes
            where it was saved from, or to the CPU on a machine without CUDA. An exported
            (``pt2``) module stays where it was traced.

    Raises:
        InvalidParameterValue: for missing or unreadable files, naming the file and, when
            loading fails, the PyTorch versions that wrote and that read it.
    """
    model_dir = download_model(model_uri, dst_path)
    conf = Model.load(model_dir).flavor_conf(FLAVOR_NAME)
    add_code_to_path(model_dir, conf)
    return _load(model_dir, conf, device)


def _load_pyfunc(model_dir: Path) -> PyTorchPredictor:
    """The pyfunc implementation: the module on the device that the ``config`` entry of
    ``python_function`` names, or on CUDA when there is one (as MLflow does)."""
    import torch

    meta = Model.load(model_dir)
    config = meta.flavors.get(PYFUNC_FLAVOR, {}).get("config") or {}
    device = config.get("device") if isinstance(config, dict) else None
    if not device:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return PyTorchPredictor(_load(model_dir, meta.flavor_conf(FLAVOR_NAME), str(device)))


class PyTorchPredictor:
    """A module behind the pyfunc interface (see the module docstring for the conversions).

    Args:
        pytorch_model: the module; inputs go to the device and floating-point type of its
            first parameter or buffer (the CPU and ``float32`` for a module without any).
    """

    def __init__(self, pytorch_model: Any) -> None:
        import torch

        self.pytorch_model = pytorch_model
        self._device = torch.device("cpu")
        self._float_dtype = torch.float32
        tensors = [*pytorch_model.parameters(), *pytorch_model.buffers()]
        if tensors:
            self._device = tensors[0].device
        floating = [t.dtype for t in tensors if t.is_floating_point()]
        if floating:
            self._float_dtype = floating[0]

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The model's output for ``data``; ``params`` are passed as keyword arguments.

        Raises:
            InvalidParameterValue: for input that cannot become tensors, or that the model
                refuses (a wrong shape or type).
        """
        import torch

        inputs = self.as_tensors(data)
        kwargs = dict(params or {})
        try:
            with torch.no_grad():
                if isinstance(inputs, dict):
                    output = self.pytorch_model(**inputs, **kwargs)
                else:
                    output = self.pytorch_model(inputs, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, TypeError, ValueError, IndexError, AssertionError) as exc:
            raise InvalidParameterValue(
                f"The PyTorch model cannot predict for this input ({_describe(inputs)}): "
                f"{type(exc).__name__}: {first_line(exc)}"
            ) from exc
        return _as_output(_to_numpy(output), data)

    def as_tensors(self, data: Any) -> Any:
        """``data`` as a tensor (a dict of tensors for a dict), on the model's device."""
        if isinstance(data, dict):
            return {str(name): self._tensor(value, str(name)) for name, value in data.items()}
        return self._tensor(data, None)

    def get_raw_model(self) -> Any:
        return self.pytorch_model

    def _tensor(self, value: Any, name: str | None) -> Any:
        import torch

        if isinstance(value, torch.Tensor):
            tensor = value
        else:
            tensor = torch.from_numpy(_numeric_array(value, name))
        if tensor.is_floating_point():
            tensor = tensor.to(dtype=self._float_dtype)
        return tensor.to(device=self._device)


def _numeric_array(value: Any, name: str | None) -> np.ndarray[Any, Any]:
    """``value`` as a writable numeric numpy array (what ``torch.from_numpy`` takes), in the
    memory layout it has (matrix products round differently in another layout)."""
    label = f"Input {name!r}" if name else "The input"
    if isinstance(value, pd.DataFrame):
        try:
            array = value.to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InvalidParameterValue(
                f"{label} must have numeric columns only for a PyTorch model: {exc}"
            ) from None
    elif isinstance(value, np.ndarray | list | tuple | pd.Series) or np.isscalar(value):
        try:
            array = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise InvalidParameterValue(f"{label} is not an array: {exc}") from None
    else:
        raise InvalidParameterValue(
            "A PyTorch model takes a pandas DataFrame, a numpy array or a dict of arrays, got "
            f"{type(value).__name__}"
        )
    if array.dtype.kind not in "biuf":
        raise InvalidParameterValue(
            f"{label} must be numeric for a PyTorch model; its dtype is {array.dtype}"
        )
    if not array.flags.writeable:  # torch.from_numpy warns about read-only memory
        # Keeping the memory layout keeps results bit for bit the same as MLflow's.
        array = np.array(array, copy=True, order="K")
    return array


def _describe(inputs: Any) -> str:
    if isinstance(inputs, dict):
        return ", ".join(f"{name}: {_describe(value)}" for name, value in inputs.items())
    return f"shape {tuple(inputs.shape)}, dtype {inputs.dtype}"


def _to_numpy(value: Any) -> Any:
    """Tensors (also inside dicts, lists and tuples) as numpy arrays, on the CPU."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: _to_numpy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_numpy(item) for item in value]
    return value


def _as_output(output: Any, data: Any) -> Any:
    """A DataFrame with the input's index for DataFrame input and a 1-D or 2-D output (as
    MLflow returns it); the output as it is otherwise."""
    if (
        isinstance(data, pd.DataFrame)
        and isinstance(output, np.ndarray)
        and output.ndim in (1, 2)
        and len(output) == len(data)
    ):
        return pd.DataFrame(output, index=data.index)
    return output


# -- saving --------------------------------------------------------------------------------


def _save_pickled(pytorch_model: Any, data_dir: Path) -> None:
    import cloudpickle
    import torch

    target = data_dir / PICKLED_FILE
    try:
        if isinstance(pytorch_model, torch.jit.ScriptModule):
            torch.jit.save(pytorch_model, str(target))
        else:
            # The default protocol, not the newest, so older Pythons can read the file.
            torch.save(
                pytorch_model,
                target,
                pickle_module=cloudpickle,
                pickle_protocol=pickle.DEFAULT_PROTOCOL,
            )
    except (pickle.PicklingError, TypeError, AttributeError, RuntimeError) as exc:
        raise InvalidParameterValue(
            f"Cannot serialize the {type(pytorch_model).__name__} model: {first_line(exc)}"
        ) from exc
    (data_dir / PICKLE_MODULE_INFO_FILE).write_text(_UNPICKLER, encoding="utf-8")


def _check_exportable(pytorch_model: Any, example: Any) -> None:
    import torch

    if isinstance(pytorch_model, torch.jit.ScriptModule):
        raise InvalidParameterValue(
            "A TorchScript module cannot be saved in the 'pt2' format; use "
            "serialization_format='pickle'"
        )
    if example is None:
        raise InvalidParameterValue(
            "serialization_format='pt2' needs an input_example: torch.export traces the model "
            "by running it on the example"
        )


def _export(pytorch_model: Any, example: Any, target: Path) -> None:
    """Trace the module on ``example`` with ``torch.export`` (in eval mode, restored after)
    and save the program; each input's first dimension is left for the exporter to make
    dynamic."""
    import torch
    from torch.export import Dim

    inputs = PyTorchPredictor(pytorch_model).as_tensors(example)
    was_training = pytorch_model.training
    pytorch_model.eval()
    try:
        if isinstance(inputs, dict):
            dynamic = {name: {0: Dim.AUTO} for name in inputs}
            program = torch.export.export(pytorch_model, (), kwargs=inputs, dynamic_shapes=dynamic)
        else:
            program = torch.export.export(pytorch_model, (inputs,), dynamic_shapes=({0: Dim.AUTO},))
    except Exception as exc:
        raise InvalidParameterValue(
            f"torch.export cannot trace the {type(pytorch_model).__name__} model on the input "
            f"example: {type(exc).__name__}: {first_line(exc)}. Save it with "
            "serialization_format='pickle' instead."
        ) from exc
    finally:
        pytorch_model.train(was_training)
    torch.export.save(program, target)


# -- loading -------------------------------------------------------------------------------


def _load(model_dir: Path, conf: dict[str, Any], device: str | None) -> Any:
    """The module in ``model_dir`` on ``device`` (see :func:`load_model`)."""
    import torch

    data = model_file(model_dir, conf.get("model_data"), "PyTorch model data")
    saved = conf.get("pytorch_version")
    exported = data.is_dir() and (data / EXPORTED_FILE).is_file()
    path = data  # model_data may name the file itself (MLflow reads that too)
    if exported:
        path = data / EXPORTED_FILE
    elif data.is_dir():
        path = model_file(data, PICKLED_FILE, "PyTorch model file")
    try:
        module = torch.export.load(path).module() if exported else _load_pickled(path, data, device)
    except InvalidParameterValue:
        raise
    except Exception as exc:
        raise load_error("PyTorch", "torch", path, exc, saved, str(torch.__version__)) from exc
    if not isinstance(module, torch.nn.Module):
        raise InvalidParameterValue(
            f"The PyTorch model file {str(path)!r} holds a {type(module).__name__}, not a "
            "torch.nn.Module (a state_dict is not a model: load it into the module's class "
            "with torch.load and load_state_dict)"
        )
    log_other_version(_log, "PyTorch", path, saved, str(torch.__version__))
    if not exported:
        module.eval()
        if device is not None:
            module.to(device)
    return module


def _load_pickled(path: Path, data: Path, device: str | None) -> Any:
    import torch

    location = device
    if location is None and not torch.cuda.is_available():
        location = "cpu"  # a module saved from a GPU still loads on a machine without one
    if _is_torchscript(path):
        return torch.jit.load(str(path), map_location=location)  # type: ignore[no-untyped-call]
    return torch.load(
        path,
        map_location=location,
        pickle_module=_unpickler(data / PICKLE_MODULE_INFO_FILE),
        weights_only=False,  # a whole module is not weights only; see the module docstring
    )


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save`` writes ``constants.pkl``
    and ``code/``; ``torch.save`` neither)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _unpickler(info_file: Path) -> Any:
    """The pickle module that reads the model file: the standard one for the modules known
    to write standard pickles, else the one ``pickle_module_info.txt`` names."""
    name = info_file.read_text(encoding="utf-8").strip() if info_file.is_file() else _UNPICKLER
    if not name or name in _STANDARD_PICKLES:
        return pickle
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise InvalidParameterValue(
            f"The PyTorch model in {str(info_file.parent)!r} was pickled with {name!r}, which "
            f"cannot be imported here: {first_line(exc)}"
        ) from None
    if not hasattr(module, "Unpickler"):
        raise InvalidParameterValue(
            f"The pickle module {name!r} named in {str(info_file)!r} has no Unpickler"
        )
    return module


__all__ = [
    "FLAVOR_NAME",
    "SERIALIZATION_FORMATS",
    "PyTorchPredictor",
    "load_model",
    "log_model",
    "save_model",
]
