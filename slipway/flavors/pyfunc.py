"""The pyfunc interface (``slipway.pyfunc``): every model behind ``predict(data, params=None)``,
and custom Python models.

:func:`load_model` reads any model directory, Slipway's or MLflow's, and picks the flavor that
loads it from the ``loader_module`` of its ``python_function`` entry (MLflow's module names map
to Slipway's flavors, so MLflow-saved models load without MLflow installed).
:meth:`PyFuncModel.predict` checks the input and params against the model's signature first.

A custom model subclasses :class:`PythonModel`::

    class AddN(slipway.pyfunc.PythonModel):
        def load_context(self, context):
            self.n = float(Path(context.artifacts["n"]).read_text())

        def predict(self, context, model_input, params=None):
            return model_input + self.n

    slipway.pyfunc.save_model("add_n", python_model=AddN(), artifacts={"n": "n.txt"})

The layout is MLflow's (``python_model.pkl`` written with cloudpickle, artifacts under
``artifacts/``, ``loader_module: mlflow.pyfunc.model``), so ``mlflow.pyfunc.load_model`` reads
it too. Loading a pickle runs code from the file: load only models you trust.
"""

from __future__ import annotations

import abc
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Unpack

from slipway.exceptions import InvalidParameterValue
from slipway.flavors import flavor_for_loader
from slipway.models.environment import add_code_to_path
from slipway.models.info import ModelInfo
from slipway.models.mlmodel import PYFUNC_FLAVOR, Model, model_file
from slipway.models.save import (
    FlavorSpec,
    SaveOptions,
    log_model_dir,
    save_model_dir,
    with_mlmodel,
)
from slipway.models.uri import download_model

FLAVOR_NAME = PYFUNC_FLAVOR
LOADER_MODULE = "mlflow.pyfunc.model"
PYTHON_MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"

_log = logging.getLogger(__name__)


# -- custom models ---------------------------------------------------------------------------


class PythonModelContext:
    """What a :class:`PythonModel` gets when it loads: its artifacts and configuration.

    Args:
        artifacts: artifact name -> absolute local path of the file or folder.
        model_config: the configuration saved with the model (``model_config=``).
    """

    def __init__(
        self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None
    ) -> None:
        self._artifacts = artifacts
        self._model_config = model_config or {}

    @property
    def artifacts(self) -> dict[str, str]:
        return self._artifacts

    @property
    def model_config(self) -> dict[str, Any]:
        return self._model_config


@dataclass(frozen=True)
class _NoTypeHints:
    """MLflow's pyfunc loader reads ``predict_type_hints.input`` from every Python model to
    convert inputs; Slipway models declare none, so MLflow passes inputs through as they are."""

    input: Any = None
    output: Any = None


class PythonModel(abc.ABC):
    """Base class of custom models: override :meth:`predict`, and :meth:`load_context` to
    read artifacts once at load time.

    ``predict`` may leave out the context: ``predict(self, model_input, params=None)`` works
    too (as in MLflow).
    """

    def load_context(self, context: PythonModelContext) -> None:  # noqa: B027 - optional hook
        """Called once when the model loads, before any ``predict``."""

    @abc.abstractmethod
    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None
    ) -> Any:
        """Predict for ``model_input`` (already checked against the signature)."""

    @property
    def predict_type_hints(self) -> _NoTypeHints:
        return _NoTypeHints()


class _FunctionModel(PythonModel):
    """A plain function ``f(model_input)`` saved as a model."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func

    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None
    ) -> Any:
        return self.func(model_input)


class PythonModelPredictor:
    """A loaded :class:`PythonModel` (Slipway's or MLflow's) behind ``predict(data, params)``."""

    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context
        parameters = inspect.signature(python_model.predict).parameters
        self._takes_params = "params" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        )
        positional = [name for name in parameters if name not in ("self", "params")]
        # MLflow's rule: a `context` argument, or two positional ones, means it wants a context.
        self._takes_context = "context" in parameters or len(positional) == 2

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        args = (self.context, data) if self._takes_context else (data,)
        if self._takes_params:
            return self.python_model.predict(*args, params=params)
        if params:
            _log.warning("The model's predict() takes no params; ignoring %s", sorted(params))
        return self.python_model.predict(*args)


# -- loading any model -----------------------------------------------------------------------


class PyFuncModel:
    """A loaded model of any flavor behind ``predict(data, params=None)``.

    Args:
        model_meta: the model's ``MLmodel``.
        model_impl: what the flavor's ``_load_pyfunc`` returned.
        loader_module: the ``loader_module`` named in ``MLmodel``.
        predict_fn: the method of ``model_impl`` that predicts.
    """

    def __init__(
        self, model_meta: Model, model_impl: Any, loader_module: str, predict_fn: str = "predict"
    ) -> None:
        self._meta = model_meta
        self._impl = model_impl
        self._loader_module = loader_module
        predict = getattr(model_impl, predict_fn, None)
        if not callable(predict):
            raise InvalidParameterValue(f"The loaded model has no {predict_fn}() method")
        self._predict = predict
        self._predict_takes_params = _accepts(predict, "params")

    def __repr__(self) -> str:
        return f"PyFuncModel(loader_module={self._loader_module!r}, uuid={self._meta.model_uuid!r})"

    @property
    def metadata(self) -> Model:
        """The model's ``MLmodel``."""
        return self._meta

    @property
    def loader_module(self) -> str:
        return self._loader_module

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Check ``data`` and ``params`` against the signature, then predict.

        Raises:
            InvalidParameterValue: naming the column, shape, type or param that does not fit.
        """
        from slipway.models.enforcement import enforce_signature

        data, params = enforce_signature(data, self._meta.signature, params)
        return self.predict_unchecked(data, params)

    def predict_unchecked(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict without checking the signature, for callers that ran
        :func:`~slipway.models.enforcement.enforce_signature` on the input already (the model
        server checks each request on arrival, then predicts on batches of checked requests;
        checking a batch again would only repeat the work)."""
        if self._predict_takes_params:
            return self._predict(data, params=params)
        return self._predict(data)

    def unwrap_python_model(self) -> Any:
        """The :class:`PythonModel` inside a custom model.

        Raises:
            InvalidParameterValue: for models of other flavors.
        """
        if not isinstance(self._impl, PythonModelPredictor):
            raise InvalidParameterValue(
                f"unwrap_python_model() needs a custom Python model; this one is loaded by "
                f"{self._loader_module!r}"
            )
        return self._impl.python_model

    def get_raw_model(self) -> Any:
        """The flavor's own model object (the estimator, the module, ...)."""
        raw = getattr(self._impl, "get_raw_model", None)
        return raw() if callable(raw) else self.unwrap_python_model()


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def load_model(model_uri: str, dst_path: str | os.PathLike[str] | None = None) -> PyFuncModel:
    """Load the model at ``model_uri`` (``runs:/``, ``models:/``, a local path, ...; see
    :mod:`slipway.models.uri`) behind the pyfunc interface.

    Raises:
        InvalidParameterValue: for a model without a ``python_function`` flavor, a loader module
            Slipway does not know, or missing or corrupt files (named in the message).
        ResourceDoesNotExist: when the URI names nothing.
    """
    model_dir = download_model(model_uri, dst_path)
    meta = Model.load(model_dir)
    conf = meta.flavor_conf(PYFUNC_FLAVOR)
    loader_module = conf.get("loader_module")
    if not isinstance(loader_module, str) or not loader_module:
        raise InvalidParameterValue(
            f"The python_function flavor in {str(model_dir / 'MLmodel')!r} names no loader_module"
        )
    flavor: ModuleType = flavor_for_loader(loader_module)
    add_code_to_path(model_dir, conf)
    impl = flavor._load_pyfunc(model_dir)
    return PyFuncModel(meta, impl, loader_module, str(conf.get("predict_fn") or "predict"))


# -- saving custom models --------------------------------------------------------------------


def save_model(
    path: str | os.PathLike[str],
    python_model: PythonModel | Callable[[Any], Any],
    *,
    artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
    model_config: dict[str, Any] | None = None,
    **options: Unpack[SaveOptions],
) -> Model:
    """Save a custom model at ``path``.

    Args:
        path: a directory that does not exist yet, or is empty.
        python_model: a :class:`PythonModel`, or a function of the model input.
        artifacts: name -> local path or URI of a file or folder the model needs; each is
            copied into the model, and ``context.artifacts[name]`` gives its local path.
        model_config: configuration handed to the model as ``context.model_config``.
        **options: see :class:`~slipway.models.save.SaveOptions`.
    """
    import cloudpickle

    model = _as_python_model(python_model)
    config = dict(model_config or {})
    saved_artifacts: dict[str, dict[str, str]] = {}

    def write(model_dir: Path) -> None:
        with (model_dir / PYTHON_MODEL_FILE).open("wb") as out:
            try:
                cloudpickle.dump(model, out)
            except Exception as exc:
                raise InvalidParameterValue(
                    f"Cannot serialize the {type(model).__name__} model with cloudpickle: {exc}"
                ) from exc
        saved_artifacts.update(_copy_artifacts(model_dir, artifacts or {}))

    def predict(example: Any) -> Any:
        context = PythonModelContext(_artifact_paths(path, saved_artifacts), config)
        model.load_context(context)
        return PythonModelPredictor(model, context).predict(example)

    pyfunc_conf: dict[str, Any] = {
        "python_model": PYTHON_MODEL_FILE,
        "cloudpickle_version": cloudpickle.__version__,
        "artifacts": saved_artifacts,  # filled in by write(), before MLmodel is written
        "streamable": False,
    }
    if config:
        pyfunc_conf["model_config"] = config
    spec = FlavorSpec(
        name=FLAVOR_NAME,
        conf={},
        requirements=("cloudpickle", "slipway"),
        loader_module=LOADER_MODULE,
        pyfunc_conf=pyfunc_conf,
        primary=False,
    )
    return save_model_dir(path, spec, write=write, predict=predict, **options)


def _as_python_model(obj: Any) -> Any:
    """A :class:`PythonModel`, an MLflow ``PythonModel`` (it has ``predict`` and
    ``load_context``), or a function wrapped as one."""
    if callable(getattr(obj, "predict", None)) and callable(getattr(obj, "load_context", None)):
        return obj
    if callable(obj):
        return _FunctionModel(obj)
    raise InvalidParameterValue(
        f"python_model must be a PythonModel or a function, not {type(obj).__name__}"
    )


def _copy_artifacts(
    model_dir: Path, artifacts: Mapping[str, str | os.PathLike[str]]
) -> dict[str, dict[str, str]]:
    """Copy each artifact into ``artifacts/``; the ``artifacts`` entry of the pyfunc flavor."""
    from slipway.models.uri import download_artifact_uri

    if not isinstance(artifacts, Mapping):
        raise InvalidParameterValue("artifacts must map names to local paths or URIs")
    config: dict[str, dict[str, str]] = {}
    target = model_dir / ARTIFACTS_DIR
    for name, source in artifacts.items():
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue(f"Invalid artifact name {name!r}")
        uri = os.fspath(source)
        with tempfile.TemporaryDirectory(prefix="slipway-artifact-") as tmp:
            local = download_artifact_uri(uri, tmp)
            destination = target / local.name
            if destination.exists():  # two artifacts with the same file name
                destination = target / name / local.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            if local.is_dir():
                shutil.copytree(local, destination)
            else:
                shutil.copy2(local, destination)
        config[name] = {"path": destination.relative_to(model_dir).as_posix(), "uri": uri}
    return config


def _artifact_paths(
    model_dir: str | os.PathLike[str], saved: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """Artifact name -> absolute local path, checked to stay inside ``model_dir``."""
    root = Path(model_dir)
    return {
        name: str(model_file(root, info.get("path"), f"artifact {name!r}").absolute())
        for name, info in saved.items()
    }


def log_model(
    artifact_path: str,
    python_model: PythonModel | Callable[[Any], Any],
    *,
    registered_model_name: str | None = None,
    artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
    model_config: dict[str, Any] | None = None,
    **options: Unpack[SaveOptions],
) -> ModelInfo:
    """Save a custom model into the active run's artifacts at ``artifact_path`` and, given
    ``registered_model_name``, register it. Other arguments as for :func:`save_model`."""
    return log_model_dir(
        artifact_path,
        lambda path, mlmodel: save_model(
            path,
            python_model,
            artifacts=artifacts,
            model_config=model_config,
            **with_mlmodel(options, mlmodel),
        ),
        registered_model_name=registered_model_name,
    )


def _load_pyfunc(model_dir: Path) -> PythonModelPredictor:
    """The pyfunc implementation of a custom model (Slipway's or MLflow's layout)."""
    import cloudpickle

    conf = Model.load(model_dir).flavor_conf(PYFUNC_FLAVOR)
    if "model_code_path" in conf:
        raise InvalidParameterValue(
            f"The model at {str(model_dir)!r} is an MLflow models-from-code model, which Slipway "
            "does not load"
        )
    path = model_file(model_dir, conf.get("python_model"), "Python model file")
    if conf.get("python_model_compression"):
        raise InvalidParameterValue(
            f"The Python model {str(path)!r} is compressed "
            f"({conf['python_model_compression']}), which Slipway does not read"
        )
    saved = conf.get("cloudpickle_version")
    if saved and saved != cloudpickle.__version__:
        _log.warning(
            "The model at %s was saved with cloudpickle %s and is loaded with %s",
            path,
            saved,
            cloudpickle.__version__,
        )
    try:
        with path.open("rb") as handle:
            python_model = cloudpickle.load(handle)
    except Exception as exc:
        raise InvalidParameterValue(
            f"Cannot load the Python model {str(path)!r}: {type(exc).__name__}: {exc} "
            "(a truncated or corrupt file, or code the model needs that is not importable)"
        ) from exc
    artifacts = conf.get("artifacts") or {}
    if not isinstance(artifacts, Mapping):
        raise InvalidParameterValue(f"The artifacts entry of {str(model_dir / 'MLmodel')!r}")
    context = PythonModelContext(_artifact_paths(model_dir, artifacts), conf.get("model_config"))
    python_model.load_context(context)
    return PythonModelPredictor(python_model, context)


__all__ = [
    "FLAVOR_NAME",
    "PyFuncModel",
    "PythonModel",
    "PythonModelContext",
    "load_model",
    "log_model",
    "save_model",
]
