"""LightGBM models, in MLflow's ``lightgbm`` layout (``mlflow.lightgbm.load_model`` reads them).

A raw ``lightgbm.Booster`` is saved in LightGBM's own text format as ``model.lgb``; a
scikit-learn API model (``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``) is serialized as
the sklearn flavor does it: ``model.pkl`` with cloudpickle (the default) or pickle, or
``model.skops`` with skops. ``MLmodel`` has two flavors: ``lightgbm`` (``lgb_version``,
``data``, ``model_class``, ``serialization_format`` and ``skops_trusted_types`` for the
scikit-learn API, ``code``) and ``python_function`` (``loader_module: mlflow.lightgbm``,
``data``).

Loading a pickle runs code from the file: load only models you trust. A ``model.lgb`` file
and a skops file run none.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Unpack

from slipway.exceptions import InvalidParameterValue
from slipway.flavors._versions import first_line, load_error, log_other_version, pinned_version
from slipway.models.environment import add_code_to_path
from slipway.models.info import ModelInfo
from slipway.models.mlmodel import Model, model_file
from slipway.models.save import FlavorSpec, SaveOptions, log_model_dir, save_model_dir, with_mlmodel
from slipway.models.uri import download_model

FLAVOR_NAME = "lightgbm"
LOADER_MODULE = "mlflow.lightgbm"
BOOSTER_FILE = "model.lgb"
BOOSTER_CLASS = "lightgbm.basic.Booster"
SERIALIZATION_FORMATS = ("cloudpickle", "pickle", "skops")

SKOPS_TRUSTED_TYPES = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.sklearn.LGBMRanker",
)
"""The types a skops file of a LightGBM scikit-learn model holds, beyond skops' defaults."""

_log = logging.getLogger(__name__)


def save_model(
    lgb_model: Any,
    path: str | os.PathLike[str],
    *,
    serialization_format: str = "cloudpickle",
    skops_trusted_types: Sequence[str] | None = None,
    **options: Unpack[SaveOptions],
) -> Model:
    """Save a LightGBM ``Booster`` or scikit-learn API model as a model directory at ``path``.

    Args:
        lgb_model: a trained ``lightgbm.Booster``, ``LGBMClassifier``, ``LGBMRegressor``, ...
        path: a directory that does not exist yet, or is empty.
        serialization_format: for a scikit-learn API model, ``"cloudpickle"``, ``"pickle"`` or
            ``"skops"``; a Booster is always saved in LightGBM's own format.
        skops_trusted_types: for ``"skops"``, types to trust beyond
            :data:`SKOPS_TRUSTED_TYPES` (for a model holding other objects).
        **options: see :class:`~slipway.models.save.SaveOptions`.

    Raises:
        InvalidParameterValue: for another kind of object, an unknown format, or a model that
            cannot be serialized.
    """
    import lightgbm

    if not isinstance(lgb_model, lightgbm.Booster | lightgbm.LGBMModel):
        raise InvalidParameterValue(
            "lgb_model must be a lightgbm.Booster or a LightGBM scikit-learn model "
            f"(LGBMClassifier, LGBMRegressor, ...), not {type(lgb_model).__name__}"
        )
    if serialization_format not in SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"Unknown serialization_format {serialization_format!r}; use one of "
            f"{', '.join(SERIALIZATION_FORMATS)}"
        )
    booster = isinstance(lgb_model, lightgbm.Booster)
    fmt = None if booster else serialization_format
    trusted = None
    if fmt == "skops":
        trusted = sorted({*SKOPS_TRUSTED_TYPES, *(skops_trusted_types or ())})
    data_file = BOOSTER_FILE if booster else "model.skops" if fmt == "skops" else "model.pkl"
    spec = FlavorSpec(
        name=FLAVOR_NAME,
        conf={
            "lgb_version": lightgbm.__version__,
            "data": data_file,
            "model_class": f"{type(lgb_model).__module__}.{type(lgb_model).__qualname__}",
            "serialization_format": fmt,
            "skops_trusted_types": trusted,
        },
        requirements=(
            pinned_version("lightgbm", lightgbm.__version__),
            *([] if booster else ["scikit-learn"]),
            *([fmt] if fmt in ("cloudpickle", "skops") else []),
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
        write=lambda model_dir: _write(lgb_model, model_dir / data_file, fmt, trusted),
        predict=LightGBMPredictor(lgb_model).predict,
        **options,
    )


def log_model(
    lgb_model: Any,
    artifact_path: str,
    *,
    registered_model_name: str | None = None,
    serialization_format: str = "cloudpickle",
    skops_trusted_types: Sequence[str] | None = None,
    **options: Unpack[SaveOptions],
) -> ModelInfo:
    """Save ``lgb_model`` into the active run's artifacts at ``artifact_path`` (starting a run
    if none is active) and, given ``registered_model_name``, register it as a new version.
    Other arguments as for :func:`save_model`."""
    return log_model_dir(
        artifact_path,
        lambda path, mlmodel: save_model(
            lgb_model,
            path,
            serialization_format=serialization_format,
            skops_trusted_types=skops_trusted_types,
            **with_mlmodel(options, mlmodel),
        ),
        registered_model_name=registered_model_name,
    )


def load_model(model_uri: str, dst_path: str | os.PathLike[str] | None = None) -> Any:
    """The model saved at ``model_uri`` (any URI that
    :func:`~slipway.models.uri.download_model` resolves): a ``Booster``, or the scikit-learn
    API model that was saved.

    Raises:
        InvalidParameterValue: for a missing or unreadable file, naming it and the LightGBM
            versions that wrote and that read it.
    """
    model_dir = download_model(model_uri, dst_path)
    conf = Model.load(model_dir).flavor_conf(FLAVOR_NAME)
    add_code_to_path(model_dir, conf)
    return _load(model_dir, conf)


def _load_pyfunc(model_dir: Path) -> LightGBMPredictor:
    """The pyfunc implementation: the model behind ``predict(data, params=None)``."""
    return LightGBMPredictor(_load(model_dir, Model.load(model_dir).flavor_conf(FLAVOR_NAME)))


class LightGBMPredictor:
    """A LightGBM model behind the pyfunc interface: its ``predict``, as MLflow calls it."""

    def __init__(self, lgb_model: Any) -> None:
        self.lgb_model = lgb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The model's predictions for ``data``.

        Raises:
            InvalidParameterValue: for input the model refuses (another number of features,
                values that are not numbers, ...).
        """
        import lightgbm

        try:
            return self.lgb_model.predict(data)
        except (ValueError, TypeError, lightgbm.basic.LightGBMError) as exc:
            raise InvalidParameterValue(
                f"The LightGBM model cannot predict for this input: {first_line(exc)}"
            ) from exc

    def get_raw_model(self) -> Any:
        return self.lgb_model


def _write(lgb_model: Any, target: Path, fmt: str | None, trusted: list[str] | None) -> None:
    import lightgbm

    if fmt is None:
        try:
            lgb_model.save_model(str(target))
        except lightgbm.basic.LightGBMError as exc:
            raise InvalidParameterValue(
                f"Cannot save the LightGBM Booster: {first_line(exc)}"
            ) from exc
        return
    from slipway.flavors.sklearn import dump_estimator

    dump_estimator(lgb_model, target, fmt, trusted)


def _load(model_dir: Path, conf: dict[str, Any]) -> Any:
    import lightgbm

    path = model_file(model_dir, conf.get("data"), "LightGBM model file")
    model_class = conf.get("model_class") or BOOSTER_CLASS
    fmt = conf.get("serialization_format") or "cloudpickle"
    if model_class != BOOSTER_CLASS and fmt not in SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"The model at {str(path)!r} uses serialization format {fmt!r}, which Slipway does "
            f"not read (known: {', '.join(SERIALIZATION_FORMATS)})"
        )
    saved = conf.get("lgb_version")
    try:
        if model_class == BOOSTER_CLASS:
            model = lightgbm.Booster(model_file=str(path))
        else:
            from slipway.flavors.sklearn import load_estimator

            model = load_estimator(path, fmt, conf)
    except InvalidParameterValue:
        raise
    except Exception as exc:
        raise load_error("LightGBM", "lightgbm", path, exc, saved, lightgbm.__version__) from exc
    log_other_version(_log, "LightGBM", path, saved, lightgbm.__version__)
    return model


__all__ = [
    "FLAVOR_NAME",
    "SERIALIZATION_FORMATS",
    "SKOPS_TRUSTED_TYPES",
    "LightGBMPredictor",
    "load_model",
    "log_model",
    "save_model",
]
