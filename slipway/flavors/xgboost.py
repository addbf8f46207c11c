"""XGBoost models, in MLflow's ``xgboost`` layout (``mlflow.xgboost.load_model`` reads them).

A model directory holds ``model.<format>`` (the booster's own format: ``ubj``, UBJSON, by
default, or ``json``) and an ``MLmodel`` with two flavors: ``xgboost`` (``xgb_version``,
``data``, ``model_class``, ``model_format``, ``code``) and ``python_function``
(``loader_module: mlflow.xgboost``, ``data``).

``model_class`` is the saved object's class: a raw ``xgboost.core.Booster`` or one of the
scikit-learn API classes (``xgboost.sklearn.XGBClassifier``, ``XGBRegressor``, ...), and loading
gives back the same class. The files hold no code, so only classes from the ``xgboost`` package
are loaded: a model file never makes Slipway import another module.

The pyfunc interface calls ``predict`` (through a ``DMatrix`` for a raw booster) with
``validate_features=True``, so the input's columns must be the ones the model was trained on;
``params`` that the ``predict`` method accepts are passed on, others are dropped with a warning.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from pathlib import Path
from typing import Any, Unpack

from slipway.exceptions import InvalidParameterValue
from slipway.flavors._versions import first_line, load_error, log_other_version, pinned_version
from slipway.models.environment import add_code_to_path
from slipway.models.info import ModelInfo
from slipway.models.mlmodel import Model, model_file
from slipway.models.save import FlavorSpec, SaveOptions, log_model_dir, save_model_dir, with_mlmodel
from slipway.models.uri import download_model

FLAVOR_NAME = "xgboost"
LOADER_MODULE = "mlflow.xgboost"
MODEL_FORMATS = ("ubj", "json")
BOOSTER_CLASS = "xgboost.core.Booster"
"""What ``model_class`` is taken to be when ``MLmodel`` has none (models of old MLflows)."""

_log = logging.getLogger(__name__)


def save_model(
    xgb_model: Any,
    path: str | os.PathLike[str],
    *,
    model_format: str = "ubj",
    **options: Unpack[SaveOptions],
) -> Model:
    """Save an XGBoost ``Booster`` or scikit-learn API model as a model directory at ``path``.

    Args:
        xgb_model: a trained ``xgboost.Booster``, ``XGBClassifier``, ``XGBRegressor``, ...
        path: a directory that does not exist yet, or is empty.
        model_format: ``"ubj"`` (UBJSON, compact) or ``"json"``.
        **options: see :class:`~slipway.models.save.SaveOptions`.

    Raises:
        InvalidParameterValue: for another kind of object, an unknown format, or an untrained
            model.
    """
    import xgboost

    if not isinstance(xgb_model, xgboost.Booster | xgboost.XGBModel):
        raise InvalidParameterValue(
            "xgb_model must be an xgboost.Booster or an XGBoost scikit-learn model "
            f"(XGBClassifier, XGBRegressor, ...), not {type(xgb_model).__name__}"
        )
    if model_format not in MODEL_FORMATS:
        raise InvalidParameterValue(
            f"Unknown model_format {model_format!r}; use one of {', '.join(MODEL_FORMATS)}"
        )
    data_file = f"model.{model_format}"
    sklearn_api = isinstance(xgb_model, xgboost.XGBModel)
    spec = FlavorSpec(
        name=FLAVOR_NAME,
        conf={
            "xgb_version": xgboost.__version__,
            "data": data_file,
            "model_class": _class_name(xgb_model),
            "model_format": model_format,
        },
        requirements=(
            pinned_version("xgboost", xgboost.__version__),
            *(["scikit-learn"] if sklearn_api else []),
            "numpy",
            "scipy",
            "pandas",
        ),
        loader_module=LOADER_MODULE,
        pyfunc_conf={"data": data_file},
    )
    return save_model_dir(
        path,
        spec,
        write=lambda model_dir: _write(xgb_model, model_dir / data_file),
        predict=XGBoostPredictor(xgb_model).predict,
        **options,
    )


def log_model(
    xgb_model: Any,
    artifact_path: str,
    *,
    registered_model_name: str | None = None,
    model_format: str = "ubj",
    **options: Unpack[SaveOptions],
) -> ModelInfo:
    """Save ``xgb_model`` into the active run's artifacts at ``artifact_path`` (starting a run
    if none is active) and, given ``registered_model_name``, register it as a new version.
    Other arguments as for :func:`save_model`."""
    return log_model_dir(
        artifact_path,
        lambda path, mlmodel: save_model(
            xgb_model, path, model_format=model_format, **with_mlmodel(options, mlmodel)
        ),
        registered_model_name=registered_model_name,
    )


def load_model(model_uri: str, dst_path: str | os.PathLike[str] | None = None) -> Any:
    """The model saved at ``model_uri`` (any URI that
    :func:`~slipway.models.uri.download_model` resolves), as the class it was saved as.

    Raises:
        InvalidParameterValue: for a missing or unreadable file (naming it and the XGBoost
            versions that wrote and that read it), or a ``model_class`` outside ``xgboost``.
    """
    model_dir = download_model(model_uri, dst_path)
    conf = Model.load(model_dir).flavor_conf(FLAVOR_NAME)
    add_code_to_path(model_dir, conf)
    return _load(model_dir, conf)


def _load_pyfunc(model_dir: Path) -> XGBoostPredictor:
    """The pyfunc implementation: the model behind ``predict(data, params=None)``."""
    return XGBoostPredictor(_load(model_dir, Model.load(model_dir).flavor_conf(FLAVOR_NAME)))


class XGBoostPredictor:
    """An XGBoost model behind the pyfunc interface."""

    def __init__(self, xgb_model: Any) -> None:
        self.xgb_model = xgb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The model's predictions for ``data``.

        Raises:
            InvalidParameterValue: for input the model refuses (other columns than it was
                trained on, values that are not numbers, ...).
        """
        import xgboost

        booster = isinstance(self.xgb_model, xgboost.Booster)
        method = self.xgb_model.predict
        kwargs = _accepted(method, params)
        try:
            if booster:
                return method(xgboost.DMatrix(data), validate_features=True, **kwargs)
            return method(data, validate_features=True, **kwargs)
        except (ValueError, TypeError, KeyError, xgboost.core.XGBoostError) as exc:
            raise InvalidParameterValue(
                f"The XGBoost model cannot predict for this input: {first_line(exc)}"
            ) from exc

    def get_raw_model(self) -> Any:
        return self.xgb_model


def _accepted(method: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    """The ``params`` that ``method`` takes; others are dropped with a warning (as MLflow
    does: callers may send parameters meant for other models)."""
    if not params:
        return {}
    accepted = inspect.signature(method).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return dict(params)
    if dropped := sorted(set(params) - set(accepted)):
        _log.warning("The XGBoost model's predict() does not take %s; ignoring them", dropped)
    return {key: value for key, value in params.items() if key in accepted}


def _class_name(xgb_model: Any) -> str:
    cls = type(xgb_model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _write(xgb_model: Any, target: Path) -> None:
    import xgboost

    try:
        xgb_model.save_model(str(target))
    except (xgboost.core.XGBoostError, ValueError, AttributeError, TypeError) as exc:
        raise InvalidParameterValue(
            f"Cannot save the {type(xgb_model).__name__} model (is it trained?): {first_line(exc)}"
        ) from exc


def _model_class(name: object) -> Any:
    """The class ``model_class`` names, when it is an XGBoost model class.

    Raises:
        InvalidParameterValue: for a name outside the ``xgboost`` package or a class that is
            not an XGBoost model.
    """
    import xgboost

    if not isinstance(name, str) or "." not in name or not name.startswith("xgboost."):
        raise InvalidParameterValue(
            f"The model's model_class {name!r} is not an XGBoost class (xgboost.*); Slipway "
            "loads only XGBoost's own model classes"
        )
    module, _, attribute = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        raise InvalidParameterValue(
            f"This XGBoost ({xgboost.__version__}) has no model class {name!r}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, xgboost.Booster | xgboost.XGBModel)):
        raise InvalidParameterValue(f"{name!r} is not an XGBoost model class")
    return cls


def _load(model_dir: Path, conf: dict[str, Any]) -> Any:
    import xgboost

    path = model_file(model_dir, conf.get("data"), "XGBoost model file")
    cls = _model_class(conf.get("model_class") or BOOSTER_CLASS)
    saved = conf.get("xgb_version")
    try:
        model = cls()
        model.load_model(str(path))
    except Exception as exc:
        raise load_error("XGBoost", "xgboost", path, exc, saved, xgboost.__version__) from exc
    log_other_version(_log, "XGBoost", path, saved, xgboost.__version__)
    return model


__all__ = [
    "FLAVOR_NAME",
    "MODEL_FORMATS",
    "XGBoostPredictor",
    "load_model",
    "log_model",
    "save_model",
]
